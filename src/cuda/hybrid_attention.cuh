// HYBRID steps 1, 2, 4 and 5 on the GPU, the device code and its launch: hybrid_attention.cu
// runs it on the device, tests/cuda/sim on the CPU (it includes this header). See
// hybrid_attention.cu for what it computes.
#pragma once

#include "cuda/hybrid.cuh"

// Internal to the including file (the library, or the simulator test): no symbol clashes.
namespace smyrf::gpu::hy {
namespace {

constexpr unsigned kAll = 0xffffffffu;
constexpr int kSeen = 1, kChosen = 2;  // expansion flags of a group

// The warp's scratch in shared memory, in 4-byte words (hybrid_warp_smem).
struct Scratch {
    float *q;     // [d] the query row
    float *acc;   // [dv] the unnormalised output
    float *sx;    // [max_exact] logits of the exact keys
    int *ux;      // [max_exact] their valid-key indices
    float *t;     // [G] summary logits, then their weights u_g
    int *m;       // [G] exact keys in the group, then the members it stands for
    float *hl;    // [G] the exact keys' summed logits
    int *flag;    // [G] kSeen, kChosen
};

__host__ __device__ inline long long scratch_words(const Problem &p, const HybridParams &hp) {
    return (long long)p.d + p.dv + 2LL * hp.max_exact + 4LL * hp.max_groups;
}

__device__ inline Scratch carve_scratch(float *base, const Problem &p, const HybridParams &hp) {
    Scratch s;
    s.q = base;
    s.acc = s.q + p.d;
    s.sx = s.acc + p.dv;
    s.ux = (int *)(s.sx + hp.max_exact);
    s.t = (float *)(s.ux + hp.max_exact);
    s.m = (int *)(s.t + hp.max_groups);
    s.hl = (float *)(s.m + hp.max_groups);
    s.flag = (int *)(s.hl + hp.max_groups);
    return s;
}

// scale * q . row over d, on every lane.
template <class R>
__device__ inline float warp_dot(const float *q, const R *row, int d, float scale, int lane) {
    float x = 0.0f;
    for (int c = lane; c < d; c += 32) x = fmaf(q[c], to_f32(row[c]), x);
    return scale * group_sum<32>(x, kAll);
}

// sx[x] = scale q . k_{ux[x]} for x in [x0, x1), four keys at a time so that their
// reductions overlap (each sums like warp_dot); lane 0 writes.
template <class KRow>
__device__ inline void exact_logits(const Scratch &sc, int x0, int x1, int d, float scale,
                                    const KRow &krow, int lane) {
    for (int x = x0; x < x1; x += 4) {
        float part[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            part[j] = 0.0f;
            if (x + j >= x1) continue;
            const auto *row = krow(sc.ux[x + j]);
            for (int c = lane; c < d; c += 32) part[j] = fmaf(sc.q[c], to_f32(row[c]), part[j]);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
#pragma unroll
            for (int j = 0; j < 4; j++) part[j] += __shfl_xor_sync(kAll, part[j], o);
        if (lane == 0)
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (x + j < x1) sc.sx[x + j] = scale * part[j];
    }
}

// The window of query i as the valid-key range [s, e) (cpu/hybrid_window.cpp).
__device__ inline void window_of(const Problem &p, const int32_t *vl, int n, int w, int i,
                                 int &s, int &e) {
    if (p.causal) {  // the w valid keys at or before the query's limit
        const long long limit = (long long)i + p.causal_offset;
        e = n == p.Nk ? (int)max(0LL, min((long long)n, limit + 1)) : valid_upto(vl, n, limit);
        s = max(0, e - w);
        return;
    }
    if (w >= n) {
        s = 0, e = n;
        return;
    }
    // The w valid keys nearest the centre c_i, ties to the lower position.
    const long long c = (2LL * i + 1) * p.Nk / (2LL * p.Nq);
    if (n == p.Nk) {
        s = (int)max(0LL, min((long long)(n - w), c - w / 2));
        e = s + w;
        return;
    }
    int lo = 0, hi = n - w;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (c - vl[mid] > vl[mid + w] - c) lo = mid + 1; else hi = mid;
    }
    s = lo, e = lo + w;
}

// Appends valid key u to the exact list when keep (all lanes call it with their own u).
__device__ inline void append(const Scratch &sc, int &ne, int u, bool keep, int lane) {
    const unsigned ballot = __ballot_sync(kAll, keep);
    if (keep) sc.ux[ne + __popc(ballot & ((1u << lane) - 1u))] = u;
    ne += __popc(ballot);
}

// The largest t among unseen groups (lower g on ties; NaN and -inf never), on every lane;
// -1 when none.
__device__ inline int best_unseen(const Scratch &sc, int G, int lane) {
    float bt = -__builtin_huge_valf();
    int bg = -1;
    for (int g = lane; g < G; g += 32)
        if (!(sc.flag[g] & kSeen) && sc.t[g] > bt) bt = sc.t[g], bg = g;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ot = __shfl_xor_sync(kAll, bt, o);
        const int og = __shfl_xor_sync(kAll, bg, o);
        if (og >= 0 && (bg < 0 || ot > bt || (ot == bt && og < bg))) bt = ot, bg = og;
    }
    return bg;
}

template <class T>
__global__ void hybrid_kernel(Problem p, HybridParams hp, const T *__restrict__ q,
                              const T *__restrict__ k, const T *__restrict__ v, T *__restrict__ out,
                              float *__restrict__ lse, const int32_t *__restrict__ valid,
                              HybridWork hw) {
    extern __shared__ float smem[];
    const Scratch sc = carve_scratch(smem + (threadIdx.x / 32) * scratch_words(p, hp), p, hp);
    const float ninf = -__builtin_huge_valf();
    for_each_query_row(p, [&](long long row, long long, long long b, int h, int i, int lane) {
        const int hk = h / p.group, pair = (int)(b * p.Hkv + hk);
        const long long slot0 = (long long)pair * p.Nk;
        const long long gbase = (long long)pair * hp.max_groups;
        const PairInfo in = hw.info[pair];
        const int32_t *vl = valid + b * p.Nk;
        auto krow = [&](int u) { return k + b * p.k.batch + (long long)hk * p.k.head + (long long)vl[u] * p.k.token; };
        auto vrow = [&](int u) { return v + b * p.v.batch + (long long)hk * p.v.head + (long long)vl[u] * p.v.token; };
        T *orow = out + b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token;

        int s, e;
        window_of(p, vl, in.n, in.window, i, s, e);
        if (s == e) {  // no allowed key
            for (int c = lane; c < p.dv; c += 32) orow[c] = from_f32<T>(0.0f);
            if (lse && lane == 0) lse[row] = ninf;
            return;
        }
        const T *qrow = q + b * p.q.batch + (long long)h * p.q.head + (long long)i * p.q.token;
        for (int c = lane; c < p.d; c += 32) sc.q[c] = to_f32(qrow[c]);
        for (int c = lane; c < p.dv; c += 32) sc.acc[c] = 0.0f;

        // Exact keys: the sinks outside the window, then the window.
        const bool sink0 = !in.dense && hp.sinks >= 1;
        const bool sink1 = !in.dense && hp.sinks == 2 && !p.causal && in.n > 1;
        int ne = 0;
        if (sink0 && s > 0) ne++;
        if (sink1 && e < in.n) ne++;
        if (lane == 0) {
            int x = 0;
            if (sink0 && s > 0) sc.ux[x++] = 0;
            if (sink1 && e < in.n) sc.ux[x++] = in.n - 1;
        }
        for (int u = s + lane; u < e; u += 32) sc.ux[ne + u - s] = u;
        ne += e - s;
        __syncwarp();
        exact_logits(sc, 0, ne, p.d, p.scale, krow, lane);
        __syncwarp();
        const int exact = ne;  // window and sinks; expanded members follow

        // Summary logits t_g over the m_g members not exact for the query (-inf: none).
        const int G = in.groups;
        const bool labelled = G > 0 && !p.causal;
        const int32_t *count = hw.count + gbase;
        float tp = ninf;  // causal: the partial block of the window's first key
        int pn = 0;
        if (labelled) {
            for (int g = lane; g < G; g += 32) sc.m[g] = 0, sc.hl[g] = 0.0f, sc.flag[g] = 0;
            __syncwarp();
            for (int x = 0; x < exact; x++) {  // lane g % 32 counts group g, in key order
                const int g = hw.label[slot0 + sc.ux[x]];
                if (g % 32 == lane) sc.m[g]++, sc.hl[g] += sc.sx[x];
            }
            __syncwarp();
        } else if (G > 0) {
            const int first = vl[s] / hp.block;
            for (int g = lane; g < G; g += 32) sc.m[g] = g < first ? count[g] : 0;
            pn = hw.pn[slot0 + s];
            if (pn > 0) {
                const float dot = warp_dot(sc.q, hw.pk + (slot0 + s) * p.d, p.d, p.scale, lane);
                tp = dot / (float)pn + logf((float)pn);
            }
            __syncwarp();
        }
        for (int g = 0; g < G; g++) {
            const int m = labelled ? count[g] - sc.m[g] : sc.m[g];
            __syncwarp();  // every lane has read m[g] before lane 0 overwrites it
            const float dot = m > 0 ? warp_dot(sc.q, hw.ksum + (gbase + g) * p.d, p.d, p.scale, lane) : 0.0f;
            if (lane == 0) {
                sc.m[g] = m;
                sc.t[g] = m > 0 ? (dot - (labelled ? sc.hl[g] : 0.0f)) / (float)m + logf((float)m) : ninf;
            }
        }
        __syncwarp();

        // Expansion: the heaviest summaries whose whole group fits what is left of E
        // (cpu/hybrid_expand.cpp, choose); their members become exact, once.
        if (labelled && in.expand > 0) {
            int left = in.expand;
            for (;;) {
                const int g = best_unseen(sc, G, lane);
                if (g < 0 || left < in.smallest) break;
                const bool fits = count[g] <= left;
                if (lane == 0) sc.flag[g] = kSeen | (fits ? kChosen : 0);
                if (fits) left -= count[g];
                __syncwarp();
            }
            const int32_t *start = hw.member_start + (long long)pair * (hp.max_groups + 1);
            for (int g = 0; g < G; g++) {
                if (!(sc.flag[g] & kChosen)) continue;
                for (int m0 = start[g]; m0 < start[g + 1]; m0 += 32) {
                    const int at = m0 + lane;
                    const int u = at < start[g + 1] ? hw.members[slot0 + at] : -1;
                    const bool known = (u >= s && u < e) || (sink0 && u == 0) || (sink1 && u == in.n - 1);
                    append(sc, ne, u, u >= 0 && !known, lane);
                }
            }
            __syncwarp();
            exact_logits(sc, exact, ne, p.d, p.scale, krow, lane);
            __syncwarp();
        }

        // The shift: the largest logit of the softmax's terms.
        float mx = tp;
        for (int x = lane; x < ne; x += 32) mx = fmaxf(mx, sc.sx[x]);
        for (int g = lane; g < G; g += 32)
            if (!(labelled && (sc.flag[g] & kChosen))) mx = fmaxf(mx, sc.t[g]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(kAll, mx, o));

        // One pass: the groups (their weights u_g stay in t for the exact keys), then the
        // exact keys, then the causal partial block; every lane sums l the same way.
        float l = 0.0f;
        for (int g = 0; g < G; g++) {
            const bool kept = sc.m[g] > 0 && !(labelled && (sc.flag[g] & kChosen));
            const float eg = kept ? expf(sc.t[g] - mx) : 0.0f;
            const float ug = kept ? eg / (float)sc.m[g] : 0.0f;
            l += eg;
            __syncwarp();
            if (lane == 0) sc.t[g] = ug;
            if (ug != 0.0f) {
                const float *vs = hw.vsum + (gbase + g) * p.dv;
                for (int c = lane; c < p.dv; c += 32) sc.acc[c] = fmaf(ug, vs[c], sc.acc[c]);
            }
        }
        __syncwarp();
        for (int x = 0; x < ne; x++) {
            const int u = sc.ux[x];
            const float ex = expf(sc.sx[x] - mx);
            l += ex;
            // Its group's share goes back: the summary stands for the other members only.
            const float wx = labelled ? ex - sc.t[hw.label[slot0 + u]] : ex;
            const T *vr = vrow(u);
            for (int c = lane; c < p.dv; c += 32) sc.acc[c] = fmaf(wx, to_f32(vr[c]), sc.acc[c]);
        }
        if (tp > ninf) {
            const float ep = expf(tp - mx);
            l += ep;
            const float up = ep / (float)pn, *pv = hw.pv + (slot0 + s) * p.dv;
            for (int c = lane; c < p.dv; c += 32) sc.acc[c] = fmaf(up, pv[c], sc.acc[c]);
        }
        const float inv = 1.0f / l;
        for (int c = lane; c < p.dv; c += 32) orow[c] = from_f32<T>(sc.acc[c] * inv);
        if (lse && lane == 0) lse[row] = mx + logf(l);
        __syncwarp();  // the scratch is reused by the warp's next row
    });
}

// Every query row of every problem, on an executor (hybrid_groups.cuh, build_groups).
template <class Exec, class T>
void attend(const Exec &ex, const Problem &p, const HybridParams &hp, int warps, const T *q,
            const T *k, const T *v, T *out, float *lse, const int32_t *valid,
            const HybridWork &hw) {
    const long long rows = (long long)p.B * p.H * p.Nq;
    const size_t bytes = (size_t)warps * scratch_words(p, hp) * 4;
    ex.launch(hybrid_kernel<T>, stride_grid(rows, warps), 32 * warps, bytes, p, hp, q, k, v, out,
              lse, valid, hw);
}

}  // namespace
}  // namespace smyrf::gpu::hy
