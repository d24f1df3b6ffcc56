// The CPU kernels (cpu/kernels/*.inc) for AVX2 with FMA (compiled with -mavx2 -mfma, run only where the CPU
// has both): 8 lanes, a 4 x 3 register block (12 accumulators of 16 registers).
#include "cpu/exp_constants.hpp"
#include "cpu/hybrid_kernel.hpp"
#include "cpu/tile.hpp"
#include "cpu/tile_backward.hpp"

#include <immintrin.h>

namespace smyrf::cpu::avx2 {
namespace {

struct V {
    using T = __m256;
    static constexpr int W = 8, MR = 4, NV = 3;
    static T zero() { return _mm256_setzero_ps(); }
    static T set(float x) { return _mm256_set1_ps(x); }
    static T load(const float *p) { return _mm256_loadu_ps(p); }
    static void store(float *p, T x) { _mm256_storeu_ps(p, x); }
    static __m256i first(int n) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static T load_n(const float *p, int n) { return _mm256_maskload_ps(p, first(n)); }
    static void store_n(float *p, T x, int n) { _mm256_maskstore_ps(p, first(n), x); }
    static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
    static T add(T a, T b) { return _mm256_add_ps(a, b); }
    static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
    static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
    // x > m ? x : m, so a NaN x leaves m
    static T max(T x, T m) { return _mm256_max_ps(x, m); }
    // a < b ? a : b, so a NaN b stays
    static T min(T a, T b) { return _mm256_min_ps(a, b); }
    // a < b ? x : y
    static T lt_select(T a, T b, T x, T y) {
        return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
    }
    // rows r[0..8) become the columns (pairs, then quads, then halves interleave)
    static void transpose(T *r) {
        T t[8], u[8];
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
            u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
            u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int i = 0; i < 4; i++) {
            r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
            r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
        }
    }
    // p 2^n for an integer n, 2^n from the low mantissa bits of t = n + kMagic
    static T times_pow2(T p, T, T t) {
        const __m256i e = _mm256_add_epi32(_mm256_castps_si256(t),
                                           _mm256_set1_epi32((int)exp_constants::kPow2Bias));
        return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
    }
};

}  // namespace

#include "cpu/kernels/blocks.inc"
#include "cpu/kernels/tile_kernel.inc"
#include "cpu/kernels/tile_backward.inc"
#include "cpu/kernels/hybrid_band.inc"
#include "cpu/kernels/hybrid_backward.inc"
#include "cpu/kernels/project.inc"

}  // namespace smyrf::cpu::avx2
