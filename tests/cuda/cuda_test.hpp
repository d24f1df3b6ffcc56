// Small helpers shared by the CUDA suites: checks that report and fail, the CTest skip
// code, device detection, seeded random inputs.
#pragma once

#include <smyrf/smyrf.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

// CTest: SKIP_RETURN_CODE 77 (set in tests/cuda/CMakeLists.txt).
constexpr int kSkip = 77;

inline int g_failures = 0;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            if (g_failures < 40) { /* the first ones say enough */                \
                std::fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
                std::fprintf(stderr, __VA_ARGS__);                                \
                std::fprintf(stderr, "\n");                                       \
            }                                                                     \
            g_failures++;                                                         \
        }                                                                         \
    } while (0)

#define REQUIRE_OK(call)                                                          \
    do {                                                                          \
        const smyrf_status st_ = (call);                                          \
        if (st_ != SMYRF_OK) {                                                    \
            std::fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,  \
                         smyrf_status_string(st_), smyrf_last_error_message());   \
            std::exit(1);                                                         \
        }                                                                         \
    } while (0)

#define REQUIRE_CUDA(call)                                                        \
    do {                                                                          \
        const cudaError_t e_ = (call);                                            \
        if (e_ != cudaSuccess) {                                                  \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,      \
                         cudaGetErrorString(e_));                                 \
            std::exit(1);                                                         \
        }                                                                         \
    } while (0)

// Number of CUDA devices with compute capability >= 8.0 (0 without a driver or device).
inline int usable_devices() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    int usable = 0;
    for (int i = 0; i < n; i++) {
        int major = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, i) == cudaSuccess &&
            major >= 8)
            usable++;
    }
    return usable;
}

// Seeded inputs: a splitmix64 stream (set g_rng to restart it), uniform in [0, 1) and
// standard normal (Box-Muller).
inline uint64_t g_rng = 0;
inline double uniform() {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}
inline double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// The shape of a test case, shared by the CUDA suites; each suite's Case adds its mode's
// fields after these.
struct CaseShape {
    const char *name;
    int64_t B, H, Hkv, Nq, Nk, d, dv;
    int causal;
    double mask_keep;  // 0: no mask; < 0: batch 0 keeps no key at all (key_mask)
};

// The plan parameters of a shape with this mode and dtype, and the suites' fixed seed.
inline std::vector<std::pair<smyrf_param, int64_t>> shape_values(const CaseShape &c,
                                                                  smyrf_mode mode,
                                                                  smyrf_dtype t) {
    return {
        {SMYRF_PARAM_BATCH, c.B},       {SMYRF_PARAM_HEADS, c.H},
        {SMYRF_PARAM_KV_HEADS, c.Hkv},  {SMYRF_PARAM_Q_LEN, c.Nq},
        {SMYRF_PARAM_K_LEN, c.Nk},      {SMYRF_PARAM_QK_DIM, c.d},
        {SMYRF_PARAM_V_DIM, c.dv},      {SMYRF_PARAM_MODE, mode},
        {SMYRF_PARAM_CAUSAL, c.causal}, {SMYRF_PARAM_DTYPE, t},
        {SMYRF_PARAM_SEED, 1234567},
    };
}

// A key-padding mask [B][Nk] for the cases' `mask_keep`: empty for 0 (no mask); for a
// negative value batch 0 keeps no key and the others keep all; else key 0 and each other
// key with probability keep are valid.
inline std::vector<uint8_t> key_mask(int64_t B, int64_t Nk, double keep) {
    std::vector<uint8_t> mask;
    if (keep == 0) return mask;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < Nk; j++)
            mask.push_back(keep < 0 ? (uint8_t)(b != 0) : (uint8_t)(j == 0 || uniform() < keep));
    return mask;
}

// A plan with these parameter values (every call must succeed).
inline smyrf_plan *plan_of(const std::vector<std::pair<smyrf_param, int64_t>> &values) {
    smyrf_config *cfg = nullptr;
    REQUIRE_OK(smyrf_config_create(&cfg));
    for (const auto &pv : values) REQUIRE_OK(smyrf_config_set(cfg, pv.first, pv.second));
    smyrf_plan *plan = nullptr;
    REQUIRE_OK(smyrf_plan_create(&plan, cfg));
    smyrf_config_destroy(cfg);
    return plan;
}
