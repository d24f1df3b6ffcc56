#include "cpu/convert.hpp"
#include "cpu/cpu.hpp"

namespace smyrf::cpu {
namespace {

uint32_t bits_of(float f) { return __builtin_bit_cast(uint32_t, f); }
float float_of(uint32_t u) { return __builtin_bit_cast(float, u); }

// The clones are functions of this file alone (cpu.hpp); the *_row names forward to them.
SMYRF_VECTOR_CLONES
void to_f32(smyrf_dtype dtype, const uint16_t *src, float *dst, int64_t n) {
    if (dtype == SMYRF_DTYPE_BF16) {  // the top half of an fp32
        for (int64_t i = 0; i < n; i++) dst[i] = float_of((uint32_t)src[i] << 16);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint32_t h = src[i], mag = h & 0x7fffu;
        const uint32_t normal = (mag << 13) + (112u << 23);             // rebias 15 -> 127
        const uint32_t special = 0x7f800000u | ((mag & 0x3ffu) << 13);  // inf, NaN
        // zero and subnormals: mag units of 2^-24, exact in fp32 (and never an fp32
        // subnormal, so a flush-to-zero mode does not touch them)
        const uint32_t tiny = bits_of((float)(int32_t)mag * 0x1p-24f);
        const uint32_t u = mag >= 0x7c00u ? special : mag >= 0x400u ? normal : tiny;
        dst[i] = float_of(((h & 0x8000u) << 16) | u);
    }
}

SMYRF_VECTOR_CLONES
void from_f32(smyrf_dtype dtype, const float *src, uint16_t *dst, int64_t n) {
    if (dtype == SMYRF_DTYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            const uint32_t u = bits_of(src[i]);
            const uint32_t nan = (u >> 16) | 0x40u;  // quiet, same sign
            const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
            dst[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = bits_of(src[i]), a = u & 0x7fffffffu;
        // a normal half: round to nearest even at bit 13, then rebias 127 -> 15
        const uint32_t normal = (a + 0xfffu + ((a >> 13) & 1u) - (112u << 23)) >> 13;
        // below 2^-14: adding 0.5 (whose unit in the last place is 2^-24, the smallest
        // subnormal half) makes the FPU round to nearest even at that unit, and the sum's
        // low bits are then the half's (0x400 when it rounds up to the smallest normal)
        const uint32_t tiny = bits_of(float_of(a) + 0.5f) - 0x3f000000u;
        const uint32_t m = a > 0x7f800000u    ? 0x7e00u   // NaN
                           : a >= 0x477ff000u ? 0x7c00u   // rounds to >= 65520: inf
                           : a >= 0x38800000u ? normal
                                              : tiny;
        dst[i] = (uint16_t)(((u >> 16) & 0x8000u) | m);
    }
}

}  // namespace

void to_f32_row(smyrf_dtype dtype, const uint16_t *src, float *dst, int64_t n) {
    to_f32(dtype, src, dst, n);
}

void from_f32_row(smyrf_dtype dtype, const float *src, uint16_t *dst, int64_t n) {
    from_f32(dtype, src, dst, n);
}

}  // namespace smyrf::cpu
