// The backward pass's device code and its launch sequence: backward.cu runs it on the
// device, tests/cuda/sim on the CPU. See backward.cu for what it computes.
#pragma once

#include "cuda/common.cuh"

// Internal to the including file (the library, or the simulator test): no symbol clashes.
namespace smyrf::gpu::bw {
namespace {

constexpr int kT = 32;  // queries and keys per tile
constexpr int kThreads = 256;

enum class Kind { cluster, dense_keys, dense_queries };

// Columns per thread in one pass of a product: 16 threads cover 16 * kCols = 256
// columns a pass, and wider rows take more passes.
constexpr int kCols = 16;
constexpr int kPassCols = 16 * kCols;
static_assert(kThreads == 256 && kT == 32, "the 2 x 2 and 2 x 16 blocks assume 16 x 16 threads");

// acc[i][m] = sum over x < n of A[(row0 + i) * fixed + x * step] * B[x * ldb + cg + 16 m]
// for columns below dim: a 2 x kCols block of a product whose operands are in shared
// memory, each loaded value used 2 or kCols times.
__device__ __forceinline__ void block_product(float (&acc)[2][kCols], const float *A, int fixed,
                                              int step, int row0, const float *B, int ldb, int n,
                                              int cg, int dim) {
#pragma unroll
    for (int m = 0; m < kCols; m++) acc[0][m] = acc[1][m] = 0.0f;
    for (int x = 0; x < n; x++) {
        const float a0 = A[row0 * fixed + x * step], a1 = A[(row0 + 1) * fixed + x * step];
        const float *b = B + x * ldb + cg;
#pragma unroll
        for (int m = 0; m < kCols; m++)
            if (cg + 16 * m < dim) {
                const float bv = b[16 * m];
                acc[0][m] = fmaf(a0, bv, acc[0][m]);
                acc[1][m] = fmaf(a1, bv, acc[1][m]);
            }
    }
}

// Shared memory of a block, in floats (positions and flags are ints of the same size).
__host__ __device__ inline size_t smem_floats(int d, int dv) {
    return (size_t)kT * (3 * (d + 1) + 3 * (dv + 1) + 2 * (kT + 1) + 5);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
backward_kernel(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v,
                const T *__restrict__ dout, const float *__restrict__ lse, Problem p, Kind kind,
                int round, const int32_t *__restrict__ q_sorted, const int32_t *__restrict__ k_sorted,
                const int32_t *__restrict__ valid, const int32_t *__restrict__ n_valid,
                const float *__restrict__ delta, int32_t *__restrict__ met, float *__restrict__ dq,
                float *__restrict__ dk, float *__restrict__ dv) {
    extern __shared__ float sm[];
    const int d = p.d, dvd = p.dv, ldq = d + 1, ldv = dvd + 1, ldp = kT + 1;
    float *Qs = sm, *Ks = Qs + kT * ldq, *dKs = Ks + kT * ldq;
    float *Os = dKs + kT * ldq, *Vs = Os + kT * ldv, *dVs = Vs + kT * ldv;
    float *Ps = dVs + kT * ldv, *dSs = Ps + kT * ldp;
    float *lse_s = dSs + kT * ldp, *D_s = lse_s + kT;
    int *qp = (int *)(D_s + kT), *kp = qp + kT, *hit = kp + kT;

    // This block's queries (qlist, or consecutive from q0) and keys (klist).
    const long long blocks_per = kind == Kind::cluster        ? p.C
                                 : kind == Kind::dense_keys ? (p.Nk + kT - 1) / kT
                                                            : (p.Nq + kT - 1) / kT;
    const long long prob = blockIdx.x / blocks_per;
    const int part = (int)(blockIdx.x % blocks_per);
    const long long b = prob / p.H;
    const int h = (int)(prob % p.H), hk = h / p.group;
    const int nv = n_valid[b];
    const int32_t *qlist = nullptr, *klist = valid + b * p.Nk;
    int q0 = 0, nq = p.Nq, nk = nv;
    if (kind == Kind::cluster) {
        const long long seg = prob * p.R + round;
        const int c0 = (int)((long long)part * p.Nq / p.C), c1 = (int)((long long)(part + 1) * p.Nq / p.C);
        const int k0 = (int)((long long)part * nv / p.C), k1 = (int)((long long)(part + 1) * nv / p.C);
        qlist = q_sorted + seg * p.Nq + c0;
        nq = c1 - c0;
        klist = k_sorted + seg * p.Nk + k0;
        nk = k1 - k0;
    } else if (kind == Kind::dense_keys) {
        klist += part * kT;
        nk = min(kT, nv - part * kT);
    } else {
        q0 = part * kT;
        nq = min(kT, p.Nq - q0);
    }
    if (nq <= 0 || nk <= 0) return;
    const bool want_dq = kind != Kind::dense_keys, want_kv = kind != Kind::dense_queries;
    const T *qb = q + b * p.q.batch + (long long)h * p.q.head;
    const T *kb = k + b * p.k.batch + (long long)hk * p.k.head;
    const T *vb = v + b * p.v.batch + (long long)hk * p.v.head;
    const T *ob = dout + b * p.out.batch + (long long)h * p.out.head;
    const int tid = threadIdx.x;

    for (int kt0 = 0; kt0 < nk; kt0 += kT) {
        const int nkt = min(kT, nk - kt0);
        __syncthreads();  // the previous key tile is written back
        for (int u = tid; u < kT; u += kThreads) kp[u] = u < nkt ? klist[kt0 + u] : 0;
        __syncthreads();
        for (int e = tid; e < kT * d; e += kThreads) {
            const int u = e / d, c = e % d;
            Ks[u * ldq + c] = u < nkt ? to_f32(kb[(long long)kp[u] * p.k.token + c]) : 0.0f;
            dKs[u * ldq + c] = 0.0f;
        }
        for (int e = tid; e < kT * dvd; e += kThreads) {
            const int u = e / dvd, c = e % dvd;
            Vs[u * ldv + c] = u < nkt ? to_f32(vb[(long long)kp[u] * p.v.token + c]) : 0.0f;
            dVs[u * ldv + c] = 0.0f;
        }
        for (int qt0 = 0; qt0 < nq; qt0 += kT) {
            const int nqt = min(kT, nq - qt0);
            __syncthreads();  // the previous query tile is consumed
            for (int r = tid; r < kT; r += kThreads) {
                const int i = r < nqt ? (qlist ? qlist[qt0 + r] : q0 + qt0 + r) : 0;
                qp[r] = i;
                lse_s[r] = r < nqt ? lse[prob * p.Nq + i] : kNegInf;
                D_s[r] = r < nqt ? delta[prob * p.Nq + i] : 0.0f;
            }
            __syncthreads();
            for (int e = tid; e < kT * d; e += kThreads) {
                const int r = e / d, c = e % d;
                Qs[r * ldq + c] = r < nqt ? to_f32(qb[(long long)qp[r] * p.q.token + c]) : 0.0f;
            }
            for (int e = tid; e < kT * dvd; e += kThreads) {
                const int r = e / dvd, c = e % dvd;
                Os[r * ldv + c] = r < nqt ? to_f32(ob[(long long)qp[r] * p.out.token + c]) : 0.0f;
            }
            __syncthreads();
            // P and dS for every (query, key) pair of the two tiles: a 2 x 2 block each.
            {
                const int r0 = (tid / 16) * 2, u0 = (tid % 16) * 2;
                float sc[2][2] = {}, dp[2][2] = {};
                for (int c = 0; c < d; c++) {
                    const float a0 = Qs[r0 * ldq + c], a1 = Qs[(r0 + 1) * ldq + c];
                    const float b0 = Ks[u0 * ldq + c], b1 = Ks[(u0 + 1) * ldq + c];
                    sc[0][0] = fmaf(a0, b0, sc[0][0]), sc[0][1] = fmaf(a0, b1, sc[0][1]);
                    sc[1][0] = fmaf(a1, b0, sc[1][0]), sc[1][1] = fmaf(a1, b1, sc[1][1]);
                }
                for (int c = 0; c < dvd; c++) {
                    const float a0 = Os[r0 * ldv + c], a1 = Os[(r0 + 1) * ldv + c];
                    const float b0 = Vs[u0 * ldv + c], b1 = Vs[(u0 + 1) * ldv + c];
                    dp[0][0] = fmaf(a0, b0, dp[0][0]), dp[0][1] = fmaf(a0, b1, dp[0][1]);
                    dp[1][0] = fmaf(a1, b0, dp[1][0]), dp[1][1] = fmaf(a1, b1, dp[1][1]);
                }
#pragma unroll
                for (int i = 0; i < 2; i++)
#pragma unroll
                    for (int j = 0; j < 2; j++) {
                        const int r = r0 + i, u = u0 + j;
                        const bool ok = r < nqt && u < nkt && lse_s[r] != kNegInf &&
                                        (!p.causal || kp[u] <= (long long)qp[r] + p.causal_offset);
                        const float pv = ok ? expf(sc[i][j] * p.scale - lse_s[r]) : 0.0f;
                        Ps[r * ldp + u] = pv;
                        dSs[r * ldp + u] = ok ? pv * (dp[i][j] - D_s[r]) : 0.0f;
                    }
            }
            if (kind == Kind::cluster && tid < nqt) {  // did this query meet an allowed key?
                int any = 0;
                for (int u = 0; u < nkt; u++)
                    any |= !p.causal || kp[u] <= (long long)qp[tid] + p.causal_offset;
                hit[tid] = any;
            }
            __syncthreads();
            // The three products, each thread a 2 x up-to-16 block (rows row0, row0 + 1;
            // columns cg + 16 m) per pass of kPassCols columns.
            const int row0 = (tid / 16) * 2;
            float acc[2][kCols];
            if (want_kv) {
                for (int cg = tid % 16; cg < dvd; cg += kPassCols) {
                    block_product(acc, Ps, 1, ldp, row0, Os, ldv, nqt, cg, dvd);
                    for (int i = 0; i < 2; i++)
#pragma unroll
                        for (int m = 0; m < kCols; m++)
                            if (cg + 16 * m < dvd) dVs[(row0 + i) * ldv + cg + 16 * m] += acc[i][m];
                }
                for (int cg = tid % 16; cg < d; cg += kPassCols) {
                    block_product(acc, dSs, 1, ldp, row0, Qs, ldq, nqt, cg, d);
                    for (int i = 0; i < 2; i++)
#pragma unroll
                        for (int m = 0; m < kCols; m++)
                            if (cg + 16 * m < d)
                                dKs[(row0 + i) * ldq + cg + 16 * m] += p.scale * acc[i][m];
                }
            }
            if (want_dq)  // rows this block owns: plain read-modify-write
                for (int cg = tid % 16; cg < d; cg += kPassCols) {
                    block_product(acc, dSs, ldp, 1, row0, Ks, ldq, nkt, cg, d);
                    for (int i = 0; i < 2; i++) {
                        if (row0 + i >= nqt) continue;
                        float *row = dq + (prob * p.Nq + qp[row0 + i]) * d;
#pragma unroll
                        for (int m = 0; m < kCols; m++)
                            if (cg + 16 * m < d) row[cg + 16 * m] += p.scale * acc[i][m];
                    }
                }
            if (want_dq && kind == Kind::cluster && tid < nqt && hit[tid])
                met[prob * p.Nq + qp[tid]] = 1;
        }
        if (want_kv) {
            __syncthreads();
            for (int e = tid; e < nkt * d; e += kThreads) {
                const int u = e / d, c = e % d;
                dk[(prob * p.Nk + kp[u]) * d + c] += dKs[u * ldq + c];
            }
            for (int e = tid; e < nkt * dvd; e += kThreads) {
                const int u = e / dvd, c = e % dvd;
                dv[(prob * p.Nk + kp[u]) * dvd + c] += dVs[u * ldv + c];
            }
        }
    }
}

// D_i = dout_i . out_i, one warp per query row.
template <class T>
__global__ void delta_kernel(Problem p, const T *__restrict__ out, const T *__restrict__ dout,
                             float *__restrict__ delta) {
    for_each_query_row(p, [&](long long row, long long, long long b, int h, int i, int lane) {
        const long long at = b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token;
        float s = 0.0f;
        for (int c = lane; c < p.dv; c += 32) s = fmaf(to_f32(out[at + c]), to_f32(dout[at + c]), s);
        s = group_sum<32>(s, 0xffffffffu);
        if (lane == 0) delta[row] = s;
    });
}

// SMYRF: a query that met no allowed key in any round attended its fallback key alone, so
// that key's dv gets dout_i. One block per problem walks the queries in order; thread t
// owns columns t, t + blockDim.x, ..., so fallbacks that share a key add in query order.
template <class T>
__global__ void fallback_kernel(Problem p, const T *__restrict__ dout, const float *__restrict__ lse,
                                const int32_t *__restrict__ valid, const int32_t *__restrict__ n_valid,
                                const int32_t *__restrict__ met, float *__restrict__ dv) {
    const long long prob = blockIdx.x, b = prob / p.H;
    const int h = (int)(prob % p.H);
    const T *ob = dout + b * p.out.batch + (long long)h * p.out.head;
    for (int i = 0; i < p.Nq; i++) {
        if (met[prob * p.Nq + i] || lse[prob * p.Nq + i] == kNegInf) continue;
        const int j = fallback_key(p, valid, n_valid, b, i);
        if (j < 0) continue;
        float *row = dv + (prob * p.Nk + j) * p.dv;
        for (int c = threadIdx.x; c < p.dv; c += blockDim.x)
            row[c] += to_f32(ob[(long long)i * p.out.token + c]);
    }
}

// The caller's gradient: x[b, hx, n, c] = sum over the `group` query heads of sums[...].
template <class T>
__global__ void write_grad(Problem p, int heads_x, int N, int dim, int group, Strides st,
                           const float *__restrict__ sums, T *__restrict__ x) {
    const long long n_el = (long long)p.B * heads_x * N * dim;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n_el;
         e += (long long)gridDim.x * blockDim.x) {
        const int c = (int)(e % dim);
        const long long rowi = e / dim;
        const int n = (int)(rowi % N);
        const long long ph = rowi / N, b = ph / heads_x;
        const int hx = (int)(ph % heads_x);
        float s = 0.0f;
        for (int g = 0; g < group; g++)
            s += sums[((b * p.H + (long long)hx * group + g) * N + n) * dim + c];
        x[b * st.batch + (long long)hx * st.head + (long long)n * st.token + c] = from_f32<T>(s);
    }
}

// The whole backward on an executor (cuda/launch.cuh; tests/cuda/sim): the caller's
// gradients from the clusters of the forward (SMYRF: q_sorted, k_sorted) or dense tiles.
template <class Exec, class T>
void run(const Exec &ex, const Problem &p, bool dense, const int32_t *q_sorted,
         const int32_t *k_sorted, const T *q, const T *k, const T *v, const T *out,
         const float *lse, const T *dout, T *dq, T *dk, T *dv, const Work &w) {
    const size_t H = (size_t)p.B * p.H;
    ex.zero(w.dq, sizeof(float) * H * p.Nq * p.d);
    ex.zero(w.dk, sizeof(float) * H * p.Nk * p.d);
    ex.zero(w.dv, sizeof(float) * H * p.Nk * p.dv);
    ex.zero(w.met, sizeof(int32_t) * H * p.Nq);
    ex.launch(delta_kernel<T>, stride_grid(H * p.Nq, 8), 256, 0, p, out, dout, w.delta);

    const size_t smem = smem_floats(p.d, p.dv) * sizeof(float);
    auto launch = [&](Kind kind, long long per, int round) {
        const long long blocks = (long long)H * per;
        if (blocks > 0x7fffffffLL)
            fail(SMYRF_ERR_UNSUPPORTED, "CUDA backend: %lld backward blocks exceed one grid", blocks);
        ex.launch(backward_kernel<T>, (unsigned)blocks, kThreads, smem, q, k, v, dout, lse, p, kind,
                  round, q_sorted, k_sorted, (const int32_t *)w.valid, (const int32_t *)w.n_valid,
                  (const float *)w.delta, w.met, w.dq, w.dk, w.dv);
    };
    if (dense) {
        launch(Kind::dense_keys, (p.Nk + kT - 1) / kT, 0);
        launch(Kind::dense_queries, (p.Nq + kT - 1) / kT, 0);
    } else {
        for (int r = 0; r < p.R; r++) launch(Kind::cluster, p.C, r);
        ex.launch(fallback_kernel<T>, (unsigned)H, 128, 0, p, dout, lse, (const int32_t *)w.valid,
                  (const int32_t *)w.n_valid, (const int32_t *)w.met, w.dv);
    }
    ex.launch(write_grad<T>, stride_grid(H * p.Nq * p.d, 256), 256, 0, p, p.H, p.Nq, p.d, 1, p.q,
              (const float *)w.dq, dq);
    const long long kv = (long long)p.B * p.Hkv * p.Nk;
    ex.launch(write_grad<T>, stride_grid(kv * p.d, 256), 256, 0, p, p.Hkv, p.Nk, p.d, p.group, p.k,
              (const float *)w.dk, dk);
    ex.launch(write_grad<T>, stride_grid(kv * p.dv, 256), 256, 0, p, p.Hkv, p.Nk, p.dv, p.group,
              p.v, (const float *)w.dv, dv);
}

}  // namespace
}  // namespace smyrf::gpu::bw
