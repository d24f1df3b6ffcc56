// Small helpers shared by the CUDA suites: checks that report and fail, the CTest skip
// code, device detection.
#pragma once

#include <smyrf/smyrf.h>

#include <cuda_runtime.h>

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
