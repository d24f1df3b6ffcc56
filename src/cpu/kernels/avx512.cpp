// The CPU kernels (cpu/kernels/*.inc) for AVX-512 (compiled with -mavx512f -mfma, run only where the CPU
// has both): 16 lanes, a 6 x 4 register block (24 accumulators of 32 registers).
#include "cpu/exp_constants.hpp"
#include "cpu/hybrid_kernel.hpp"
#include "cpu/tile.hpp"
#include "cpu/tile_backward.hpp"

#include <immintrin.h>


namespace smyrf::cpu::avx512 {
namespace {

struct V {
    using T = __m512;
    static constexpr int W = 16, MR = 6, NV = 4;
    // The zero-masked forms of max, min, the shuffles and scalef: GCC 12's unmasked ones
    // start from _mm512_undefined_*, which warns (GCC bug 105593).
    static constexpr __mmask16 kAll = 0xFFFF;
    static T zero() { return _mm512_setzero_ps(); }
    static T set(float x) { return _mm512_set1_ps(x); }
    static T load(const float *p) { return _mm512_loadu_ps(p); }
    static void store(float *p, T x) { _mm512_storeu_ps(p, x); }
    static __mmask16 first(int n) { return (__mmask16)((1u << n) - 1u); }
    static T load_n(const float *p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
    static void store_n(float *p, T x, int n) { _mm512_mask_storeu_ps(p, first(n), x); }
    static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
    static T add(T a, T b) { return _mm512_add_ps(a, b); }
    static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
    static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
    // x > m ? x : m, so a NaN x leaves m
    static T max(T x, T m) { return _mm512_maskz_max_ps(kAll, x, m); }
    // a < b ? a : b, so a NaN b stays
    static T min(T a, T b) { return _mm512_maskz_min_ps(kAll, a, b); }
    // a < b ? x : y
    static T lt_select(T a, T b, T x, T y) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
    }
    // rows r[0..16) become the columns: pairs and quads interleave inside each 128-bit
    // lane (cheap in-lane shuffles), then two rounds of whole-lane shuffles; faster than
    // four rounds of two-source permutes
    static void transpose(T *r) {
        T t[16], u[16];
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_maskz_unpacklo_ps(kAll, r[i], r[i + 1]);
            t[i + 1] = _mm512_maskz_unpackhi_ps(kAll, r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            u[i] = _mm512_maskz_shuffle_ps(kAll, t[i], t[i + 2], 0x44);
            u[i + 1] = _mm512_maskz_shuffle_ps(kAll, t[i], t[i + 2], 0xEE);
            u[i + 2] = _mm512_maskz_shuffle_ps(kAll, t[i + 1], t[i + 3], 0x44);
            u[i + 3] = _mm512_maskz_shuffle_ps(kAll, t[i + 1], t[i + 3], 0xEE);
        }
        for (int j = 0; j < 4; j++) {
            const T v = _mm512_maskz_shuffle_f32x4(kAll, u[j], u[4 + j], 0x88);
            const T w = _mm512_maskz_shuffle_f32x4(kAll, u[j], u[4 + j], 0xDD);
            const T v2 = _mm512_maskz_shuffle_f32x4(kAll, u[8 + j], u[12 + j], 0x88);
            const T w2 = _mm512_maskz_shuffle_f32x4(kAll, u[8 + j], u[12 + j], 0xDD);
            r[j] = _mm512_maskz_shuffle_f32x4(kAll, v, v2, 0x88);
            r[8 + j] = _mm512_maskz_shuffle_f32x4(kAll, v, v2, 0xDD);
            r[4 + j] = _mm512_maskz_shuffle_f32x4(kAll, w, w2, 0x88);
            r[12 + j] = _mm512_maskz_shuffle_f32x4(kAll, w, w2, 0xDD);
        }
    }
    // p 2^n for an integer n, in one instruction
    static T times_pow2(T p, T n, T) { return _mm512_maskz_scalef_ps(kAll, p, n); }
};

}  // namespace

#include "cpu/kernels/blocks.inc"
#include "cpu/kernels/tile_kernel.inc"
#include "cpu/kernels/tile_backward.inc"
#include "cpu/kernels/hybrid_band.inc"
#include "cpu/kernels/hybrid_backward.inc"

}  // namespace smyrf::cpu::avx512
