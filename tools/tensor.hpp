// The tool's tensors: float vectors on 64-byte boundaries, as PyTorch allocates its
// tensors, so that timings compare like with like (rows of 64 floats then never straddle
// a cache line; std::vector's 16-byte alignment costs libsmyrf's kernels 5-15%). Tensors
// of 4 MiB and more also ask for transparent huge pages, as NumPy does for its large
// arrays on Linux: SMYRF reads rows in hash order, at random positions, and on 4 KiB
// pages most of those reads at N = 65536 would first miss the TLB.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace smyrf_cli {

template <class T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <class U>
    CacheLineAllocator(const CacheLineAllocator<U> &) {}
    T *allocate(size_t n) {
        constexpr size_t kHuge = size_t(2) << 20, kHugeFrom = size_t(4) << 20;
        const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
        const bool huge = bytes >= kHugeFrom;
        // aligned_alloc wants a size that is a multiple of the alignment
        const size_t align = huge ? kHuge : 64;
        void *p = std::aligned_alloc(align, bytes ? (bytes + align - 1) / align * align : 64);
        if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (huge) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
        return static_cast<T *>(p);
    }
    void deallocate(T *p, size_t) { std::free(p); }
    friend bool operator==(const CacheLineAllocator &, const CacheLineAllocator &) { return true; }
    friend bool operator!=(const CacheLineAllocator &, const CacheLineAllocator &) { return false; }
};

using Tensor = std::vector<float, CacheLineAllocator<float>>;

// v.resize(count), where running out of memory says what `what` is and how large it was
// (a huge shape would otherwise end the tool with a bare "std::bad_alloc").
template <class Vector>
void resize_or_explain(Vector &v, size_t count, const std::string &what) {
    try {
        v.resize(count);
    } catch (const std::bad_alloc &) {
        const double mib = (double)count * sizeof(typename Vector::value_type) / 1048576.0;
        char size[64];
        std::snprintf(size, sizeof size, mib < 1024 ? "%.1f MiB" : "%.1f GiB",
                      mib < 1024 ? mib : mib / 1024);
        throw std::runtime_error("out of memory: cannot allocate " + what + ", " + size);
    }
}

}  // namespace smyrf_cli
