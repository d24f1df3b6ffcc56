// A vectorisable e^x (within 3 ulp) for the softmax loops: libm's expf is a scalar call
// per element and would cost more than the GEMMs around it. Branch-free, so that the
// compiler vectorises the loops that call it.
#pragma once

#include <cstdint>
#include <cstring>

namespace smyrf::cpu {

inline float fast_exp(float x) {
    // e^x = 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2 (Cody-Waite reduction).
    // Below -87 the last line returns 0 whatever the steps before it make of x, so only
    // the top needs a clamp. NaN passes through it and stays NaN.
    const float lo = -87.0f, hi = 88.0f;
    const float xc = x > hi ? hi : x;
    // Adding 1.5 * 2^23 rounds to an integer and leaves n in the low mantissa bits.
    const float magic = 12582912.0f;
    const float t = xc * 1.44269504f + magic;
    uint32_t t_bits, magic_bits;  // unsigned: NaN input must not overflow the shift
    std::memcpy(&t_bits, &t, sizeof t);
    std::memcpy(&magic_bits, &magic, sizeof magic);
    const float n = t - magic;
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    // e^r on |r| <= ln(2) / 2: a degree-5 polynomial with p(0) = 1 (so e^0 = 1 exactly),
    // fitted for the least largest relative error (9.2e-8 before rounding; the Taylor
    // polynomial needs degree 6 for 1.2e-7).
    float p = 8.290272206e-3f;
    p = p * r + 4.189816117e-2f;
    p = p * r + 1.666763872e-1f;
    p = p * r + 4.999914765e-1f;
    p = p * r + 9.999997020e-1f;
    p = p * r + 1.0f;
    const uint32_t bits = (t_bits - magic_bits + 127u) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    const float y = p * scale;
    return x < lo ? 0.0f : y;  // e^-inf = 0
}

}  // namespace smyrf::cpu
