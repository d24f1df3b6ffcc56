// The tool's tensors: float vectors on 64-byte boundaries, as PyTorch allocates its
// tensors, so that timings compare like with like (rows of 64 floats then never straddle
// a cache line; std::vector's 16-byte alignment costs libsmyrf's kernels 5-15%).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace smyrf_cli {

template <class T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <class U>
    CacheLineAllocator(const CacheLineAllocator<U> &) {}
    T *allocate(size_t n) {
        const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
        void *p = std::aligned_alloc(64, bytes ? bytes : 64);
        if (!p) throw std::bad_alloc();
        return static_cast<T *>(p);
    }
    void deallocate(T *p, size_t) { std::free(p); }
    friend bool operator==(const CacheLineAllocator &, const CacheLineAllocator &) { return true; }
    friend bool operator!=(const CacheLineAllocator &, const CacheLineAllocator &) { return false; }
};

using Tensor = std::vector<float, CacheLineAllocator<float>>;

}  // namespace smyrf_cli
