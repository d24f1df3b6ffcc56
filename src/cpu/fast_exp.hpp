// A vectorisable e^x (within 3 ulp) for the softmax loops: libm's expf is a scalar call
// per element and would cost more than the GEMMs around it. Branch-free, so that the
// compiler vectorises the loops that call it.
#pragma once

#include "cpu/exp_constants.hpp"

#include <cstdint>
#include <cstring>

namespace smyrf::cpu {

// The method and its constants: cpu/exp_constants.hpp.
inline float fast_exp(float x) {
    using namespace exp_constants;
    // Below kLo the last line returns 0 whatever the steps before it make of x, so only
    // the top needs a clamp. NaN passes through it and stays NaN.
    const float xc = x > kHi ? kHi : x;
    const float t = xc * kLog2e + kMagic;
    uint32_t t_bits;  // unsigned: NaN input must not overflow the shift
    std::memcpy(&t_bits, &t, sizeof t);
    const float n = t - kMagic;
    const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
    float p = kPoly[5];
#pragma GCC unroll 5
    for (int i = 4; i >= 0; i--) p = p * r + kPoly[i];
    const uint32_t bits = (t_bits + kPow2Bias) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    const float y = p * scale;
    return x < kLo ? 0.0f : y;  // e^-inf = 0
}

}  // namespace smyrf::cpu
