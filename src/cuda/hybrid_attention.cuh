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

// The warp's scratch in shared memory, in 4-byte words (scratch_words).
struct Scratch {
    float *q;     // [d] the query row
    float *acc;   // [dv] the unnormalised output (backward: the output gradient row)
    float *sx;    // [max_exact] logits of the exact keys
    int *ux;      // [max_exact] their valid-key indices
    float *t;     // [G] summary logits, then their weights u_g
    int *m;       // [G] exact keys in the group, then the members it stands for
    float *hl;    // [G] the exact keys' summed logits
    int *flag;    // [G] kSeen, kChosen
    // backward only
    float *dp;    // [max_exact] dout . v_j of the exact keys
    float *hdp;   // [G] their sums per group
    float *dq;    // [d] the query's gradient
};

__host__ __device__ inline long long scratch_words(const Problem &p, const HybridParams &hp,
                                                   bool backward = false) {
    const long long forward = (long long)p.d + p.dv + 2LL * hp.max_exact + 4LL * hp.max_groups;
    return backward ? forward + hp.max_exact + hp.max_groups + p.d : forward;
}

__device__ inline Scratch carve_scratch(float *base, const Problem &p, const HybridParams &hp,
                                        bool backward = false) {
    Scratch s{};
    s.q = base;
    s.acc = s.q + p.d;
    s.sx = s.acc + p.dv;
    s.ux = (int *)(s.sx + hp.max_exact);
    s.t = (float *)(s.ux + hp.max_exact);
    s.m = (int *)(s.t + hp.max_groups);
    s.hl = (float *)(s.m + hp.max_groups);
    s.flag = (int *)(s.hl + hp.max_groups);
    if (backward) {
        s.dp = (float *)(s.flag + hp.max_groups);
        s.hdp = s.dp + hp.max_exact;
        s.dq = s.hdp + hp.max_groups;
    }
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
    float bt = kNegInf;
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

// One query row: where its pair's data lie, and its window as a valid-key range [s, e)
// (s == e: the query has no allowed key).
struct Row {
    long long b, slot0, gbase;  // batch; the pair's first key slot and first group
    int h, hk, i, pair;
    PairInfo in;
    const int32_t *vl;          // the batch's valid key positions
    int s, e;
};

__device__ inline Row make_row(const Problem &p, const HybridParams &hp, const HybridWork &hw,
                               const int32_t *valid, long long b, int h, int i) {
    Row r;
    r.b = b, r.h = h, r.i = i;
    r.hk = h / p.group;
    r.pair = (int)(b * p.Hkv + r.hk);
    r.slot0 = (long long)r.pair * p.Nk;
    r.gbase = (long long)r.pair * hp.max_groups;
    r.in = hw.info[r.pair];
    r.vl = valid + b * p.Nk;
    window_of(p, r.vl, r.in.n, r.in.window, i, r.s, r.e);
    return r;
}

// What row_terms leaves besides the scratch.
struct Terms {
    int ne;         // exact keys in ux / sx: the sinks, the window, then expanded members
    int exact;      // how many of them are window and sinks
    int G;          // summary columns of the pair
    bool labelled;  // k-means groups (non-causal): exact keys take their group's share back
    bool sink0, sink1;
    float tp;       // causal: the partial block's logit (-inf: none) and its members
    int pn;
};

// Steps 1, 2 and 4 and the expansion for a live row (s < e) whose query is in sc.q: the
// exact keys and their logits, each summary's logit t (-inf: no summary) and member count
// m, the chosen groups (flag kChosen), and the causal partial block (cpu/hybrid_rows.cpp,
// cpu/hybrid_attention.cpp weigh, cpu/hybrid_expand.cpp choose).
template <class KRow>
__device__ Terms row_terms(const Problem &p, const HybridParams &hp, const HybridWork &hw,
                           const Row &r, const Scratch &sc, const KRow &krow, int lane) {
    const PairInfo &in = r.in;
    const int s = r.s, e = r.e;
    Terms tm{};
    // Exact keys: the sinks outside the window, then the window.
    tm.sink0 = !in.dense && hp.sinks >= 1;
    tm.sink1 = !in.dense && hp.sinks == 2 && !p.causal && in.n > 1;
    int ne = 0;
    if (tm.sink0 && s > 0) ne++;
    if (tm.sink1 && e < in.n) ne++;
    SMYRF_SIM_CHECK(ne + (e - s) <= hp.max_exact);
    if (lane == 0) {
        int x = 0;
        if (tm.sink0 && s > 0) sc.ux[x++] = 0;
        if (tm.sink1 && e < in.n) sc.ux[x++] = in.n - 1;
    }
    for (int u = s + lane; u < e; u += 32) sc.ux[ne + u - s] = u;
    ne += e - s;
    __syncwarp();
    exact_logits(sc, 0, ne, p.d, p.scale, krow, lane);
    __syncwarp();
    tm.exact = ne;

    // Summary logits t_g over the m_g members not exact for the query (-inf: none).
    const int G = in.groups;
    SMYRF_SIM_CHECK(G <= hp.max_groups);
    const bool labelled = G > 0 && !p.causal;
    tm.G = G;
    tm.labelled = labelled;
    tm.tp = kNegInf;
    const int32_t *count = hw.count + r.gbase;
    for (int g = lane; g < G; g += 32) sc.flag[g] = 0;
    if (labelled) {
        for (int g = lane; g < G; g += 32) sc.m[g] = 0, sc.hl[g] = 0.0f;
        __syncwarp();
        for (int x = 0; x < tm.exact; x++) {  // lane g % 32 counts group g, in key order
            const int g = hw.label[r.slot0 + sc.ux[x]];
            if (g % 32 == lane) sc.m[g]++, sc.hl[g] += sc.sx[x];
        }
        __syncwarp();
    } else if (G > 0) {
        const int first = r.vl[s] / hp.block;
        for (int g = lane; g < G; g += 32) sc.m[g] = g < first ? count[g] : 0;
        tm.pn = hw.pn[r.slot0 + s];
        if (tm.pn > 0) {
            const float dot = warp_dot(sc.q, hw.pk + (r.slot0 + s) * p.d, p.d, p.scale, lane);
            tm.tp = dot / (float)tm.pn + logf((float)tm.pn);
        }
        __syncwarp();
    }
    for (int g = 0; g < G; g++) {
        const int m = labelled ? count[g] - sc.m[g] : sc.m[g];
        __syncwarp();  // every lane has read m[g] before lane 0 overwrites it
        const float dot = m > 0 ? warp_dot(sc.q, hw.ksum + (r.gbase + g) * p.d, p.d, p.scale, lane) : 0.0f;
        if (lane == 0) {
            sc.m[g] = m;
            sc.t[g] = m > 0 ? (dot - (labelled ? sc.hl[g] : 0.0f)) / (float)m + logf((float)m) : kNegInf;
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
        const int32_t *start = hw.member_start + (long long)r.pair * (hp.max_groups + 1);
        for (int g = 0; g < G; g++) {
            if (!(sc.flag[g] & kChosen)) continue;
            for (int m0 = start[g]; m0 < start[g + 1]; m0 += 32) {
                const int at = m0 + lane;
                const int u = at < start[g + 1] ? hw.members[r.slot0 + at] : -1;
                const bool known = (u >= s && u < e) || (tm.sink0 && u == 0) ||
                                   (tm.sink1 && u == in.n - 1);
                append(sc, ne, u, u >= 0 && !known, lane);
            }
        }
        SMYRF_SIM_CHECK(ne <= hp.max_exact);  // checked after the writes: a test stops here
        __syncwarp();
        exact_logits(sc, tm.exact, ne, p.d, p.scale, krow, lane);
        __syncwarp();
    }
    tm.ne = ne;
    return tm;
}

// Whether group g's summary is a term of the row's softmax.
__device__ inline bool kept(const Scratch &sc, const Terms &tm, int g) {
    return sc.m[g] > 0 && !(tm.labelled && (sc.flag[g] & kChosen));
}

template <class T>
__global__ void hybrid_kernel(Problem p, HybridParams hp, const T *__restrict__ q,
                              const T *__restrict__ k, const T *__restrict__ v, T *__restrict__ out,
                              float *__restrict__ lse, const int32_t *__restrict__ valid,
                              HybridWork hw) {
    extern __shared__ float smem[];
    const Scratch sc = carve_scratch(smem + (threadIdx.x / 32) * scratch_words(p, hp), p, hp);
    for_each_query_row(p, [&](long long row, long long, long long b, int h, int i, int lane) {
        const Row r = make_row(p, hp, hw, valid, b, h, i);
        auto krow = [&](int u) { return k + b * p.k.batch + (long long)r.hk * p.k.head + (long long)r.vl[u] * p.k.token; };
        auto vrow = [&](int u) { return v + b * p.v.batch + (long long)r.hk * p.v.head + (long long)r.vl[u] * p.v.token; };
        T *orow = out + b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token;
        if (r.s == r.e) {  // no allowed key
            for (int c = lane; c < p.dv; c += 32) orow[c] = from_f32<T>(0.0f);
            if (lse && lane == 0) lse[row] = kNegInf;
            return;
        }
        const T *qrow = q + b * p.q.batch + (long long)h * p.q.head + (long long)i * p.q.token;
        for (int c = lane; c < p.d; c += 32) sc.q[c] = to_f32(qrow[c]);
        for (int c = lane; c < p.dv; c += 32) sc.acc[c] = 0.0f;
        const Terms tm = row_terms(p, hp, hw, r, sc, krow, lane);
        const int G = tm.G;

        // The shift: the largest logit of the softmax's terms.
        float mx = tm.tp;
        for (int x = lane; x < tm.ne; x += 32) mx = fmaxf(mx, sc.sx[x]);
        for (int g = lane; g < G; g += 32)
            if (kept(sc, tm, g)) mx = fmaxf(mx, sc.t[g]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(kAll, mx, o));

        // One pass: the groups (their weights u_g stay in t for the exact keys), then the
        // exact keys, then the causal partial block; every lane sums l the same way.
        float l = 0.0f;
        for (int g = 0; g < G; g++) {
            const bool on = kept(sc, tm, g);
            const float eg = on ? expf(sc.t[g] - mx) : 0.0f;
            const float ug = on ? eg / (float)sc.m[g] : 0.0f;
            l += eg;
            __syncwarp();
            if (lane == 0) sc.t[g] = ug;
            if (ug != 0.0f) {
                const float *vs = hw.vsum + (r.gbase + g) * p.dv;
                for (int c = lane; c < p.dv; c += 32) sc.acc[c] = fmaf(ug, vs[c], sc.acc[c]);
            }
        }
        __syncwarp();
        for (int x = 0; x < tm.ne; x++) {
            const int u = sc.ux[x];
            const float ex = expf(sc.sx[x] - mx);
            l += ex;
            // Its group's share goes back: the summary stands for the other members only.
            const float wx = tm.labelled ? ex - sc.t[hw.label[r.slot0 + u]] : ex;
            const T *vr = vrow(u);
            for (int c = lane; c < p.dv; c += 32) sc.acc[c] = fmaf(wx, to_f32(vr[c]), sc.acc[c]);
        }
        if (tm.tp > kNegInf) {
            const float ep = expf(tm.tp - mx);
            l += ep;
            const float up = ep / (float)tm.pn, *pv = hw.pv + (r.slot0 + r.s) * p.dv;
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
