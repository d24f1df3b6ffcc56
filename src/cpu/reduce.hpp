// The dot product in a fixed order of 8 partial lanes: the compiler vectorises it without
// -ffast-math, and the result does not depend on anything but the data.
#pragma once

#include <cstdint>

namespace smyrf::cpu {

constexpr int kLanes = 8;

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

}  // namespace smyrf::cpu
