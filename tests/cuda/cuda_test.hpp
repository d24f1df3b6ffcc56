// Small helpers shared by the CUDA suites: checks that report and fail, the CTest skip
// code, device detection, seeded random inputs.
#pragma once

#include <smyrf/smyrf.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

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
