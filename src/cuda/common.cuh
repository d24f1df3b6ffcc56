// Shared pieces of the CUDA backend: error checks, element types, the problem and
// workspace descriptions the kernels receive, and the launch functions of each stage.
#pragma once

#include "core/error.hpp"
#include "core/params.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace smyrf::gpu {

// ---------------------------------------------------------------- errors

// Throws smyrf::Error: SMYRF_ERR_OUT_OF_MEMORY for an allocation failure, else
// SMYRF_ERR_DEVICE, with the CUDA error name and text and the call that failed.
[[noreturn]] void raise(cudaError_t e, const char *call, const char *file, int line);

#define SMYRF_CUDA(call)                                                        \
    do {                                                                        \
        const cudaError_t smyrf_e_ = (call);                                    \
        if (smyrf_e_ != cudaSuccess)                                            \
            ::smyrf::gpu::raise(smyrf_e_, #call, __FILE__, __LINE__);           \
    } while (0)

// After a <<<...>>> launch: configuration errors (and earlier asynchronous ones).
#define SMYRF_CUDA_LAUNCHED() SMYRF_CUDA(cudaGetLastError())

// ---------------------------------------------------------------- element types

template <class T> struct Elem;
template <> struct Elem<float> {
    __device__ static float load(float x) { return x; }
    __device__ static float store(float x) { return x; }
};
template <> struct Elem<__half> {
    __device__ static float load(__half x) { return __half2float(x); }
    __device__ static __half store(float x) { return __float2half_rn(x); }
};
template <> struct Elem<__nv_bfloat16> {
    __device__ static float load(__nv_bfloat16 x) { return __bfloat162float(x); }
    __device__ static __nv_bfloat16 store(float x) { return __float2bfloat16_rn(x); }
};

template <class T> __device__ __forceinline__ float to_f32(T x) { return Elem<T>::load(x); }
template <class T> __device__ __forceinline__ T from_f32(float x) { return Elem<T>::store(x); }

// Float bits as unsigned integers in the float order (cpu/cluster.cpp, sortable_bits):
// NaNs land beyond +-inf by sign, so every bit pattern has a fixed place.
__device__ __forceinline__ uint32_t sortable_bits(float f) {
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// ---------------------------------------------------------------- descriptions

// The part of smyrf::Desc the kernels read (plain values, passed by value).
struct Problem {
    int B, H, Hkv, group;    // group = H / Hkv
    int Nq, Nk, d, dv;
    int R, C;                // SMYRF: rounds, clusters per round
    int causal;
    long long causal_offset; // Nk - Nq: key j allowed for query i iff j <= i + offset
    float scale;
    Strides q, k, v, out;    // element strides (batch, head, token)
};

Problem make_problem(const Desc &d);

// Device buffers of one execute, carved out of the workspace (see backend.cu, carve).
struct Work {
    int32_t *valid;             // [B][Nk] ascending valid key positions
    int32_t *n_valid;           // [B]
    float *q_norm, *k_norm;     // [B*H][Nq], [B*Hkv][Nk]   fp32 |x|^2
    uint32_t *q_max, *k_max;    // [B*H], [B*Hkv]           max norms as float bits
    uint32_t *q_key[2], *k_key[2];  // [B*H*R][Nq], [B*H*R][Nk] sort double buffers
    int32_t *q_idx[2], *k_idx[2];
    float *q_raw, *k_raw;       // = q_key[1], k_key[1]: a_r . x before the XBOX+ term
    void *sort_temp;
    size_t sort_temp_bytes;
    float *acc, *m, *l;         // [B*H][Nq][dv], [B*H][Nq] x 2: the online combine state
};

// Tile shape of the attention kernel, chosen per plan to fit shared memory.
struct Tiles {
    int bq, bk;      // query rows, key rows per tile (multiples of 16)
    int dp, dvp;     // d and dv rounded up to 16
    size_t smem;     // dynamic shared memory bytes
};

// What the attention kernel attends: SMYRF clusters of one round, or DENSE query tiles.
struct AttentionJob {
    bool dense;
    int round;                  // SMYRF: r (round 0 starts the combine state)
    const int32_t *q_sorted;    // SMYRF: [B*H*R][Nq] query positions in hash order
    const int32_t *k_sorted;    // SMYRF: [B*H*R][Nk] valid key positions in hash order
    int tiles_per_cluster;      // SMYRF: ceil(max queries per cluster / bq)
};

// ---------------------------------------------------------------- stages (launchers)

// Tiles for dtype/dims within max_smem bytes; bq == 0 when nothing fits.
Tiles choose_tiles(smyrf_dtype dtype, int d, int dv, size_t max_smem);
// Raises the kernel's dynamic shared memory limit on the current device to max_smem (the
// device's opt-in maximum: every plan sets the same value, so plans never shrink it).
void attention_prepare(smyrf_dtype dtype, size_t max_smem);

// cluster.cu: valid[b] and n_valid[b] from the key-padding mask (null: all valid).
void valid_keys(const Problem &p, const uint8_t *key_mask, const Work &w, cudaStream_t s);

// transform_hash.cu: fp32 norms, their maxima (XBOX+) and the raw projections in one pass
// over the rows, then the XBOX+ term and the sort keys (sortable bits, positions).
void transform_hash(const Problem &p, smyrf_dtype dtype, const void *q, const void *k,
                    const uint8_t *key_mask, const float *dirs, const Work &w,
                    cudaStream_t s);

// cluster.cu: stable segmented radix sort of every (problem, round) segment; returns
// through q_sorted/k_sorted the buffers holding the sorted positions.
size_t sort_temp_bytes(const Problem &p);
void sort_clusters(const Problem &p, const Work &w, cudaStream_t s, const int32_t **q_sorted,
                   const int32_t **k_sorted);

// attention.cu: one launch per SMYRF round (or one for DENSE), merged online into
// w.acc / w.m / w.l.
void attention(const Problem &p, smyrf_dtype dtype, const Tiles &t, const AttentionJob &job,
               const void *q, const void *k, const void *v, const Work &w, cudaStream_t s);

// combine.cu: out = acc / l and lse = m + log l, or the fallback; writes out once.
void combine(const Problem &p, smyrf_dtype dtype, const void *q, const void *k, const void *v,
             void *out, float *lse, const Work &w, cudaStream_t s);

// dense.cu: DENSE mode (valid keys, tiled attention, combine).
void dense(const Problem &p, smyrf_dtype dtype, const Tiles &t, const void *q, const void *k,
           const void *v, const uint8_t *key_mask, void *out, float *lse, const Work &w,
           cudaStream_t s);

inline unsigned blocks_for(long long n, int per_block) {
    const long long b = (n + per_block - 1) / per_block;
    return (unsigned)(b < 1 ? 1 : (b > 0x7fffffffLL ? 0x7fffffffLL : b));
}

}  // namespace smyrf::gpu
