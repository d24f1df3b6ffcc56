// The constants of the CPU's e^x, one method in two forms: fast_exp (cpu/fast_exp.hpp,
// scalar, for loops the compiler vectorises) and exp_of (cpu/kernels/blocks.inc, explicit
// vectors, multiply-adds as FMAs). Constants only, so the kernels may include it too.
//
// e^x = 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2 (Cody-Waite reduction: ln 2
// split in a high part exact in float and a low remainder). Adding kMagic = 1.5 * 2^23
// rounds x / ln 2 to an integer and leaves n in the low mantissa bits. e^r is a degree-5
// polynomial with p(0) = 1 (so e^0 = 1 exactly), fitted for the least largest relative
// error (9.2e-8 before rounding; the Taylor polynomial needs degree 6 for 1.2e-7).
// Below kLo the result is 0; above kHi, x is clamped.
#pragma once

namespace smyrf::cpu::exp_constants {

constexpr float kLo = -87.0f, kHi = 88.0f;
constexpr float kMagic = 12582912.0f;
// (bits(t) + kPow2Bias) << 23 is 2^n for t = n + kMagic
constexpr unsigned kPow2Bias = 127u - __builtin_bit_cast(unsigned, kMagic);
constexpr float kLog2e = 1.44269504f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 = kLn2Hi + kLn2Lo
// p(r) = kPoly[0] + kPoly[1] r + ... + kPoly[5] r^5
constexpr float kPoly[6] = {1.0f, 9.999997020e-1f, 4.999914765e-1f, 1.666763872e-1f,
                            4.189816117e-2f, 8.290272206e-3f};

}  // namespace smyrf::cpu::exp_constants
