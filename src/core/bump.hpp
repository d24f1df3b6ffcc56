// The one size check of both backends' workspace allocators (cpu/cpu.hpp Arena,
// cuda/common.cuh Carver): pieces taken one after another from a single block.
#pragma once

#include "core/error.hpp"

#include <cstddef>
#include <cstdint>

namespace smyrf {

// bytes * factor, or SIZE_MAX where that overflows (which take_bytes then refuses).
inline size_t bytes_times(size_t bytes, size_t factor) {
    size_t product;
    return __builtin_mul_overflow(bytes, factor, &product) ? SIZE_MAX : product;
}

// Takes `bytes` at the end of the `used` bytes so far, moving `used` past them rounded
// up to `align` (a power of two), and returns where they start. A total past 2^62
// bytes, which no machine holds, is refused as out of memory instead of wrapping around:
// a wrapped, small workspace would be written far past its end. `who` opens the message.
inline size_t take_bytes(size_t &used, size_t bytes, size_t align, const char *who) {
    constexpr size_t kMaxBytes = (size_t)1 << 62;
    if (bytes > kMaxBytes || kMaxBytes - bytes < used)
        fail(SMYRF_ERR_OUT_OF_MEMORY, "%sthe workspace would exceed 2^62 bytes", who);
    const size_t at = used;
    used += (bytes + align - 1) & ~(align - 1);
    return at;
}

}  // namespace smyrf
