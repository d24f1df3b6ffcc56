// Stages 1 and 2, transform (XBOX+) and hash, fused: one pass over the rows computes
// each row's fp32 squared norm, the per-problem maximum norm and the projections a_r . x
// on the first d coordinates of every direction. The XBOX+ term a_r[extra] *
// sqrt(M2 - |x|^2) needs M2, i.e. every row's norm, so a second, elementwise kernel adds
// it and writes the sort keys. Same arithmetic as cpu/transform.cpp and cpu/hash.cpp.
#include "cuda/common.cuh"

namespace smyrf::gpu {
namespace {

constexpr int kWarps = 8;          // warps per block, one row at a time each
constexpr int kRowsPerBlock = 64;  // rows of one problem per block
constexpr int kCached = 8;         // row elements per lane kept in registers (d <= 256)

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// x: [B, heads_x, N, d] strided. Query rows: heads_x = H, group = 1. Key rows: heads_x =
// Hkv, group = H / Hkv (a key row is hashed with the directions of each query head that
// reads it). raw[((b * H + h) * R + r) * N + i]; norm[(b * heads_x + hx) * N + i];
// maxbuf[b * heads_x + hx] = max norm over the allowed rows (mask null: all rows).
template <class T>
__global__ void __launch_bounds__(kWarps * 32)
norms_projections(const T *__restrict__ x, Strides st, int heads_x, int N, int d, int R,
                  int group, int H, const float *__restrict__ dirs,
                  const uint8_t *__restrict__ mask, float *__restrict__ norm,
                  float *__restrict__ raw, uint32_t *__restrict__ maxbuf, int chunks) {
    const long long prob = blockIdx.x / chunks;
    const int chunk = (int)(blockIdx.x % chunks);
    const long long b = prob / heads_x;
    const int hx = (int)(prob % heads_x);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const T *base = x + b * st.batch + hx * st.head;
    const int ld = d + 2;
    float mx = 0.0f;
    const int i0 = chunk * kRowsPerBlock, i1 = min(N, i0 + kRowsPerBlock);
    for (int i = i0 + warp; i < i1; i += kWarps) {
        const T *row = base + (long long)i * st.token;
        float xr[kCached];
        float s = 0.0f;
#pragma unroll
        for (int t = 0; t < kCached; t++) {
            const int c = lane + 32 * t;
            xr[t] = c < d ? to_f32(row[c]) : 0.0f;
            s = fmaf(xr[t], xr[t], s);
        }
        for (int c = lane + 32 * kCached; c < d; c += 32) {
            const float v = to_f32(row[c]);
            s = fmaf(v, v, s);
        }
        s = warp_sum(s);
        if (lane == 0) norm[prob * N + i] = s;
        if ((!mask || mask[b * N + i]) && s > mx) mx = s;  // NaN never raises the max
        for (int g = 0; g < group; g++) {
            const long long h = (long long)hx * group + g;
            for (int r = 0; r < R; r++) {
                const float *a = dirs + (h * R + r) * ld;
                float pj = 0.0f;
#pragma unroll
                for (int t = 0; t < kCached; t++) {
                    const int c = lane + 32 * t;
                    if (c < d) pj = fmaf(xr[t], a[c], pj);
                }
                for (int c = lane + 32 * kCached; c < d; c += 32) pj = fmaf(to_f32(row[c]), a[c], pj);
                pj = warp_sum(pj);
                if (lane == 0) raw[((b * H + h) * R + r) * N + i] = pj;
            }
        }
    }
    __shared__ float wmax[kWarps];
    if (lane == 0) wmax[warp] = mx;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = 0.0f;
        for (int w = 0; w < kWarps; w++)
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

// Query sort keys of every (problem, round): key[e] = sortable(hash), idx[e] = i, with
// e = ((b * H + h) * R + r) * Nq + i (the raw projection has the same index).
__global__ void finish_queries(Problem p, const float *__restrict__ dirs,
                               const float *__restrict__ qnorm, const uint32_t *__restrict__ qmax,
                               const uint32_t *__restrict__ kmax, const float *__restrict__ raw,
                               uint32_t *__restrict__ key, int32_t *__restrict__ idx) {
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
        key[e] = sortable_bits(__fadd_rn(raw[e], Rounding::term(m2, qnorm[prob * p.Nq + i], a)));
        idx[e] = i;
    }
}

// Key sort keys: segment (problem, round) holds its valid keys, compacted in position
// order: key[pr * Nk + u] for u < n_valid[b] (the rest of the segment is not sorted).
__global__ void finish_keys(Problem p, const float *__restrict__ dirs,
                            const float *__restrict__ knorm, const uint32_t *__restrict__ qmax,
                            const uint32_t *__restrict__ kmax, const float *__restrict__ raw,
                            const int32_t *__restrict__ valid, const int32_t *__restrict__ n_valid,
                            uint32_t *__restrict__ key, int32_t *__restrict__ idx) {
    const long long n = (long long)p.B * p.H * p.R * p.Nk;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        const int u = (int)(e % p.Nk);
        const long long pr = e / p.Nk;
        const int r = (int)(pr % p.R);
        const long long prob = pr / p.R, b = prob / p.H;
        if (u >= n_valid[b]) continue;
        const int h = (int)(prob % p.H), hk = h / p.group;
        const int j = valid[b * p.Nk + u];
        const float m2 = __fadd_rn(__uint_as_float(qmax[prob]), __uint_as_float(kmax[b * p.Hkv + hk]));
        const float a = dirs[((long long)h * p.R + r) * (p.d + 2) + p.d];
        const float kn = knorm[(b * p.Hkv + hk) * p.Nk + j];
        key[e] = sortable_bits(__fadd_rn(raw[pr * p.Nk + j], Rounding::term(m2, kn, a)));
        idx[e] = j;
    }
}

unsigned stride_blocks(long long n) {
    const unsigned b = blocks_for(n, 256);
    return b < 65536u * 8u ? b : 65536u * 8u;
}

template <class T>
void run(const Problem &p, const T *q, const T *k, const uint8_t *key_mask, const float *dirs,
         const Work &w, cudaStream_t s) {
    SMYRF_CUDA(cudaMemsetAsync(w.q_max, 0, sizeof(uint32_t) * (size_t)p.B * p.H, s));
    SMYRF_CUDA(cudaMemsetAsync(w.k_max, 0, sizeof(uint32_t) * (size_t)p.B * p.Hkv, s));
    const int qc = (p.Nq + kRowsPerBlock - 1) / kRowsPerBlock;
    const int kc = (p.Nk + kRowsPerBlock - 1) / kRowsPerBlock;
    const long long qb = (long long)p.B * p.H * qc, kb = (long long)p.B * p.Hkv * kc;
    if (qb > 0x7fffffffLL || kb > 0x7fffffffLL)
        fail(SMYRF_ERR_UNSUPPORTED, "CUDA backend: batch * heads * tokens is too large for one grid");
    norms_projections<T><<<(unsigned)qb, kWarps * 32, 0, s>>>(
        q, p.q, p.H, p.Nq, p.d, p.R, 1, p.H, dirs, nullptr, w.q_norm, w.q_raw, w.q_max, qc);
    SMYRF_CUDA_LAUNCHED();
    norms_projections<T><<<(unsigned)kb, kWarps * 32, 0, s>>>(
        k, p.k, p.Hkv, p.Nk, p.d, p.R, p.group, p.H, dirs, key_mask, w.k_norm, w.k_raw, w.k_max,
        kc);
    SMYRF_CUDA_LAUNCHED();
    const long long nq = (long long)p.B * p.H * p.R * p.Nq, nk = (long long)p.B * p.H * p.R * p.Nk;
    finish_queries<<<stride_blocks(nq), 256, 0, s>>>(p, dirs, w.q_norm, w.q_max, w.k_max, w.q_raw,
                                                    w.q_key[0], w.q_idx[0]);
    SMYRF_CUDA_LAUNCHED();
    finish_keys<<<stride_blocks(nk), 256, 0, s>>>(p, dirs, w.k_norm, w.q_max, w.k_max, w.k_raw,
                                                 w.valid, w.n_valid, w.k_key[0], w.k_idx[0]);
    SMYRF_CUDA_LAUNCHED();
}

}  // namespace

void transform_hash(const Problem &p, smyrf_dtype dtype, const void *q, const void *k,
                    const uint8_t *key_mask, const float *dirs, const Work &w, cudaStream_t s) {
    switch (dtype) {
    case SMYRF_DTYPE_F32: run(p, (const float *)q, (const float *)k, key_mask, dirs, w, s); break;
    case SMYRF_DTYPE_F16: run(p, (const __half *)q, (const __half *)k, key_mask, dirs, w, s); break;
    case SMYRF_DTYPE_BF16:
        run(p, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k, key_mask, dirs, w, s);
        break;
    }
}

}  // namespace smyrf::gpu
