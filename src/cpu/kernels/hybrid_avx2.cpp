// HYBRID's band kernels for AVX2 with FMA (compiled with -mavx2 -mfma, run only where
// the CPU has both): 8 lanes, a 4 x 3 register block (12 accumulators of 16 registers).
#include "cpu/hybrid_kernel.hpp"

#include <immintrin.h>

#include <cstring>

namespace smyrf::cpu::hybrid::avx2 {
namespace {

struct V {
    using T = __m256;
    static constexpr int W = 8, MR = 4, NV = 3;
    static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
};

}  // namespace

#include "cpu/kernels/hybrid_band.inc"

}  // namespace smyrf::cpu::hybrid::avx2
