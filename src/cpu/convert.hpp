// fp16 / bf16 <-> fp32. The CPU backend computes in fp32 and converts at the edges, a
// row at a time: loops without branches (selects), so that the compiler vectorises them.
// Exact both ways: fp32 holds every fp16 and bf16 value, and the way back rounds to
// nearest even, overflows to inf and keeps NaN a NaN (of the same sign).
#pragma once

#include "smyrf/smyrf.h"

#include <cstdint>

namespace smyrf::cpu {

// dst[i] = src[i] (dtype F16 or BF16) as fp32, for i < n.
void to_f32_row(smyrf_dtype dtype, const uint16_t *src, float *dst, int64_t n);
// dst[i] = src[i] rounded to the dtype (F16 or BF16), for i < n.
void from_f32_row(smyrf_dtype dtype, const float *src, uint16_t *dst, int64_t n);

}  // namespace smyrf::cpu
