// Reductions in a fixed order of 8 partial lanes: the compiler vectorises them without
// -ffast-math, and the result does not depend on anything but the data.
#pragma once

#include <cstdint>

namespace smyrf::cpu {

constexpr int kLanes = 8;

inline float sum_of(const float *x, int64_t n) {
    float lane[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; l++) lane[l] += x[i + l];
    float total = 0.0f;
    for (; i < n; i++) total += x[i];
    for (int l = 0; l < kLanes; l++) total += lane[l];
    return total;
}

inline float dot_of(const float *x, const float *y, int64_t n) {
    float lane[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; l++) lane[l] += x[i + l] * y[i + l];
    float total = 0.0f;
    for (; i < n; i++) total += x[i] * y[i];
    for (int l = 0; l < kLanes; l++) total += lane[l];
    return total;
}

// The maximum; NaN entries are skipped (a NaN row still poisons the sums after it).
inline float max_of(const float *x, int64_t n, float init) {
    float lane[kLanes];
    for (int l = 0; l < kLanes; l++) lane[l] = init;
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; l++) lane[l] = x[i + l] > lane[l] ? x[i + l] : lane[l];
    float m = init;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int l = 0; l < kLanes; l++) m = lane[l] > m ? lane[l] : m;
    return m;
}

}  // namespace smyrf::cpu
