// HYBRID's band kernels for AVX-512 (compiled with -mavx512f -mfma, run only where the
// CPU has both): 16 lanes, a 6 x 4 register block (24 accumulators of 32 registers).
#include "cpu/hybrid_kernel.hpp"

#include <immintrin.h>

#include <cstring>

namespace smyrf::cpu::hybrid::avx512 {
namespace {

struct V {
    using T = __m512;
    static constexpr int W = 16, MR = 6, NV = 4;
    static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
};

}  // namespace

#include "cpu/kernels/hybrid_band.inc"

}  // namespace smyrf::cpu::hybrid::avx512
