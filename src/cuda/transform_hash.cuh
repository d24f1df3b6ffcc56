// Stages 1 and 2, transform (XBOX+) and hash, fused, as device code and its launch
// sequence (transform_hash.cu runs it on the device, tests/cuda/sim on the CPU): one pass
// over the rows computes each row's fp32 squared norm, the per-problem maximum norm and
// the projections a_r . x on the first d coordinates of every direction. The XBOX+ term
// a_r[extra] * sqrt(M2 - |x|^2) needs M2, i.e. every row's norm, so a second, elementwise
// kernel adds it and writes the sort keys. Same arithmetic as cpu/transform.cpp and
// cpu/hash.cpp.
#pragma once

#include "cuda/common.cuh"

// Internal to the including file (the library, or the simulator test): no symbol clashes.
namespace smyrf::gpu::fw {
namespace {

constexpr int kThreads = 256;
constexpr int kLanes = 8;          // lanes per row: 4 rows per warp in flight
constexpr int kRowsPerBlock = 32;  // rows of one problem per block: one per lane group
constexpr int kCached = 16;        // row elements per lane kept in registers (d <= 128)

// x: [B, heads_x, N, d] strided. Query rows: heads_x = H, group = 1. Key rows: heads_x =
// Hkv, group = H / Hkv (a key row is hashed with the directions of each query head that
// reads it). raw[((b * H + h) * R + r) * N + i]; norm[(b * heads_x + hx) * N + i];
// maxbuf[b * heads_x + hx] = max norm over the allowed rows (mask null: all rows).
// kLanes lanes share a row, so a lane has d / 8 independent loads in flight.
template <class T>
__global__ void __launch_bounds__(kThreads, 3)
norms_projections(const T *__restrict__ x, Strides st, int heads_x, int N, int d, int R,
                  int group, int H, const float *__restrict__ dirs,
                  const uint8_t *__restrict__ mask, float *__restrict__ norm,
                  float *__restrict__ raw, uint32_t *__restrict__ maxbuf, int chunks) {
    const long long prob = blockIdx.x / chunks;
    const int chunk = (int)(blockIdx.x % chunks);
    const long long b = prob / heads_x;
    const int hx = (int)(prob % heads_x);
    const int lane = threadIdx.x % 32, sub = threadIdx.x % kLanes, row0 = threadIdx.x / kLanes;
    const unsigned rowmask = 0xffu << (lane & ~(kLanes - 1));
    const T *base = x + b * st.batch + hx * st.head;
    const int ld = d + 2;
    float mx = 0.0f;
    const int i0 = chunk * kRowsPerBlock, i1 = min(N, i0 + kRowsPerBlock);
    for (int i = i0 + row0; i < i1; i += kThreads / kLanes) {
        const T *row = base + (long long)i * st.token;
        float xr[kCached];
        float s = 0.0f;
#pragma unroll
        for (int t = 0; t < kCached; t++) {
            const int c = sub + kLanes * t;
            xr[t] = c < d ? to_f32(row[c]) : 0.0f;
        }
#pragma unroll
        for (int t = 0; t < kCached; t++) s = fmaf(xr[t], xr[t], s);
        for (int c = sub + kLanes * kCached; c < d; c += kLanes) {
            const float v = to_f32(row[c]);
            s = fmaf(v, v, s);
        }
        s = group_sum<kLanes>(s, rowmask);
        if (sub == 0) norm[prob * N + i] = s;
        if ((!mask || mask[b * N + i]) && s > mx) mx = s;  // NaN never raises the max
        for (int g = 0; g < group; g++) {
            const long long h = (long long)hx * group + g;
            for (int r = 0; r < R; r++) {
                const float *a = dirs + (h * R + r) * ld;
                float pj = 0.0f;
#pragma unroll
                for (int t = 0; t < kCached; t++) {
                    const int c = sub + kLanes * t;
                    if (c < d) pj = fmaf(xr[t], __ldg(a + c), pj);
                }
                for (int c = sub + kLanes * kCached; c < d; c += kLanes)
                    pj = fmaf(to_f32(row[c]), __ldg(a + c), pj);
                pj = group_sum<kLanes>(pj, rowmask);
                if (sub == 0) raw[((b * H + h) * R + r) * N + i] = pj;
            }
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    // The warps' maxima meet in dynamic shared memory (kThreads / 32 floats; dynamic so
    // that the simulator, where the test defines it, shares it between threads too).
    extern __shared__ __align__(128) unsigned char smem[];
    float *wmax = (float *)smem;
    if (lane == 0) wmax[threadIdx.x / 32] = mx;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = 0.0f;
        for (int w = 0; w < kThreads / 32; w++)
            if (wmax[w] > m) m = wmax[w];
        // Norms are >= 0: their bit patterns order like the floats.
        if (m > 0.0f) atomicMax(maxbuf + prob, __float_as_uint(m));
    }
}

struct Rounding {  // M2 and the XBOX+ term, rounded op by op as on the CPU (no FMA)
    __device__ static float term(float m2, float norm, float a) {
        const float gap = __fsub_rn(m2, norm);
        const float ext = sqrtf(gap > 0.0f ? gap : 0.0f);
        return __fmul_rn(a, ext);
    }
};

// A sort key: the (problem, round) segment above the hash's sortable bits, so one flat
// radix sort orders every segment at once (cluster.cu).
__device__ __forceinline__ uint64_t sort_key(long long segment, uint32_t bits) {
    return (uint64_t)segment << 32 | bits;
}

// Query sort keys of every (problem, round): key[e] = (segment, sortable(hash)), idx[e] =
// i, with e = ((b * H + h) * R + r) * Nq + i (the raw projection has the same index).
__global__ void finish_queries(Problem p, const float *__restrict__ dirs,
                               const float *__restrict__ qnorm, const uint32_t *__restrict__ qmax,
                               const uint32_t *__restrict__ kmax, const float *__restrict__ raw,
                               uint64_t *__restrict__ key, int32_t *__restrict__ idx) {
    const long long n = (long long)p.B * p.H * p.R * p.Nq;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        const int i = (int)(e % p.Nq);
        const long long pr = e / p.Nq;
        const int r = (int)(pr % p.R);
        const long long prob = pr / p.R, b = prob / p.H;
        const int h = (int)(prob % p.H), hk = h / p.group;
        const float m2 = __fadd_rn(__uint_as_float(qmax[prob]), __uint_as_float(kmax[b * p.Hkv + hk]));
        const float a = dirs[((long long)h * p.R + r) * (p.d + 2) + p.d + 1];
        key[e] = sort_key(pr, sortable_bits(__fadd_rn(raw[e], Rounding::term(m2, qnorm[prob * p.Nq + i], a))));
        idx[e] = i;
    }
}

// Key sort keys: segment B*H*R + (problem, round) holds its valid keys, compacted in
// position order: key[pr * Nk + u] for u < n_valid[b]. The rest of the segment gets the
// largest hash bits and position -1: the stable sort keeps it after every valid key.
__global__ void finish_keys(Problem p, const float *__restrict__ dirs,
                            const float *__restrict__ knorm, const uint32_t *__restrict__ qmax,
                            const uint32_t *__restrict__ kmax, const float *__restrict__ raw,
                            const int32_t *__restrict__ valid, const int32_t *__restrict__ n_valid,
                            uint64_t *__restrict__ key, int32_t *__restrict__ idx) {
    const long long n = (long long)p.B * p.H * p.R * p.Nk;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        const int u = (int)(e % p.Nk);
        const long long pr = e / p.Nk;
        const int r = (int)(pr % p.R);
        const long long prob = pr / p.R, b = prob / p.H;
        const long long seg = (long long)p.B * p.H * p.R + pr;
        if (u >= n_valid[b]) {
            key[e] = sort_key(seg, 0xffffffffu);
            idx[e] = -1;
            continue;
        }
        const int h = (int)(prob % p.H), hk = h / p.group;
        const int j = valid[b * p.Nk + u];
        const float m2 = __fadd_rn(__uint_as_float(qmax[prob]), __uint_as_float(kmax[b * p.Hkv + hk]));
        const float a = dirs[((long long)h * p.R + r) * (p.d + 2) + p.d];
        const float kn = knorm[(b * p.Hkv + hk) * p.Nk + j];
        key[e] = sort_key(seg, sortable_bits(__fadd_rn(raw[pr * p.Nk + j], Rounding::term(m2, kn, a))));
        idx[e] = j;
    }
}

// Norms, maxima and projections of q and k, then the sort keys of every (problem, round):
// queries into w.q_key[0], w.q_idx[0], valid keys into w.k_key[0], w.k_idx[0]. w.q_max and
// w.k_max must start at 0 (valid_keys clears them).
template <class T, class Exec>
void hash(const Exec &ex, const Problem &p, const T *q, const T *k, const uint8_t *key_mask,
          const float *dirs, const Work &w) {
    const int qc = (p.Nq + kRowsPerBlock - 1) / kRowsPerBlock;
    const int kc = (p.Nk + kRowsPerBlock - 1) / kRowsPerBlock;
    const long long qb = (long long)p.B * p.H * qc, kb = (long long)p.B * p.Hkv * kc;
    if (qb > 0x7fffffffLL || kb > 0x7fffffffLL)
        fail(SMYRF_ERR_UNSUPPORTED, "CUDA backend: batch * heads * tokens is too large for one grid");
    const uint8_t *no_mask = nullptr;
    const size_t maxima = kThreads / 32 * sizeof(float);  // the warps' maxima
    ex.launch(norms_projections<T>, (unsigned)qb, (unsigned)kThreads, maxima, q, p.q, p.H, p.Nq,
              p.d, p.R, 1, p.H, dirs, no_mask, w.q_norm, w.q_raw, w.q_max, qc);
    ex.launch(norms_projections<T>, (unsigned)kb, (unsigned)kThreads, maxima, k, p.k, p.Hkv, p.Nk,
              p.d, p.R, p.group, p.H, dirs, key_mask, w.k_norm, w.k_raw, w.k_max, kc);
    const long long nq = (long long)p.B * p.H * p.R * p.Nq, nk = (long long)p.B * p.H * p.R * p.Nk;
    ex.launch(finish_queries, stride_grid(nq, 256), 256u, (size_t)0, p, dirs,
              (const float *)w.q_norm, (const uint32_t *)w.q_max, (const uint32_t *)w.k_max,
              (const float *)w.q_raw, w.q_key[0], w.q_idx[0]);
    ex.launch(finish_keys, stride_grid(nk, 256), 256u, (size_t)0, p, dirs,
              (const float *)w.k_norm, (const uint32_t *)w.q_max, (const uint32_t *)w.k_max,
              (const float *)w.k_raw, (const int32_t *)w.valid, (const int32_t *)w.n_valid,
              w.k_key[0], w.k_idx[0]);
}

}  // namespace
}  // namespace smyrf::gpu::fw
