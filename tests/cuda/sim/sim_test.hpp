// Helpers of the simulator suites (test_cuda_*_sim.cpp): the dtypes on the host, and the
// comparison of a simulated result with the CPU backend's.
#pragma once

#include "cuda_test.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

template <class T> T to_elem(float x);
template <> inline float to_elem<float>(float x) { return x; }
template <> inline __half to_elem<__half>(float x) { return __float2half_rn(x); }
template <> inline __nv_bfloat16 to_elem<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
inline float to_float(float x) { return x; }
inline float to_float(__half x) { return __half2float(x); }
inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T> smyrf_dtype dtype_of();
template <> inline smyrf_dtype dtype_of<float>() { return SMYRF_DTYPE_F32; }
template <> inline smyrf_dtype dtype_of<__half>() { return SMYRF_DTYPE_F16; }
template <> inline smyrf_dtype dtype_of<__nv_bfloat16>() { return SMYRF_DTYPE_BF16; }

template <class T>
bool same_bits(const std::vector<T> &a, const std::vector<T> &b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Every element finite and within tol * max |cpu| of the CPU's (a CPU result of zeros
// fails: the comparison would say nothing); returns the largest relative difference.
template <class T>
double compare(const std::string &what, const char *name, const std::vector<T> &sim,
               const std::vector<T> &cpu, double tol) {
    double scale = 1e-30, worst = 0;
    for (const T &x : cpu) scale = std::fmax(scale, std::fabs(to_float(x)));
    CHECK(scale > 1e-20, "%s: %s is zero on the CPU: the comparison says nothing", what.c_str(), name);
    for (size_t i = 0; i < sim.size(); i++) {
        const float g = to_float(sim[i]), r = to_float(cpu[i]);
        CHECK(std::isfinite(g), "%s: %s[%zu] = %g", what.c_str(), name, i, g);
        const double diff = std::fabs((double)g - r) / scale;
        worst = std::fmax(worst, diff);
        if (diff > tol) CHECK(false, "%s: %s[%zu]: sim %.7g cpu %.7g", what.c_str(), name, i, g, r);
    }
    return worst;
}

// The row of (b, h, n) in a [B, heads, N, dim] tensor stored in `layout`.
inline int64_t row_in(smyrf_layout layout, int64_t b, int64_t h, int64_t n, int64_t heads, int64_t N) {
    return layout == SMYRF_LAYOUT_BHND ? (b * heads + h) * N + n : (b * N + n) * heads + h;
}

// A [B, heads, N, dim] tensor, logical BHND values, stored in `layout` in T.
template <class T>
std::vector<T> store(const std::vector<float> &x, int64_t B, int64_t heads, int64_t N, int64_t dim,
                     smyrf_layout layout) {
    std::vector<T> out(x.size());
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t c = 0; c < dim; c++)
                    out[(size_t)(row_in(layout, b, h, n, heads, N) * dim + c)] =
                        to_elem<T>(x[(size_t)(((b * heads + h) * N + n) * dim + c)]);
    return out;
}

// The two schedules the suites compare: threads in order, one sweep of the block at a
// time; or (reverse) the threads and warps the other way round, one warp at a time
// (cuda_sim::Order), which shows a read ordered after its write by neither a warp-wide
// operation nor a barrier.
inline cuda_sim::Exec sim_exec(bool reverse, size_t shared_bytes) {
    return {reverse, shared_bytes, reverse ? cuda_sim::Order::kWarps : cuda_sim::Order::kThreads};
}

// lse against the CPU's: -inf exactly where the CPU has it, else within tol relative to
// 1 + |cpu|; returns the largest such difference.
inline double compare_lse(const std::string &what, const std::vector<float> &sim,
                          const std::vector<float> &cpu, double tol) {
    double worst = 0;
    for (size_t row = 0; row < sim.size(); row++) {
        const float lg = sim[row], lc = cpu[row];
        if (std::isinf(lc) || std::isinf(lg)) {
            CHECK(lg == lc, "%s: lse[%zu]: sim %g cpu %g", what.c_str(), row, lg, lc);
            continue;
        }
        const double diff = std::fabs((double)lg - lc) / (1.0 + std::fabs(lc));
        worst = std::fmax(worst, diff);
        CHECK(diff <= tol, "%s: lse[%zu]: sim %.8g cpu %.8g", what.c_str(), row, lg, lc);
    }
    return worst;
}

// Each batch's ascending valid key positions, as valid_keys (cuda/cluster.cu) leaves them.
struct ValidKeys {
    std::vector<int32_t> valid, n_valid;  // [B][Nk] (-1 past the valid ones), [B]
    ValidKeys() = default;
    ValidKeys(const std::vector<uint8_t> &mask, int B, int Nk)
        : valid((size_t)B * Nk, -1), n_valid((size_t)B, 0) {
        for (int b = 0; b < B; b++)
            for (int j = 0; j < Nk; j++)
                if (mask.empty() || mask[(size_t)b * Nk + j])
                    valid[(size_t)b * Nk + n_valid[(size_t)b]++] = j;
    }
};
