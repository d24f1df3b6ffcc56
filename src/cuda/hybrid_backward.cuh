// HYBRID gradients on the GPU, the device code and its launch sequence:
// hybrid_backward.cu runs it on the device, tests/cuda/sim on the CPU. See
// hybrid_backward.cu for what the steps compute.
#pragma once

#include "cuda/hybrid_attention.cuh"

// Internal to the including file (the library, or the simulator test): no symbol clashes.
namespace smyrf::gpu::hy {
namespace {

// One warp per query row: the row's terms again (row_terms), their weights from the
// forward's lse, then dq (the row owns it) and, for the key pass, per summary column
//   C_g = P_g (dout . Vbar_g - D) / m_g,   U_g = P_g / m_g   (0 where no summary)
// and the expansion's choice; causal, the partial block's C and U.
template <class T>
__global__ void grad_rows(Problem p, HybridParams hp, const T *__restrict__ q,
                          const T *__restrict__ k, const T *__restrict__ v,
                          const T *__restrict__ out, const float *__restrict__ lse,
                          const T *__restrict__ dout, T *__restrict__ dq,
                          const int32_t *__restrict__ valid, HybridWork hw, HybridGrads hg) {
    extern __shared__ float smem[];
    const Scratch sc =
        carve_scratch(smem + (threadIdx.x / 32) * scratch_words(p, hp, true), p, hp, true);
    for_each_query_row(p, [&](long long row, long long, long long b, int h, int i, int lane) {
        const Row r = make_row(p, hp, hw, valid, b, h, i);
        const int G = r.in.groups;
        float *C = hg.c + row * hp.max_groups, *U = hg.u + row * hp.max_groups;
        uint8_t *chosen = hg.chosen ? hg.chosen + row * hp.max_groups : nullptr;
        for (int g = lane; g < hp.max_groups; g += 32) {
            C[g] = 0.0f, U[g] = 0.0f;
            if (chosen) chosen[g] = 0;
        }
        if (lane == 0) {
            hg.delta[row] = 0.0f;
            if (hg.cp) hg.cp[row] = 0.0f, hg.up[row] = 0.0f;
        }
        T *dqrow = dq + b * p.q.batch + (long long)h * p.q.head + (long long)i * p.q.token;
        const float L = lse[row];
        if (r.s == r.e || !(L > kNegInf)) {  // no allowed key: no gradient
            for (int c = lane; c < p.d; c += 32) dqrow[c] = from_f32<T>(0.0f);
            return;
        }
        auto krow = [&](int u) { return k + b * p.k.batch + (long long)r.hk * p.k.head + (long long)r.vl[u] * p.k.token; };
        auto vrow = [&](int u) { return v + b * p.v.batch + (long long)r.hk * p.v.head + (long long)r.vl[u] * p.v.token; };
        const T *qrow = q + b * p.q.batch + (long long)h * p.q.head + (long long)i * p.q.token;
        const T *orow = out + b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token;
        const T *gorow = dout + b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token;
        float dlt = 0.0f;
        for (int c = lane; c < p.d; c += 32) sc.q[c] = to_f32(qrow[c]), sc.dq[c] = 0.0f;
        for (int c = lane; c < p.dv; c += 32) {
            sc.acc[c] = to_f32(gorow[c]);
            dlt = fmaf(sc.acc[c], to_f32(orow[c]), dlt);
        }
        const float D = group_sum<32>(dlt, kAll);  // D_i = dout_i . out_i
        const Terms tm = row_terms(p, hp, hw, r, sc, krow, lane);

        // dout . v_j of every exact key; labelled, their sums per group (window and sinks).
        for (int x = 0; x < tm.ne; x++) {
            const float dp = warp_dot(sc.acc, vrow(sc.ux[x]), p.dv, 1.0f, lane);
            if (lane == 0) sc.dp[x] = dp;
        }
        for (int g = lane; g < G; g += 32) sc.hdp[g] = 0.0f;
        __syncwarp();
        if (tm.labelled)
            for (int x = 0; x < tm.exact; x++) {
                const int g = hw.label[r.slot0 + sc.ux[x]];
                if (g % 32 == lane) sc.hdp[g] += sc.dp[x];
            }
        __syncwarp();

        // The summaries: C_g, U_g, and their part of dq (scale C_g Ksum_g).
        for (int g = 0; g < G; g++) {
            float c = 0.0f, u = 0.0f;
            if (kept(sc, tm, g)) {
                const float m = (float)sc.m[g];
                const float pg = expf(sc.t[g] - L);
                const float dov = warp_dot(sc.acc, hw.vsum + (r.gbase + g) * p.dv, p.dv, 1.0f, lane);
                const float dvbar = (dov - (tm.labelled ? sc.hdp[g] : 0.0f)) / m;
                c = pg * (dvbar - D) / m;
                u = pg / m;
                const float *ks = hw.ksum + (r.gbase + g) * p.d;
                for (int col = lane; col < p.d; col += 32) sc.dq[col] = fmaf(c, ks[col], sc.dq[col]);
            }
            if (lane == 0) {
                C[g] = c, U[g] = u;
                if (chosen) chosen[g] = tm.labelled && (sc.flag[g] & kChosen) ? 1 : 0;
            }
        }
        __syncwarp();  // C is read back below by every lane
        // The exact keys: dS'_j = P_j (dout . v_j - D) - C_{a_j}.
        for (int x = 0; x < tm.ne; x++) {
            const int u = sc.ux[x];
            const float pj = expf(sc.sx[x] - L);
            const float ds = pj * (sc.dp[x] - D) - (tm.labelled ? C[hw.label[r.slot0 + u]] : 0.0f);
            const T *kr = krow(u);
            for (int col = lane; col < p.d; col += 32) sc.dq[col] = fmaf(ds, to_f32(kr[col]), sc.dq[col]);
        }
        if (tm.tp > kNegInf) {  // causal: the partial block
            const float pp = expf(tm.tp - L), m = (float)tm.pn;
            const float dov = warp_dot(sc.acc, hw.pv + (r.slot0 + r.s) * p.dv, p.dv, 1.0f, lane);
            const float c = pp * (dov / m - D) / m;
            const float *pk = hw.pk + (r.slot0 + r.s) * p.d;
            for (int col = lane; col < p.d; col += 32) sc.dq[col] = fmaf(c, pk[col], sc.dq[col]);
            if (lane == 0) hg.cp[row] = c, hg.up[row] = pp / m;
        }
        for (int col = lane; col < p.d; col += 32) dqrow[col] = from_f32<T>(p.scale * sc.dq[col]);
        if (lane == 0) hg.delta[row] = D;
        __syncwarp();
    });
}

// One block per (pair, summary column g): the gradients of Ksum_g and Vsum_g, the float64
// sums over the pair's query heads and rows, in order: scale C_g q_i and U_g dout_i.
template <class T>
__global__ void __launch_bounds__(128)
group_grads(Problem p, HybridParams hp, const T *__restrict__ q, const T *__restrict__ dout,
            HybridWork hw, HybridGrads hg) {
    const int pair = (int)(blockIdx.x / hp.max_groups), g = (int)(blockIdx.x % hp.max_groups);
    if (g >= hw.info[pair].groups) return;
    const long long b = pair / p.Hkv;
    const int hk = pair % p.Hkv;
    const long long at = (long long)pair * hp.max_groups + g;
    for (int x = threadIdx.x; x < p.d + p.dv; x += blockDim.x) {
        double acc = 0.0;
        for (int h = hk * p.group; h < (hk + 1) * p.group; h++)
            for (int i = 0; i < p.Nq; i++) {
                const long long row = (b * p.H + h) * p.Nq + i;
                if (x < p.d) {
                    const float c = hg.c[row * hp.max_groups + g];
                    if (c != 0.0f)
                        acc += (double)(p.scale * c) *
                               to_f32(q[b * p.q.batch + (long long)h * p.q.head + (long long)i * p.q.token + x]);
                } else {
                    const float u = hg.u[row * hp.max_groups + g];
                    if (u != 0.0f)
                        acc += (double)u * to_f32(dout[b * p.out.batch + (long long)h * p.out.head +
                                                       (long long)i * p.out.token + x - p.d]);
                }
            }
        if (x < p.d) hg.dksum[at * p.d + x] = (float)acc;
        else hg.dvsum[at * p.dv + x - p.d] = (float)acc;
    }
}

// Zeros every key's gradient rows; key_grads then writes the valid ones.
template <class T>
__global__ void zero_key_grads(Problem p, T *__restrict__ dk, T *__restrict__ dv) {
    const long long rows = (long long)p.B * p.Hkv * p.Nk;
    for (long long x = blockIdx.x * (long long)blockDim.x + threadIdx.x; x < rows;
         x += (long long)gridDim.x * blockDim.x) {
        const long long b = x / ((long long)p.Hkv * p.Nk);
        const int hk = (int)(x / p.Nk % p.Hkv), j = (int)(x % p.Nk);
        T *kr = dk + b * p.k.batch + (long long)hk * p.k.head + (long long)j * p.k.token;
        T *vr = dv + b * p.v.batch + (long long)hk * p.v.head + (long long)j * p.v.token;
        for (int c = 0; c < p.d; c++) kr[c] = from_f32<T>(0.0f);
        for (int c = 0; c < p.dv; c++) vr[c] = from_f32<T>(0.0f);
    }
}

// The first i in [0, n) for which pred(i) holds, pred monotone (false, then true).
template <class Pred>
__device__ inline int first_true(int n, const Pred &pred) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (pred(mid)) hi = mid; else lo = mid + 1;
    }
    return lo;
}

// Row `row` (query row qi, output gradient gi) attends key (kr, vr) of summary column g
// exactly: adds scale (P (dout . v - D) - C_g) q_i to gk and (P - U_g) dout_i to gv (C, U
// only where the key's group is labelled).
template <class T>
__device__ inline void add_exact(const Problem &p, const HybridParams &hp, const HybridGrads &hg,
                                 const float *lse, long long row, const T *qi, const T *gi,
                                 const T *kr, const T *vr, int g, bool labelled, float *gk,
                                 float *gv, int lane) {
    // A row whose given lse is -inf or NaN contributes nothing (as in grad_rows and on the
    // CPU); the test is the same for every lane, so the warp leaves together.
    if (!(lse[row] > kNegInf)) return;
    float s = 0.0f, dp = 0.0f;
    for (int c = lane; c < p.d; c += 32) s = fmaf(to_f32(qi[c]), to_f32(kr[c]), s);
    for (int c = lane; c < p.dv; c += 32) dp = fmaf(to_f32(gi[c]), to_f32(vr[c]), dp);
    s = p.scale * group_sum<32>(s, kAll);
    dp = group_sum<32>(dp, kAll);
    const float pj = expf(s - lse[row]);
    const float c = labelled ? hg.c[row * hp.max_groups + g] : 0.0f;
    const float u = labelled ? hg.u[row * hp.max_groups + g] : 0.0f;
    const float ds = p.scale * (pj * (dp - hg.delta[row]) - c), w = pj - u;
    for (int col = lane; col < p.d; col += 32) gk[col] = fmaf(ds, to_f32(qi[col]), gk[col]);
    for (int col = lane; col < p.dv; col += 32) gv[col] = fmaf(w, to_f32(gi[col]), gv[col]);
}

// The sink keys of a pair (the first valid key, and the last one when S = 2,
// non-causal): slot 0 and 1, -1 where there is none.
__device__ inline int sink_key(const Problem &p, const HybridParams &hp, const PairInfo &in,
                               int slot) {
    if (in.dense || in.n == 0) return -1;
    if (slot == 0) return hp.sinks >= 1 ? 0 : -1;
    return hp.sinks == 2 && !p.causal && in.n > 1 ? in.n - 1 : -1;
}

// A sink is exact for every live row of its pair: one warp per (pair, chunk of
// kSinkRows rows of its query heads) adds them up for both sinks, into
// hg.sink_partial[pair][slot][chunk]; key_grads sums the chunks in order.
template <class T>
__global__ void sink_grads(Problem p, HybridParams hp, const T *__restrict__ q,
                           const T *__restrict__ k, const T *__restrict__ v,
                           const float *__restrict__ lse, const T *__restrict__ dout,
                           const int32_t *__restrict__ valid, HybridWork hw, HybridGrads hg) {
    extern __shared__ float smem[];
    float *gk = smem + (threadIdx.x / 32) * (p.d + p.dv), *gv = gk + p.d;
    const int lane = threadIdx.x % 32;
    const int chunks = sink_chunks(p);
    const long long work = (long long)p.B * p.Hkv * chunks;
    const long long warps = (long long)gridDim.x * blockDim.x / 32;
    for (long long x = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32; x < work; x += warps) {
        const int pair = (int)(x / chunks), chunk = (int)(x % chunks);
        const PairInfo in = hw.info[pair];
        const long long b = pair / p.Hkv;
        const int hk = pair % p.Hkv;
        const int32_t *vl = valid + b * p.Nk;
        const bool labelled = in.groups > 0 && !p.causal;
        for (int slot = 0; slot < 2; slot++) {
            const int u = sink_key(p, hp, in, slot);
            if (u < 0) continue;
            const T *kr = k + b * p.k.batch + (long long)hk * p.k.head + (long long)vl[u] * p.k.token;
            const T *vr = v + b * p.v.batch + (long long)hk * p.v.head + (long long)vl[u] * p.v.token;
            const int g = labelled ? hw.label[(long long)pair * p.Nk + u] : -1;
            // Lane c % 32 owns column c of gk and of gv, as in add_exact.
            for (int c = lane; c < p.d; c += 32) gk[c] = 0.0f;
            for (int c = lane; c < p.dv; c += 32) gv[c] = 0.0f;
            const long long r0 = (long long)chunk * kSinkRows;
            const long long r1 = min(r0 + kSinkRows, (long long)p.group * p.Nq);
            for (long long r = r0; r < r1; r++) {  // rows of the pair's heads, head-major
                const int h = hk * p.group + (int)(r / p.Nq), i = (int)(r % p.Nq);
                int s, e;
                window_of(p, vl, in.n, in.window, i, s, e);
                if (s == e) continue;
                const T *qi = q + b * p.q.batch + (long long)h * p.q.head + (long long)i * p.q.token;
                const T *gi = dout + b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token;
                add_exact(p, hp, hg, lse, (b * p.H + h) * p.Nq + i, qi, gi, kr, vr, g, labelled,
                          gk, gv, lane);
            }
            float *part = hg.sink_partial + (((long long)pair * 2 + slot) * chunks + chunk) * (p.d + p.dv);
            for (int c = lane; c < p.d; c += 32) part[c] = gk[c];
            for (int c = lane; c < p.dv; c += 32) part[p.d + c] = gv[c];
        }
    }
}

// One warp per valid key u of a pair: dk_u and dv_u summed over the pair's query heads,
// each from the rows for which u is exact (its window rows, every row for a sink, the
// rows that expanded its group), plus its group's (causal: block's) sum gradient and,
// causal, the partial-block terms of the rows whose window starts after u in its block.
template <class T>
__global__ void key_grads(Problem p, HybridParams hp, const T *__restrict__ q,
                          const T *__restrict__ k, const T *__restrict__ v,
                          const float *__restrict__ lse, const T *__restrict__ dout,
                          T *__restrict__ dk, T *__restrict__ dv,
                          const int32_t *__restrict__ valid, HybridWork hw, HybridGrads hg) {
    extern __shared__ float smem[];
    float *gk = smem + (threadIdx.x / 32) * (p.d + p.dv), *gv = gk + p.d;
    const int lane = threadIdx.x % 32;
    const long long keys = (long long)p.B * p.Hkv * p.Nk;
    const long long warps = (long long)gridDim.x * blockDim.x / 32;
    for (long long x = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32; x < keys; x += warps) {
        const int pair = (int)(x / p.Nk), u = (int)(x % p.Nk);
        const PairInfo in = hw.info[pair];
        if (u >= in.n) continue;
        const long long b = pair / p.Hkv, slot0 = (long long)pair * p.Nk;
        const int hk = pair % p.Hkv;
        const int32_t *vl = valid + b * p.Nk;
        const T *kr = k + b * p.k.batch + (long long)hk * p.k.head + (long long)vl[u] * p.k.token;
        const T *vr = v + b * p.v.batch + (long long)hk * p.v.head + (long long)vl[u] * p.v.token;
        const bool labelled = in.groups > 0 && !p.causal;
        const bool causal_groups = in.groups > 0 && p.causal;
        // Member of a summary column: its k-means group; causal, its block (the first
        // sink is no member).
        const int g = labelled ? hw.label[slot0 + u]
                      : causal_groups && !(u == 0 && hp.sinks >= 1) ? vl[u] / hp.block : -1;
        const long long gat = (long long)pair * hp.max_groups + g;
        for (int c = lane; c < p.d; c += 32) gk[c] = g >= 0 ? hg.dksum[gat * p.d + c] : 0.0f;
        for (int c = lane; c < p.dv; c += 32) gv[c] = g >= 0 ? hg.dvsum[gat * p.dv + c] : 0.0f;
        const int sink = u == sink_key(p, hp, in, 0) ? 0 : u == sink_key(p, hp, in, 1) ? 1 : -1;
        if (sink >= 0) {  // every live row: sink_grads' chunks, in order
            const int chunks = sink_chunks(p);
            const float *part = hg.sink_partial + ((long long)pair * 2 + sink) * chunks * (p.d + p.dv);
            for (int ch = 0; ch < chunks; ch++, part += p.d + p.dv) {
                for (int c = lane; c < p.d; c += 32) gk[c] += part[c];
                for (int c = lane; c < p.dv; c += 32) gv[c] += part[p.d + c];
            }
        }
        const bool expanding = labelled && in.expand > 0;
        auto window = [&](int i, int &s, int &e) { window_of(p, vl, in.n, in.window, i, s, e); };
        // Row intervals (windows depend on the row, not on the head; both ends rise with i):
        // [w0, w1) the rows whose window holds u; [w1, p1) the rows whose window starts
        // after u inside u's causal block (its partial block holds u).
        const int w0 = first_true(p.Nq, [&](int i) { int s, e; window(i, s, e); return e > u; });
        const int w1 = first_true(p.Nq, [&](int i) { int s, e; window(i, s, e); return s > u; });
        const long long end = (long long)(g + 1) * hp.block;
        const int p1 = !(causal_groups && g >= 0) ? w1 : first_true(p.Nq, [&](int i) {
            int s, e;
            window(i, s, e);
            return s > u && (s >= in.n || vl[s] >= end);
        });

        for (int h = hk * p.group; h < (hk + 1) * p.group; h++) {
            const long long row0 = (b * p.H + h) * p.Nq;
            auto qrow = [&](int i) { return q + b * p.q.batch + (long long)h * p.q.head + (long long)i * p.q.token; };
            auto grow = [&](int i) { return dout + b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token; };
            auto exact = [&](int i) {
                add_exact(p, hp, hg, lse, row0 + i, qrow(i), grow(i), kr, vr, g, labelled, gk, gv, lane);
            };
            if (sink >= 0) {
                // every live row, already added from sink_grads
            } else if (expanding) {  // every row: its window, or its choice of u's group
                for (int i = 0; i < p.Nq; i++) {
                    int s, e;
                    window(i, s, e);
                    if (s == e) continue;
                    if ((u >= s && u < e) || hg.chosen[(row0 + i) * hp.max_groups + g]) exact(i);
                }
            } else {
                for (int i = w0; i < w1; i++) exact(i);
            }
            for (int i = w1; i < p1; i++) {  // causal: the partial block's terms
                const long long row = row0 + i;
                const float c = p.scale * hg.cp[row], uu = hg.up[row];
                const T *qi = qrow(i), *gi = grow(i);
                for (int col = lane; col < p.d; col += 32) gk[col] = fmaf(c, to_f32(qi[col]), gk[col]);
                for (int col = lane; col < p.dv; col += 32) gv[col] = fmaf(uu, to_f32(gi[col]), gv[col]);
            }
        }
        T *dkr = dk + b * p.k.batch + (long long)hk * p.k.head + (long long)vl[u] * p.k.token;
        T *dvr = dv + b * p.v.batch + (long long)hk * p.v.head + (long long)vl[u] * p.v.token;
        for (int c = lane; c < p.d; c += 32) dkr[c] = from_f32<T>(gk[c]);
        for (int c = lane; c < p.dv; c += 32) dvr[c] = from_f32<T>(gv[c]);
        __syncwarp();
    }
}

// The whole backward after build_groups, on an executor (hybrid_groups.cuh).
template <class Exec, class T>
void backward(const Exec &ex, const Problem &p, const HybridParams &hp, int warps, const T *q,
              const T *k, const T *v, const T *out, const float *lse, const T *dout, T *dq,
              T *dk, T *dv, const int32_t *valid, const HybridWork &hw, const HybridGrads &hg) {
    const long long rows = (long long)p.B * p.H * p.Nq, keys = (long long)p.B * p.Hkv * p.Nk;
    const size_t row_bytes = (size_t)warps * scratch_words(p, hp, true) * 4;
    ex.launch(grad_rows<T>, stride_grid(rows, warps), 32 * warps, row_bytes, p, hp, q, k, v, out,
              lse, dout, dq, valid, hw, hg);
    ex.launch(group_grads<T>, (unsigned)((long long)p.B * p.Hkv * hp.max_groups), 128, 0, p, hp,
              q, dout, hw, hg);
    ex.launch(zero_key_grads<T>, stride_grid(keys, 256), 256, 0, p, dk, dv);
    const size_t key_bytes = (size_t)warps * (p.d + p.dv) * 4;
    ex.launch(sink_grads<T>, stride_grid((long long)p.B * p.Hkv * sink_chunks(p), warps), 32 * warps,
              key_bytes, p, hp, q, k, v, lse, dout, valid, hw, hg);
    ex.launch(key_grads<T>, stride_grid(keys, warps), 32 * warps, key_bytes, p, hp, q, k, v, lse,
              dout, dk, dv, valid, hw, hg);
}

}  // namespace
}  // namespace smyrf::gpu::hy
