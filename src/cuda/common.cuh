// Shared pieces of the CUDA backend: error checks, element types, the problem and
// workspace descriptions the kernels receive, and the launch functions of each stage.
#pragma once

#include "core/bump.hpp"
#include "core/error.hpp"
#include "core/params.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

// A bound the kernels rely on (a scratch array's size, say), checked where
// tests/cuda/sim runs the device code on the CPU, which defines it first; nothing on a
// device.
#ifndef SMYRF_SIM_CHECK
#define SMYRF_SIM_CHECK(cond) ((void)0)
#endif

namespace smyrf::gpu {

// -inf, in device code as on the host (no <cmath> there).
constexpr float kNegInf = -__builtin_huge_valf();

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
// NaNs land beyond +-inf by sign, so every bit pattern has a fixed place; -0 is +0.
__device__ __forceinline__ uint32_t sortable_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if (u == 0x80000000u) u = 0;
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

inline Problem make_problem(const Desc &d) {
    Problem p{};
    p.B = (int)d.batch;
    p.H = (int)d.heads;
    p.Hkv = (int)d.kv_heads;
    p.group = (int)d.group_size();
    p.Nq = (int)d.q_len;
    p.Nk = (int)d.k_len;
    p.d = (int)d.qk_dim;
    p.dv = (int)d.v_dim;
    p.R = d.mode == SMYRF_MODE_SMYRF ? (int)d.n_hashes : 1;
    p.C = d.mode == SMYRF_MODE_SMYRF ? (int)d.n_clusters() : 1;
    p.causal = d.causal ? 1 : 0;
    p.causal_offset = (long long)d.causal_offset();
    p.scale = (float)d.scale;
    p.q = d.q, p.k = d.k, p.v = d.v, p.out = d.out;
    return p;
}

// Bump allocator over the workspace (256-byte aligned pieces); a sizing pass when base is
// null. A piece is the product of its factors; sizes past 2^62 bytes are refused
// (core/bump.hpp).
class Carver {
public:
    explicit Carver(void *base) : base_((char *)base) {}
    template <class T>
    T *take(std::initializer_list<size_t> factors) {
        size_t bytes = sizeof(T);
        for (size_t f : factors) bytes = bytes_times(bytes, f);
        const size_t at = take_bytes(used_, bytes, 256, "CUDA backend: ");
        return base_ ? (T *)(base_ + at) : nullptr;
    }
    size_t used() const { return used_; }

private:
    char *base_;
    size_t used_ = 0;
};

// Device buffers of one execute, carved out of the workspace (see backend.cu, carve).
struct Work {
    int32_t *valid;             // [B][Nk] ascending valid key positions
    int32_t *n_valid;           // [B]
    float *q_norm, *k_norm;     // [B*H][Nq], [B*Hkv][Nk]   fp32 |x|^2
    uint32_t *q_max, *k_max;    // [B*H], [B*Hkv]           max norms as float bits
    uint64_t *q_key[2], *k_key[2];  // [B*H*R][Nq], [B*H*R][Nk] sort double buffers:
                                    // segment << 32 | sortable hash bits
    int32_t *q_idx[2], *k_idx[2];
    float *q_raw, *k_raw;       // = q_key[1], k_key[1]: a_r . x before the XBOX+ term
    void *sort_temp;
    size_t sort_temp_bytes;
    float *acc, *m, *l;         // [B*H][Nq][dv], [B*H][Nq] x 2: the online combine state
                                // (forward only)
    // Backward only: fp32 gradient sums per query head, dout . out, and whether a query
    // met an allowed key in some round (SMYRF: the others fall back).
    float *dq, *dk, *dv;        // [B*H][Nq][d], [B*H][Nk][d], [B*H][Nk][dv]
    float *delta;               // [B*H][Nq]
    int32_t *met;               // [B*H][Nq]
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
    bool last;                  // the last round (DENSE: always): mma path writes out, lse
    const int32_t *q_sorted;    // SMYRF: [B*H*R][Nq] query positions in hash order
    const int32_t *k_sorted;    // SMYRF: [B*H*R][Nk] valid key positions in hash order
    int max_cluster_queries;    // SMYRF: ceil(Nq / C), the largest query cluster
};

// How many of the n ascending valid positions vl[] are <= limit (binary search).
__device__ inline int valid_upto(const int32_t *vl, int n, long long limit) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (vl[mid] <= limit) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// The key a query falls back to when it met no allowed key in any round
// (docs/algorithm.md): its latest allowed valid key, or -1 when it has none.
__device__ inline int fallback_key(const Problem &p, const int32_t *valid,
                                   const int32_t *n_valid, long long b, int i) {
    const long long limit = p.causal ? (long long)i + p.causal_offset : (long long)p.Nk - 1;
    const int32_t *vl = valid + b * p.Nk;
    const int n = valid_upto(vl, n_valid[b], limit);
    return n > 0 ? vl[n - 1] : -1;
}

// The queries and keys one attention block works on: query tile `tile` of problem `prob`
// (a cluster's sub-tile in SMYRF, consecutive positions in DENSE). nq == 0: no work.
struct BlockWork {
    long long prob, b;
    int h, hk;
    int q0, nq;                 // first query (hash-order index or position), count
    const int32_t *qlist;       // SMYRF: query positions from q0 on; DENSE: null
    const int32_t *klist;       // key positions to attend, nk of them
    int nk;
};

// Blocks of bq query rows per problem: query tiles (DENSE), or every cluster's sub-tiles.
__host__ __device__ inline int tiles_per_problem(const Problem &p, const AttentionJob &job,
                                                 int bq) {
    return job.dense ? (p.Nq + bq - 1) / bq
                     : p.C * ((job.max_cluster_queries + bq - 1) / bq);
}

__device__ inline BlockWork block_work(const Problem &p, const AttentionJob &job, int bq,
                                       long long block, const int32_t *valid,
                                       const int32_t *n_valid) {
    BlockWork w{};
    const int tiles = tiles_per_problem(p, job, bq);
    w.prob = block / tiles;
    const int tile = (int)(block % tiles);
    w.b = w.prob / p.H;
    w.h = (int)(w.prob % p.H);
    w.hk = w.h / p.group;
    const int nv = n_valid[w.b];
    if (job.dense) {
        w.q0 = tile * bq;
        w.nq = min(bq, p.Nq - w.q0);
        w.qlist = nullptr;
        w.klist = valid + w.b * p.Nk;
        w.nk = nv;
        if (p.causal)  // valid keys after the last query's limit are never allowed
            w.nk = valid_upto(w.klist, nv, (long long)w.q0 + w.nq - 1 + p.causal_offset);
        return w;
    }
    const int per = (job.max_cluster_queries + bq - 1) / bq;
    const int c = tile / per, sub = tile % per;
    const int c0 = (int)((long long)c * p.Nq / p.C), c1 = (int)((long long)(c + 1) * p.Nq / p.C);
    w.q0 = c0 + sub * bq;
    w.nq = max(0, min(bq, c1 - w.q0));
    const long long seg = w.prob * p.R + job.round;
    w.qlist = job.q_sorted + seg * p.Nq + w.q0;
    const int k0 = (int)((long long)c * nv / p.C), k1 = (int)((long long)(c + 1) * nv / p.C);
    w.klist = job.k_sorted + seg * p.Nk + k0;
    w.nk = k1 - k0;
    return w;
}

// Sum over groups of W consecutive lanes (W a power of two <= 32) named by mask.
template <int W>
__device__ __forceinline__ float group_sum(float x, unsigned mask) {
#pragma unroll
    for (int o = W / 2; o > 0; o >>= 1) x += __shfl_xor_sync(mask, x, o);
    return x;
}

// The fallback of a query that met no allowed key in any round (docs/algorithm.md): its
// latest allowed valid key alone, else zeros and lse = -inf. W lanes (sub = 0..W-1, all
// in mask) write the row together; returns the lse.
template <int W, class T>
__device__ float fallback_row(const Problem &p, const T *q, const T *k, const T *v,
                              const int32_t *valid, const int32_t *n_valid, long long b, int h,
                              int i, T *orow, int sub, unsigned mask) {
    const int hk = h / p.group;
    const int j = fallback_key(p, valid, n_valid, b, i);
    if (j < 0) {
        for (int c = sub; c < p.dv; c += W) orow[c] = from_f32<T>(0.0f);
        return kNegInf;
    }
    const T *vrow = v + b * p.v.batch + (long long)hk * p.v.head + (long long)j * p.v.token;
    const T *qrow = q + b * p.q.batch + (long long)h * p.q.head + (long long)i * p.q.token;
    const T *krow = k + b * p.k.batch + (long long)hk * p.k.head + (long long)j * p.k.token;
    for (int c = sub; c < p.dv; c += W) orow[c] = vrow[c];
    float dot = 0.0f;
    for (int c = sub; c < p.d; c += W) dot = fmaf(to_f32(qrow[c]), to_f32(krow[c]), dot);
    return p.scale * group_sum<W>(dot, mask);
}

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

// cluster.cu: stable radix sort of every (problem, round) segment; returns
// through q_sorted/k_sorted the buffers holding the sorted positions.
size_t sort_temp_bytes(const Problem &p);
void sort_clusters(const Problem &p, const Work &w, cudaStream_t s, const int32_t **q_sorted,
                   const int32_t **k_sorted);

// attention.cu: one launch per SMYRF round (or one for DENSE), merged online into
// w.acc / w.m / w.l; combine() finishes. Any dtype, dims and strides.
void attention(const Problem &p, smyrf_dtype dtype, const Tiles &t, const AttentionJob &job,
               const void *q, const void *k, const void *v, const Work &w, cudaStream_t s);

// attention_mma.cu: the tensor-core path for fp16/bf16 with d = dv in {64, 128} and
// 16-byte aligned rows (mma_applies says when). Same merge as attention(), but the last
// round (and DENSE) also writes out and lse: no combine() after it.
bool mma_applies(const Problem &p, smyrf_dtype dtype, const void *q, const void *k,
                 const void *v, const void *out);
void attention_mma_prepare(smyrf_dtype dtype, int d);
void attention_mma(const Problem &p, smyrf_dtype dtype, const AttentionJob &job, const void *q,
                   const void *k, const void *v, void *out, float *lse, const Work &w,
                   cudaStream_t s);

// backward.cu: dq, dk, dv (docs/algorithm.md, "Backward") on the clusters of the
// forward (SMYRF: q_sorted, k_sorted of sort_clusters) or the dense tiles; the caller's
// gradients are written once, in its dtype and strides.
void backward(const Problem &p, smyrf_dtype dtype, bool dense, const int32_t *q_sorted,
              const int32_t *k_sorted, const void *q, const void *k, const void *v,
              const void *out, const float *lse, const void *dout, void *dq, void *dk, void *dv,
              const Work &w, cudaStream_t s);
// False when the backward's tiles of these dims do not fit max_smem bytes.
bool backward_prepare(smyrf_dtype dtype, int d, int dv, size_t max_smem);
size_t backward_smem(int d, int dv);

// combine.cu: out = acc / l and lse = m + log l, or the fallback; writes out once.
void combine(const Problem &p, smyrf_dtype dtype, const void *q, const void *k, const void *v,
             void *out, float *lse, const Work &w, cudaStream_t s);

// dense.cu: DENSE mode (valid keys, tiled attention, combine).
void dense(const Problem &p, smyrf_dtype dtype, const Tiles &t, bool mma, const void *q,
           const void *k, const void *v, const uint8_t *key_mask, void *out, float *lse,
           const Work &w, cudaStream_t s);

inline unsigned blocks_for(long long n, int per_block) {
    const long long b = (n + per_block - 1) / per_block;
    return (unsigned)(b < 1 ? 1 : (b > 0x7fffffffLL ? 0x7fffffffLL : b));
}

// Blocks for a grid-stride loop over n items, per_block at a time: enough to fill any GPU,
// capped so that a huge n loops instead of launching millions of blocks.
inline unsigned stride_grid(long long n, int per_block) {
    const unsigned b = blocks_for(n, per_block);
    return b < 65536u * 16u ? b : 65536u * 16u;
}

// Calls fn(row, prob, b, h, i, lane) for every query row (prob = b * H + h, row = prob *
// Nq + i) of every problem, one warp per row, over a grid-stride loop.
template <class Fn>
__device__ void for_each_query_row(const Problem &p, Fn fn) {
    const long long rows = (long long)p.B * p.H * p.Nq;
    const int lane = threadIdx.x % 32;
    const long long warps = (long long)gridDim.x * blockDim.x / 32;
    for (long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32; row < rows;
         row += warps) {
        const long long prob = row / p.Nq;
        fn(row, prob, prob / p.H, (int)(prob % p.H), (int)(row % p.Nq), lane);
    }
}

}  // namespace smyrf::gpu
