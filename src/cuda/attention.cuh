// The forward's device code, stages 4 and 5 (attention.cu and combine.cu say what it
// computes), and its launch sequences: attention.cu and combine.cu run them on the device,
// tests/cuda/sim on the CPU (test_cuda_forward_sim).
#pragma once

#include "cuda/common.cuh"

#ifdef __CUDACC__
#include <mma.h>  // the simulator brings its own nvcuda::wmma
#endif

#include <climits>
#include <cstring>

// Internal to the including file (the library, or the simulator test): no symbol clashes.
namespace smyrf::gpu::fw {
namespace {

using namespace nvcuda;

template <class T> struct Pad { static constexpr int v = 8; };  // 16-byte row padding
template <> struct Pad<float> { static constexpr int v = 1; };  // odd rows: no bank conflicts

// Shared-memory layout of one block (byte offsets), the same on host and device.
struct Layout {
    int ldq, ldk, ldv, ldp, lds, ldo;
    size_t q, k, v, p, s, o, alpha, qpos, kpos, total;
};

__host__ __device__ inline size_t align128(size_t x) { return (x + 127) & ~(size_t)127; }

template <class T>
__host__ __device__ Layout layout_of(int bq, int bk, int dp, int dvp) {
    Layout L;
    const int pad = Pad<T>::v;
    L.ldq = dp + pad;
    L.ldk = dp + pad;
    L.ldv = dvp + pad;
    L.ldp = bk + pad;
    L.lds = bk + 4;
    L.ldo = dvp + 4;
    size_t at = 0;
    L.q = at, at = align128(at + (size_t)bq * L.ldq * sizeof(T));
    L.k = at, at = align128(at + (size_t)bk * L.ldk * sizeof(T));
    L.v = at, at = align128(at + (size_t)bk * L.ldv * sizeof(T));
    L.p = at, at = align128(at + (size_t)bq * L.ldp * sizeof(T));
    L.s = at, at = align128(at + (size_t)bq * L.lds * sizeof(float));
    L.o = at, at = align128(at + (size_t)bq * L.ldo * sizeof(float));
    L.alpha = at, at = align128(at + (size_t)bq * sizeof(float));
    L.qpos = at, at = align128(at + (size_t)bq * sizeof(int));
    L.kpos = at, at = align128(at + (size_t)bk * sizeof(int));
    L.total = at;
    return L;
}

// Gathers rows pos[0..n) of a [N, dim] strided matrix into dst[rows][ld] (zero padded to
// cols_pad columns and to `rows` rows). vec: rows start 16-byte aligned.
template <class T>
__device__ void load_rows(T *dst, int ld, int rows, int cols_pad, const T *__restrict__ base,
                          long long token_stride, const int *pos, int n, int dim, bool vec) {
    constexpr int V = 16 / sizeof(T);
    const int chunks = cols_pad / V;
    for (int e = threadIdx.x; e < rows * chunks; e += blockDim.x) {
        const int r = e / chunks, c0 = (e % chunks) * V;
        T vals[V];
        if (r < n && c0 < dim) {
            const T *src = base + (long long)pos[r] * token_stride + c0;
            if (vec && c0 + V <= dim) {
                const uint4 raw = __ldg((const uint4 *)src);
                memcpy((void *)vals, &raw, 16);  // void *: raw bytes into __half too
            } else {
#pragma unroll
                for (int i = 0; i < V; i++) vals[i] = c0 + i < dim ? src[i] : from_f32<T>(0.0f);
            }
        } else {
#pragma unroll
            for (int i = 0; i < V; i++) vals[i] = from_f32<T>(0.0f);
        }
        T *out = dst + (size_t)r * ld + c0;
        if constexpr (sizeof(T) == 2) {  // ld and c0 keep 16-byte alignment (Pad = 8)
            uint4 raw;
            memcpy(&raw, vals, 16);
            *(uint4 *)out = raw;
        } else {
#pragma unroll
            for (int i = 0; i < V; i++) out[i] = vals[i];
        }
    }
}

// S[16][bk] = Q[16][dp] K[bk][dp]^T for the warp's rows (unscaled, fp32).
template <class T>
__device__ void warp_scores(const T *Qw, int ldq, const T *Ks, int ldk, float *Sw, int lds,
                            int bk, int dp, int d, int nkt) {
    if constexpr (sizeof(T) == 2) {
        for (int j = 0; j < bk / 16; j++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
            wmma::fill_fragment(c, 0.0f);
            for (int kk = 0; kk < dp / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
                wmma::load_matrix_sync(a, Qw + kk * 16, ldq);
                wmma::load_matrix_sync(b, Ks + (size_t)j * 16 * ldk + kk * 16, ldk);
                wmma::mma_sync(c, a, b, c);
            }
            wmma::store_matrix_sync(Sw + j * 16, c, lds, wmma::mem_row_major);
        }
    } else {
        const int lane = threadIdx.x % 32;
        for (int e = lane; e < 16 * bk; e += 32) {
            const int r = e / bk, c = e % bk;
            float s = 0.0f;
            if (c < nkt) {
                const float *qa = Qw + (size_t)r * ldq, *kb = Ks + (size_t)c * ldk;
                for (int kk = 0; kk < d; kk++) s = fmaf(qa[kk], kb[kk], s);
            }
            Sw[(size_t)r * lds + c] = s;
        }
    }
}

// O[16][dvp] += P[16][bk] V[bk][dvp] for the warp's rows.
template <class T>
__device__ void warp_pv(const T *Pw, int ldp, const T *Vs, int ldv, float *Ow, int ldo, int bk,
                        int dvp, int dv, int nkt) {
    if constexpr (sizeof(T) == 2) {
        const int ksteps = (nkt + 15) / 16;  // P and V are zero past nkt
        for (int j = 0; j < dvp / 16; j++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;
            wmma::load_matrix_sync(o, Ow + j * 16, ldo, wmma::mem_row_major);
            for (int kk = 0; kk < ksteps; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
                wmma::load_matrix_sync(a, Pw + kk * 16, ldp);
                wmma::load_matrix_sync(b, Vs + (size_t)kk * 16 * ldv + j * 16, ldv);
                wmma::mma_sync(o, a, b, o);
            }
            wmma::store_matrix_sync(Ow + j * 16, o, ldo, wmma::mem_row_major);
        }
    } else {
        const int lane = threadIdx.x % 32;
        for (int e = lane; e < 16 * dvp; e += 32) {
            const int r = e / dvp, c = e % dvp;
            if (c >= dv) continue;
            float o = Ow[(size_t)r * ldo + c];
            const float *pr = Pw + (size_t)r * ldp;
            for (int u = 0; u < nkt; u++) o = fmaf(pr[u], Vs[(size_t)u * ldv + c], o);
            Ow[(size_t)r * ldo + c] = o;
        }
    }
}

template <class T>
__global__ void __launch_bounds__(128)
attention_kernel(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v,
                 Problem p, AttentionJob job, Tiles t, const int32_t *__restrict__ valid,
                 const int32_t *__restrict__ n_valid, float *__restrict__ acc,
                 float *__restrict__ gm, float *__restrict__ gl) {
    extern __shared__ __align__(128) unsigned char smem[];
    const Layout L = layout_of<T>(t.bq, t.bk, t.dp, t.dvp);
    T *Qs = (T *)(smem + L.q), *Ks = (T *)(smem + L.k), *Vs = (T *)(smem + L.v);
    T *Ps = (T *)(smem + L.p);
    float *Ss = (float *)(smem + L.s), *Os = (float *)(smem + L.o);
    float *alpha = (float *)(smem + L.alpha);
    int *qpos = (int *)(smem + L.qpos), *kpos = (int *)(smem + L.kpos);

    const int bq = t.bq, bk = t.bk;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    // This block's problem, queries and keys.
    const BlockWork bw = block_work(p, job, bq, blockIdx.x, valid, n_valid);
    if (bw.nq == 0) return;  // the whole block: nothing to do
    const long long prob = bw.prob, b = bw.b;
    const int h = bw.h, hk = bw.hk, q0 = bw.q0, nq = bw.nq, nk = bw.nk;
    const int32_t *qlist = bw.qlist, *klist = bw.klist;

    const T *qbase = q + b * p.q.batch + (long long)h * p.q.head;
    const T *kbase = k + b * p.k.batch + (long long)hk * p.k.head;
    const T *vbase = v + b * p.v.batch + (long long)hk * p.v.head;
    const bool vec_q = ((uintptr_t)qbase % 16 == 0) && ((p.q.token * (long long)sizeof(T)) % 16 == 0);
    const bool vec_k = ((uintptr_t)kbase % 16 == 0) && ((p.k.token * (long long)sizeof(T)) % 16 == 0);
    const bool vec_v = ((uintptr_t)vbase % 16 == 0) && ((p.v.token * (long long)sizeof(T)) % 16 == 0);

    for (int r = tid; r < bq; r += blockDim.x) qpos[r] = r < nq ? (qlist ? qlist[r] : q0 + r) : 0;
    for (int e = tid; e < bq * L.ldo; e += blockDim.x) Os[e] = 0.0f;
    __syncthreads();
    load_rows(Qs, L.ldq, bq, t.dp, qbase, p.q.token, qpos, nq, p.d, vec_q);

    const int wrow0 = warp * 16;
    const bool active = wrow0 < nq;
    const int myrow = wrow0 + (lane >> 1), half = lane & 1;
    const long long limit =
        p.causal && myrow < nq ? (long long)qpos[myrow] + p.causal_offset : LLONG_MAX;
    float m_run = kNegInf, l_run = 0.0f;  // the lane pair's row state

    for (int kt0 = 0; kt0 < nk; kt0 += bk) {
        const int nkt = min(bk, nk - kt0);
        __syncthreads();  // the previous tile is consumed (and Q is loaded)
        for (int u = tid; u < bk; u += blockDim.x) kpos[u] = u < nkt ? klist[kt0 + u] : 0;
        __syncthreads();
        load_rows(Ks, L.ldk, bk, t.dp, kbase, p.k.token, kpos, nkt, p.d, vec_k);
        load_rows(Vs, L.ldv, bk, t.dvp, vbase, p.v.token, kpos, nkt, p.dv, vec_v);
        __syncthreads();
        if (!active) continue;

        float *Sw = Ss + (size_t)wrow0 * L.lds;
        warp_scores<T>(Qs + (size_t)wrow0 * L.ldq, L.ldq, Ks, L.ldk, Sw, L.lds, bk, t.dp, p.d, nkt);
        __syncwarp();

        // Online softmax: two lanes per row, half of the tile's columns each.
        float *srow = Ss + (size_t)myrow * L.lds;
        T *prow = Ps + (size_t)myrow * L.ldp;
        const int cols = bk / 2, cb = half * cols;
        float mx = kNegInf;
        for (int c = cb; c < cb + cols; c++) {
            const bool ok = c < nkt && kpos[c] <= limit;
            const float s = ok ? srow[c] * p.scale : kNegInf;
            srow[c] = s;
            mx = fmaxf(mx, s);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float m_new = fmaxf(m_run, mx);
        float a = 1.0f, sum = 0.0f;
        if (m_new == kNegInf) {
            for (int c = cb; c < cb + cols; c++) prow[c] = from_f32<T>(0.0f);
        } else {
            a = expf(m_run - m_new);
            for (int c = cb; c < cb + cols; c++) {
                const float e = expf(srow[c] - m_new);
                sum += e;
                prow[c] = from_f32<T>(e);
            }
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l_run = l_run * a + sum;
        m_run = m_new;
        if (half == 0) alpha[myrow] = a;
        __syncwarp();
        float *Ow = Os + (size_t)wrow0 * L.ldo;
        for (int e = lane; e < 16 * t.dvp; e += 32) {
            const int r = e / t.dvp, c = e % t.dvp;
            Ow[(size_t)r * L.ldo + c] *= alpha[wrow0 + r];
        }
        __syncwarp();
        warp_pv<T>(Ps + (size_t)wrow0 * L.ldp, L.ldp, Vs, L.ldv, Ow, L.ldo, bk, t.dvp, p.dv, nkt);
        __syncwarp();
    }

    // Merge into the running state of the previous rounds (cpu/tile.hpp, the CPU tile kernel).
    if (!active) return;
    const bool first = job.dense || job.round == 0;
    for (int rr = 0; rr < 16; rr++) {
        const int row = wrow0 + rr;
        if (row >= nq) break;
        const float mr = __shfl_sync(0xffffffffu, m_run, 2 * rr);
        const float lr = __shfl_sync(0xffffffffu, l_run, 2 * rr);
        const long long gi = prob * p.Nq + qpos[row];
        float *arow = acc + gi * p.dv;
        const float *orow = Os + (size_t)row * L.ldo;
        if (first) {
            for (int c = lane; c < p.dv; c += 32) arow[c] = lr != 0.0f ? orow[c] : 0.0f;
            if (lane == 0) gm[gi] = lr != 0.0f ? mr : kNegInf, gl[gi] = lr;
            continue;
        }
        if (lr == 0.0f) continue;  // this round had no allowed key for the query
        const float mg = gm[gi], lg = gl[gi];
        __syncwarp();
        if (lg == 0.0f) {  // the first round that met a key: take it as it is
            for (int c = lane; c < p.dv; c += 32) arow[c] = orow[c];
            if (lane == 0) gm[gi] = mr, gl[gi] = lr;
            continue;
        }
        const float top = fmaxf(mg, mr);
        const float keep = expf(mg - top), add = expf(mr - top);
        for (int c = lane; c < p.dv; c += 32) arow[c] = arow[c] * keep + orow[c] * add;
        if (lane == 0) gl[gi] = lg * keep + lr * add, gm[gi] = top;
    }
}

// One warp per query row.
template <class T>
__global__ void combine_kernel(Problem p, const T *__restrict__ q, const T *__restrict__ k,
                               const T *__restrict__ v, T *__restrict__ out,
                               float *__restrict__ lse, const int32_t *__restrict__ valid,
                               const int32_t *__restrict__ n_valid, const float *__restrict__ acc,
                               const float *__restrict__ gm, const float *__restrict__ gl) {
    for_each_query_row(p, [&](long long row, long long, long long b, int h, int i, int lane) {
        T *orow = out + b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token;
        const float l = gl[row];
        float lse_v;
        if (l != 0.0f) {
            const float inv = 1.0f / l;
            const float *arow = acc + row * p.dv;
            for (int c = lane; c < p.dv; c += 32) orow[c] = from_f32<T>(arow[c] * inv);
            lse_v = gm[row] + logf(l);
        } else {  // every round missed this query
            lse_v = fallback_row<32>(p, q, k, v, valid, n_valid, b, h, i, orow, lane, 0xffffffffu);
        }
        if (lse && lane == 0) lse[row] = lse_v;
    });
}

template <class T>
size_t smem_bytes(int bq, int bk, int dp, int dvp) {
    return layout_of<T>(bq, bk, dp, dvp).total;
}

// One round's clusters (SMYRF) or every query tile (DENSE) into the combine state w.acc,
// w.m, w.l.
template <class T, class Exec>
void attend(const Exec &ex, const Problem &p, const Tiles &t, const AttentionJob &job,
            const T *q, const T *k, const T *v, const Work &w) {
    const long long blocks = (long long)p.B * p.H * tiles_per_problem(p, job, t.bq);
    if (blocks > 0x7fffffffLL)
        fail(SMYRF_ERR_UNSUPPORTED, "CUDA backend: %lld attention blocks exceed one grid", blocks);
    ex.launch(attention_kernel<T>, (unsigned)blocks, (unsigned)t.bq * 2, t.smem, q, k, v, p, job,
              t, (const int32_t *)w.valid, (const int32_t *)w.n_valid, w.acc, w.m, w.l);
}

// out and lse from the combine state (and the fallback of queries that met no key).
template <class T, class Exec>
void combine(const Exec &ex, const Problem &p, const T *q, const T *k, const T *v, T *out,
             float *lse, const Work &w) {
    const long long rows = (long long)p.B * p.H * p.Nq;  // 8 warps of a block, a row each
    ex.launch(combine_kernel<T>, stride_grid(rows, 8), 256u, (size_t)0, p, q, k, v, out, lse,
              (const int32_t *)w.valid, (const int32_t *)w.n_valid, (const float *)w.acc,
              (const float *)w.m, (const float *)w.l);
}

}  // namespace
}  // namespace smyrf::gpu::fw
