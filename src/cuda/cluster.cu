// Stage 3, cluster: valid-key compaction (the key-padding mask as ascending position
// lists) and one stable segmented radix sort per (problem, round) for the queries and for
// the valid keys. The keys are the sortable float bits (cpu/cluster.cpp) and the values
// are positions in ascending order, so LSD radix sorting (stable at every pass) breaks
// ties by position, as the CPU does. The balanced cut needs no kernel: cluster c covers
// sorted positions [c * n / C, (c + 1) * n / C) (attention.cu reads them in place).
#include "cuda/common.cuh"

#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>

#include <algorithm>
#include <climits>

namespace smyrf::gpu {
namespace {

constexpr int kScanThreads = 1024;

// One block per batch: an exclusive scan of the mask flags, chunk after chunk.
__global__ void __launch_bounds__(kScanThreads)
compact_valid(const uint8_t *__restrict__ mask, int Nk, int32_t *__restrict__ valid,
              int32_t *__restrict__ n_valid) {
    using Scan = cub::BlockScan<int, kScanThreads>;
    __shared__ typename Scan::TempStorage temp;
    __shared__ int carry;
    const long long b = blockIdx.x;
    if (threadIdx.x == 0) carry = 0;
    __syncthreads();
    for (int j0 = 0; j0 < Nk; j0 += kScanThreads) {
        const int j = j0 + (int)threadIdx.x;
        const int flag = j < Nk && (!mask || mask[b * Nk + j]) ? 1 : 0;
        int at, total;
        Scan(temp).ExclusiveSum(flag, at, total);
        const int base = carry;
        if (flag) valid[b * Nk + base + at] = j;
        __syncthreads();  // everyone has read carry (and temp is free again)
        if (threadIdx.x == 0) carry = base + total;
        __syncthreads();
    }
    if (threadIdx.x == 0) n_valid[b] = carry;
}

// Segment s of a sort call starts at s * len (relative to the call's first segment).
struct SegmentBegin {
    int len;
    __host__ __device__ int operator()(int s) const { return s * len; }
};
// Query segments are full; key segments end after the batch's valid keys.
struct SegmentEnd {
    int len;
    long long first;          // the call's first global segment
    long long per_batch;      // segments per batch: H * R
    const int32_t *n_valid;   // null: full segments
    __host__ __device__ int operator()(int s) const {
        if (!n_valid) return (s + 1) * len;
        return s * len + n_valid[(first + s) / per_batch];
    }
};

// Segments per sort call so that one call never holds more than INT_MAX items.
long long segments_per_call(int len) {
    return std::max<long long>(1, (long long)INT_MAX / std::max(len, 1));
}

using BeginIt = thrust::transform_iterator<SegmentBegin, thrust::counting_iterator<int>>;
using EndIt = thrust::transform_iterator<SegmentEnd, thrust::counting_iterator<int>>;

cudaError_t sort_call(void *temp, size_t &bytes, cub::DoubleBuffer<uint32_t> &keys,
                      cub::DoubleBuffer<int32_t> &vals, int len, long long first, long long count,
                      long long per_batch, const int32_t *n_valid, cudaStream_t s) {
    const BeginIt begin(thrust::counting_iterator<int>(0), SegmentBegin{len});
    const EndIt end(thrust::counting_iterator<int>(0), SegmentEnd{len, first, per_batch, n_valid});
    return cub::DeviceSegmentedRadixSort::SortPairs(temp, bytes, keys, vals,
                                                    (int)(count * len), (int)count, begin, end, 0,
                                                    32, s);
}

size_t temp_bytes_for(int len, long long segments) {
    const long long per = segments_per_call(len);
    size_t most = 0;
    for (long long count : {std::min(per, segments), segments % per}) {
        if (count <= 0) continue;
        size_t bytes = 0;
        cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr);
        cub::DoubleBuffer<int32_t> vals(nullptr, nullptr);
        SMYRF_CUDA(sort_call(nullptr, bytes, keys, vals, len, 0, count, 1, nullptr, 0));
        most = std::max(most, bytes);
    }
    return most;
}

// Sorts every segment of length len; returns the buffer index (0 or 1) holding the result.
int sort_segments(uint32_t *key[2], int32_t *idx[2], int len, long long segments,
                  long long per_batch, const int32_t *n_valid, void *temp, size_t temp_bytes,
                  cudaStream_t s) {
    const long long per = segments_per_call(len);
    int selector = -1;
    for (long long first = 0; first < segments; first += per) {
        const long long count = std::min(per, segments - first);
        const size_t at = (size_t)first * (size_t)len;
        cub::DoubleBuffer<uint32_t> keys(key[0] + at, key[1] + at);
        cub::DoubleBuffer<int32_t> vals(idx[0] + at, idx[1] + at);
        size_t bytes = temp_bytes;
        SMYRF_CUDA(sort_call(temp, bytes, keys, vals, len, first, count, per_batch, n_valid, s));
        if (selector >= 0 && vals.selector != selector)
            fail(SMYRF_ERR_INTERNAL, "CUDA backend: sort calls ended in different buffers");
        selector = vals.selector;
    }
    return selector;
}

}  // namespace

void valid_keys(const Problem &p, const uint8_t *key_mask, const Work &w, cudaStream_t s) {
    compact_valid<<<(unsigned)p.B, kScanThreads, 0, s>>>(key_mask, p.Nk, w.valid, w.n_valid);
    SMYRF_CUDA_LAUNCHED();
}

size_t sort_temp_bytes(const Problem &p) {
    const long long segments = (long long)p.B * p.H * p.R;
    return std::max(temp_bytes_for(p.Nq, segments), temp_bytes_for(p.Nk, segments));
}

void sort_clusters(const Problem &p, const Work &w, cudaStream_t s, const int32_t **q_sorted,
                   const int32_t **k_sorted) {
    const long long segments = (long long)p.B * p.H * p.R, per_batch = (long long)p.H * p.R;
    uint32_t *qk[2] = {w.q_key[0], w.q_key[1]}, *kk[2] = {w.k_key[0], w.k_key[1]};
    int32_t *qi[2] = {w.q_idx[0], w.q_idx[1]}, *ki[2] = {w.k_idx[0], w.k_idx[1]};
    const int qs = sort_segments(qk, qi, p.Nq, segments, per_batch, nullptr, w.sort_temp,
                                 w.sort_temp_bytes, s);
    const int ks = sort_segments(kk, ki, p.Nk, segments, per_batch, w.n_valid, w.sort_temp,
                                 w.sort_temp_bytes, s);
    *q_sorted = w.q_idx[qs];
    *k_sorted = w.k_idx[ks];
}

}  // namespace smyrf::gpu
