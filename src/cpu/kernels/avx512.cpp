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
    // The zero-masked forms of max, min and shift: GCC 12's unmasked ones start from
    // _mm512_undefined_*, which warns (GCC bug 105593).
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
    // rows r[0..16) become the columns: off-diagonal blocks of 8, 4, 2, 1 swap places
    template <int B>
    static void swap_blocks(T *r) {
        alignas(64) int lo[16], hi[16];
        for (int j = 0; j < 16; j++) {
            lo[j] = (j & B) ? 16 + j - B : j;  // 16 + x: lane x of the second row
            hi[j] = (j & B) ? 16 + j : j + B;
        }
        const __m512i lo_idx = _mm512_load_si512(lo), hi_idx = _mm512_load_si512(hi);
        for (int i = 0; i < 16; i++)
            if (!(i & B)) {
                const T a = r[i], b = r[i + B];
                r[i] = _mm512_permutex2var_ps(a, lo_idx, b);
                r[i + B] = _mm512_permutex2var_ps(a, hi_idx, b);
            }
    }
    static void transpose(T *r) {
        swap_blocks<8>(r);
        swap_blocks<4>(r);
        swap_blocks<2>(r);
        swap_blocks<1>(r);
    }
    // the float with bits (bits(t) + bias) << 23
    static T exponent_bits(T t, unsigned bias) {
        const __m512i e = _mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32((int)bias));
        return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, e, 23));
    }
};

}  // namespace

#include "cpu/kernels/blocks.inc"
#include "cpu/kernels/tile_kernel.inc"
#include "cpu/kernels/tile_backward.inc"
#include "cpu/kernels/hybrid_band.inc"
#include "cpu/kernels/hybrid_backward.inc"

}  // namespace smyrf::cpu::avx512
