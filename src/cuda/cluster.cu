// Stage 3, cluster: valid-key compaction (the key-padding mask as ascending position
// lists) and a stable sort of every (problem, round) segment, queries and valid keys.
// The keys are the segment index above the sortable float bits (cpu/cluster.cpp), so one
// flat LSD radix sort over all segments fills the whole GPU (a segmented sort gives each
// segment one block: 32 blocks for 16 heads x 2 rounds). Values are positions in
// ascending order and LSD radix sorting is stable, so ties break by position, as on the
// CPU. The balanced cut needs no kernel: cluster c covers sorted positions
// [c * n / C, (c + 1) * n / C) (the attention kernels read them in place).
#include "cuda/common.cuh"

#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>

namespace smyrf::gpu {
namespace {

constexpr int kScanThreads = 1024;

// One block per batch: an exclusive scan of the mask flags, chunk after chunk.
__global__ void __launch_bounds__(kScanThreads)
compact_valid(const uint8_t *__restrict__ mask, int Nk, int32_t *__restrict__ valid,
              int32_t *__restrict__ n_valid, uint32_t *__restrict__ q_max, int H,
              uint32_t *__restrict__ k_max, int Hkv) {
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
    // SMYRF: the batch's norm maxima start at 0 for transform_hash (no memset launches).
    if (q_max)
        for (int h = threadIdx.x; h < H; h += blockDim.x) q_max[b * H + h] = 0;
    if (k_max)
        for (int h = threadIdx.x; h < Hkv; h += blockDim.x) k_max[b * Hkv + h] = 0;
}

// Bits a sort must look at: the hash bits and enough segment bits for `segments`.
int end_bit(long long segments) {
    int bits = 32;
    while (bits < 64 && (1ULL << (bits - 32)) < (unsigned long long)segments) bits++;
    return bits;
}

// Segments per sort call so that one call never holds more than INT_MAX items.
long long segments_per_call(long long len) {
    return std::max<long long>(1, (long long)INT_MAX / std::max<long long>(len, 1));
}

cudaError_t sort_call(void *temp, size_t &bytes, cub::DoubleBuffer<uint64_t> &keys,
                      cub::DoubleBuffer<int32_t> &vals, long long items, int bits, cudaStream_t s) {
    return cub::DeviceRadixSort::SortPairs(temp, bytes, keys, vals, (int)items, 0, bits, s);
}

// Temporary bytes to sort `segments` runs of len items whose keys hold up to key_segments.
size_t temp_bytes_for(long long len, long long segments, long long key_segments) {
    const long long per = segments_per_call(len);
    size_t most = 0;
    for (long long count : {std::min(per, segments), segments % per}) {
        if (count <= 0) continue;
        size_t bytes = 0;
        cub::DoubleBuffer<uint64_t> keys(nullptr, nullptr);
        cub::DoubleBuffer<int32_t> vals(nullptr, nullptr);
        SMYRF_CUDA(sort_call(nullptr, bytes, keys, vals, count * len, end_bit(key_segments), 0));
        most = std::max(most, bytes);
    }
    return most;
}

// Sorts `segments` runs of len items (flat sorts of whole runs: the segment is the key's
// high part, below key_segments); returns the buffer index (0 or 1) holding the result.
int sort_segments(uint64_t *key[2], int32_t *idx[2], long long len, long long segments,
                  long long key_segments, void *temp, size_t temp_bytes, cudaStream_t s) {
    const long long per = segments_per_call(len);
    int selector = -1;
    for (long long first = 0; first < segments; first += per) {
        const long long count = std::min(per, segments - first);
        const size_t at = (size_t)first * (size_t)len;
        cub::DoubleBuffer<uint64_t> keys(key[0] + at, key[1] + at);
        cub::DoubleBuffer<int32_t> vals(idx[0] + at, idx[1] + at);
        size_t bytes = temp_bytes;
        SMYRF_CUDA(sort_call(temp, bytes, keys, vals, count * len, end_bit(key_segments), s));
        if (selector >= 0 && vals.selector != selector)
            fail(SMYRF_ERR_INTERNAL, "CUDA backend: sort calls ended in different buffers");
        selector = vals.selector;
    }
    return selector;
}

// Queries and keys in one sort when every item fits one call (keys are segments
// B*H*R.. 2*B*H*R - 1), else each in calls of whole segments.
bool one_sort(const Problem &p) {
    return (long long)p.B * p.H * p.R * ((long long)p.Nq + p.Nk) <= INT_MAX;
}

}  // namespace

void valid_keys(const Problem &p, const uint8_t *key_mask, const Work &w, cudaStream_t s) {
    compact_valid<<<(unsigned)p.B, kScanThreads, 0, s>>>(key_mask, p.Nk, w.valid, w.n_valid,
                                                         w.q_max, p.H, w.k_max, p.Hkv);
    SMYRF_CUDA_LAUNCHED();
}

size_t sort_temp_bytes(const Problem &p) {
    const long long segments = (long long)p.B * p.H * p.R;
    if (one_sort(p)) return temp_bytes_for(segments * ((long long)p.Nq + p.Nk), 1, 2 * segments);
    return std::max(temp_bytes_for(p.Nq, segments, 2 * segments),
                    temp_bytes_for(p.Nk, segments, 2 * segments));
}

void sort_clusters(const Problem &p, const Work &w, cudaStream_t s, const int32_t **q_sorted,
                   const int32_t **k_sorted) {
    const long long segments = (long long)p.B * p.H * p.R, all = 2 * segments;
    uint64_t *qk[2] = {w.q_key[0], w.q_key[1]}, *kk[2] = {w.k_key[0], w.k_key[1]};
    int32_t *qi[2] = {w.q_idx[0], w.q_idx[1]}, *ki[2] = {w.k_idx[0], w.k_idx[1]};
    if (one_sort(p)) {  // one run of every item
        const int at = sort_segments(qk, qi, segments * ((long long)p.Nq + p.Nk), 1, all,
                                     w.sort_temp, w.sort_temp_bytes, s);
        *q_sorted = w.q_idx[at];
        *k_sorted = w.k_idx[at];
        return;
    }
    const int qs = sort_segments(qk, qi, p.Nq, segments, all, w.sort_temp, w.sort_temp_bytes, s);
    const int ks = sort_segments(kk, ki, p.Nk, segments, all, w.sort_temp, w.sort_temp_bytes, s);
    *q_sorted = w.q_idx[qs];
    *k_sorted = w.k_idx[ks];
}

}  // namespace smyrf::gpu
