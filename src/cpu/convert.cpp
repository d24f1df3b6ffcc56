#include "cpu/convert.hpp"

namespace smyrf::cpu {

float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (mant << 13);  // inf or NaN
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        u = sign;
    } else {  // subnormal: normalise
        uint32_t e = 113, m = mant;
        while (!(m & 0x400u)) m <<= 1, e--;
        u = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;           // NaN
    if (abs >= 0x477ff000u) return sign | 0x7c00u;          // rounds to >= 65520: inf
    if (abs >= 0x38800000u) {                               // normal half
        const uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u) - (112u << 23);
        return sign | (uint16_t)(r >> 13);
    }
    if (abs < 0x33000000u) return sign;                      // below half the smallest subnormal
    const uint32_t e = abs >> 23, m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;                          // 14..24
    const uint32_t half = 1u << (shift - 1), rest = m & ((1u << shift) - 1);
    uint32_t q = m >> shift;
    if (rest > half || (rest == half && (q & 1u))) q++;
    return sign | (uint16_t)q;
}

}  // namespace smyrf::cpu
