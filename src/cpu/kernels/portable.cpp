// The CPU kernels (cpu/kernels/*.inc) in portable vectors (GCC/Clang vector extensions: SSE2 on x86-64, NEON
// on AArch64), for CPUs without AVX2 and FMA. Products and sums round separately here.
#include "cpu/exp_constants.hpp"
#include "cpu/hybrid_kernel.hpp"
#include "cpu/tile.hpp"
#include "cpu/tile_backward.hpp"

#include <cstring>

namespace smyrf::cpu::portable {
namespace {

struct V {
    typedef float T __attribute__((vector_size(16)));
    typedef unsigned U __attribute__((vector_size(16)));
    static constexpr int W = 4, MR = 4, NV = 3;
    static T zero() { return T{}; }
    static T set(float x) { return T{x, x, x, x}; }
    static T load(const float *p) { T x; std::memcpy(&x, p, sizeof x); return x; }
    static void store(float *p, T x) { std::memcpy(p, &x, sizeof x); }
    static T load_n(const float *p, int n) {
        T x{};
        for (int i = 0; i < n; i++) x[i] = p[i];
        return x;
    }
    static void store_n(float *p, T x, int n) {
        for (int i = 0; i < n; i++) p[i] = x[i];
    }
    static T fma(T a, T b, T c) { return a * b + c; }
    static T add(T a, T b) { return a + b; }
    static T sub(T a, T b) { return a - b; }
    static T mul(T a, T b) { return a * b; }
    // x > m ? x : m, so a NaN x leaves m
    static T max(T x, T m) { return x > m ? x : m; }
    // a < b ? a : b, so a NaN b stays
    static T min(T a, T b) { return a < b ? a : b; }
    // a < b ? x : y
    static T lt_select(T a, T b, T x, T y) { return a < b ? x : y; }
    // rows r[0..4) become the columns
    static void transpose(T *r) {
        float a[4][4];
        for (int i = 0; i < 4; i++) std::memcpy(a[i], &r[i], sizeof r[i]);
        for (int i = 0; i < 4; i++) r[i] = T{a[0][i], a[1][i], a[2][i], a[3][i]};
    }
    // p 2^n for an integer n, 2^n from the low mantissa bits of t = n + kMagic
    static T times_pow2(T p, T, T t) {
        U e;
        std::memcpy(&e, &t, sizeof e);
        e = (e + exp_constants::kPow2Bias) << 23;
        std::memcpy(&t, &e, sizeof t);
        return p * t;
    }
};

}  // namespace

#include "cpu/kernels/blocks.inc"
#include "cpu/kernels/tile_kernel.inc"
#include "cpu/kernels/tile_backward.inc"
#include "cpu/kernels/hybrid_band.inc"
#include "cpu/kernels/hybrid_backward.inc"
#include "cpu/kernels/project.inc"

}  // namespace smyrf::cpu::portable
