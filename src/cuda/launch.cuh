// The CUDA executor of the launch sequences written for both the device and the test
// simulator (backward.cuh, hybrid_*.cuh): kernels and memsets on the caller's stream,
// stable segmented sorts through CUB. Included by .cu files only (nvcc).
#pragma once

#include "cuda/hybrid.cuh"

#include <cub/device/device_segmented_sort.cuh>

namespace smyrf::gpu {

struct CudaExec {
    cudaStream_t stream;

    template <class... P, class... A>
    void launch(void (*kernel)(P...), unsigned grid, unsigned block, size_t smem,
                const A &...args) const {
        kernel<<<grid, block, smem, stream>>>(args...);
        SMYRF_CUDA_LAUNCHED();
    }

    void zero(void *p, size_t bytes) const { SMYRF_CUDA(cudaMemsetAsync(p, 0, bytes, stream)); }

    // CUB's stable segmented sort (a sizing call when temp is null).
    template <class Key>
    static cudaError_t sort_call(void *temp, size_t &bytes, const Key *keys_in, Key *keys_out,
                                 const int32_t *values_in, int32_t *values_out, long long items,
                                 long long segments, const int32_t *begin, const int32_t *end,
                                 cudaStream_t s) {
        return cub::DeviceSegmentedSort::StableSortPairs(temp, bytes, keys_in, keys_out,
                                                         values_in, values_out, items, segments,
                                                         begin, end, s);
    }

    // Every pair's segment [seg_begin, seg_end) of keys_in, with the indices u (hw.ident)
    // as values, into keys_out and values_out.
    template <class Key>
    void sort(const Key *keys_in, Key *keys_out, int32_t *values_out, const Problem &p,
              const HybridWork &hw) const {
        size_t bytes = hw.sort_temp_bytes;
        SMYRF_CUDA(sort_call(hw.sort_temp, bytes, keys_in, keys_out, hw.ident, values_out,
                             (long long)p.B * p.Hkv * p.Nk, (long long)p.B * p.Hkv,
                             hw.seg_begin, hw.seg_end, stream));
    }
};

}  // namespace smyrf::gpu
