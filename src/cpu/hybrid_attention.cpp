// HYBRID steps 4-5: one softmax over the exact keys (window and sinks) and the summary
// logits, in one pass, for a tile of consecutive queries. The tile's rows are read where
// they lie: first the fixed rows that every query reads (the sinks, then each group's
// Ksum_g / Vsum_g), then the band of consecutive valid keys its windows cover. In the
// column layout of hybrid_kernel.hpp (one row of logits per key, the queries across):
//   1. band_scores: scale q . k for every row a query reads (groups: scale q . Ksum_g);
//   2. weigh, down each query's column: the exact complement (a histogram of the query's
//      exact keys over the groups and their summed logits), the summary logits t_ig, and
//      the one-pass weights of ALGORITHM.md relative to e^{mx_i}: e^{s_ij} - u_{i,a_j} on
//      the exact keys, u_ig = e^{t_ig} / m_ig on the groups, 0 on every other row;
//   3. band_values: O = P' V + U Vsum; then the causal partial block and the normalisation.
// No per-query group sums are ever formed.
#include "cpu/fast_exp.hpp"
#include "cpu/hybrid.hpp"
#include "cpu/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace smyrf::cpu::hybrid {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kStride = kAttendQueries;

// Turns the logits of st into weights, down the column of each query in [live, nq):
// sets mx, and l, the sum of the softmax's terms e^{x - mx} (before the exact keys take
// their group's share back), and zeros every entry no query reads. Causal: xt holds each
// query's partial-block logit (-inf: none) and leaves as its term e^{xt - mx}.
// Expansion: the chosen groups (hybrid_expand.cpp) leave this pass: no summary, and
// their exact keys weigh 0 here (expand attends them with the rest of their group).
SMYRF_VECTOR_CLONES
void weigh(const Pair &p, const BandTile &bt, const Rows &w, const Scratch &sc) {
    const int64_t nq = bt.nq, live = w.live, G = w.groups;
    const float *log_n = p.log_n;
    float *mx = sc.mx, *l = sc.l;
    for (int64_t i = 0; i < kStride; i++) mx[i] = kNegInf, l[i] = 0.0f;
    if (w.labelled)
        for (int64_t x = 0; x < G * kStride; x++) sc.hits[x] = 0, sc.hit_logits[x] = 0.0f;

    // The exact keys, in one pass over each row: their maximum, and per group how many and
    // their summed logits. 32-bit query indices: a mask is then one vector compare.
    for (int64_t r = G; r < bt.rows; r++) {
        const float *s = bt.st + r * kStride;
        const int32_t a = sc.qa[r], b = sc.qb[r];
        int32_t *hits = sc.hits + sc.label[r] * kStride;
        float *hl = sc.hit_logits + sc.label[r] * kStride;
        for (int32_t i = (int32_t)block_floor(a); i < (int32_t)block_ceil(b); i++) {
            const bool in = i >= a && i < b;
            mx[i] = in && s[i] > mx[i] ? s[i] : mx[i];
            if (!w.labelled) continue;
            hits[i] += in;
            hl[i] += in ? s[i] : 0.0f;
        }
    }

    // Summary logits t_ig over the m_ig members that are not exact for the query (kept
    // in hits), -inf when there are none (log_n[0] is there, and not taken).
    for (int64_t g = 0; g < G; g++) {
        float *s = bt.st + g * kStride;
        int32_t *m = sc.hits + g * kStride;
        float *hl = sc.hit_logits + g * kStride;  // the summed logits, then log m_ig
        const int32_t n = p.count[g];
        if (w.labelled)
            for (int64_t i = live; i < nq; i++) m[i] = n - m[i], s[i] -= hl[i];
        else
            for (int64_t i = live; i < nq; i++) m[i] = g < sc.first[i] ? n : 0;
        for (int64_t i = live; i < nq; i++) hl[i] = log_n[m[i]];  // apart: it does not vectorise
        for (int64_t i = live; i < nq; i++) {
            const float t = s[i] / (float)m[i] + hl[i];
            s[i] = m[i] > 0 ? t : kNegInf;
            mx[i] = s[i] > mx[i] ? s[i] : mx[i];
        }
    }
    for (int64_t i = live; i < nq; i++) mx[i] = sc.xt[i] > mx[i] ? sc.xt[i] : mx[i];
    const bool expanding = p.expand > 0 && w.labelled;
    if (expanding) choose(p, bt, live, sc);

    // The weights: u_ig on the groups first, so that the exact keys can take theirs back.
    for (int64_t g = 0; g < G; g++) {
        float *s = bt.st + g * kStride;
        const int32_t *m = sc.hits + g * kStride;
        for (int64_t i = 0; i < live; i++) s[i] = 0.0f;
        for (int64_t i = live; i < nq; i++) {
            const float e = fast_exp(s[i] - mx[i]);
            l[i] += e;
            s[i] = m[i] > 0 ? e / (float)m[i] : 0.0f;
        }
    }
    // The exact keys: e^{s_ij} less the share u_{i,a_j} of the key's group (causal: none).
    band_kernels().weights({bt.st, sc.qa, sc.qb, w.labelled ? sc.label : nullptr, bt.st,
                            expanding ? sc.chosen : nullptr, mx, l, G, bt.rows});
    for (int64_t i = live; i < nq; i++) {
        sc.xt[i] = fast_exp(sc.xt[i] - mx[i]);
        l[i] += sc.xt[i];
    }
}

// Queries [i0, i0 + n) with windows r[0..n), whose band fits the scratch.
void attend_band(const Desc &d, const Args &a, const Pair &p, int64_t h, int64_t i0,
                 int64_t n, const Range *r, const Scratch &sc) {
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    const Rows w = tile_rows(d, a.q, a.k, a.v, p, h, i0, n, r, sc);
    for (int64_t t = 0; t < n; t++) sc.out[t] = a.out.row(p.b, h, i0 + t);

    // Causal: the members of the block of the window's first key before the window, as
    // one more summary (the partial block).
    const bool partial = d.causal && w.groups > 0;
    for (int64_t t = w.live; t < n; t++) {
        sc.xt[t] = kNegInf;
        if (!partial) continue;
        const int32_t pn = p.pn[r[t].s];
        if (pn > 0)
            sc.xt[t] = (float)d.scale * dot_of(sc.qrow[t], p.pk + r[t].s * dim, dim) / (float)pn +
                       p.log_n[pn];
    }

    const BandTile bt{sc.qrow, sc.krow, sc.vrow, sc.out, sc.lo, sc.hi, n, w.fixed + w.c.band,
                      w.fixed, dim, dv, (float)d.scale, sc.qt, sc.st};
    const BandKernels &kernels = band_kernels();
    kernels.scores(bt);
    weigh(p, bt, w, sc);
    kernels.values(bt);
    if (p.expand > 0 && w.labelled) expand(d, a, p, w.live, n, sc);

    // The partial block's members share its term; then the normalisation.
    for (int64_t t = 0; t < n; t++) {
        float *out = sc.out[t];
        float lse = kNegInf;
        if (t >= w.live && sc.l[t] > 0.0f) {
            const float inv = 1.0f / sc.l[t];
            const int32_t pn = partial ? p.pn[r[t].s] : 0;
            const float u = pn > 0 ? sc.xt[t] / (float)pn : 0.0f;
            const float *pv = u > 0.0f ? p.pv + r[t].s * dv : nullptr;
            for (int64_t j = 0; j < dv; j++) out[j] = (out[j] + (pv ? u * pv[j] : 0.0f)) * inv;
            lse = sc.mx[t] + std::log(sc.l[t]);
        } else {
            std::fill(out, out + dv, 0.0f);
        }
        if (a.lse) a.lse[(p.b * d.heads + h) * d.q_len + i0 + t] = lse;
    }
}

}  // namespace

void attend(const Desc &d, const Args &a, const Pair &p, int64_t h, int64_t i0, int64_t i1,
            const Scratch &sc) {
    Range r[kAttendQueries];
    for (int64_t i = i0; i < i1; i++) r[i - i0] = window_range(d, p, i);
    // Split where the windows drift apart further than the scratch band holds (Nk >> Nq).
    const int64_t cap = max_band(d);
    for (int64_t start = i0; start < i1;) {
        int64_t end = start + 1;
        while (end < i1 && r[end - i0].e - r[start - i0].s <= cap) end++;
        attend_band(d, a, p, h, start, end - start, r + (start - i0), sc);
        start = end;
    }
}

}  // namespace smyrf::cpu::hybrid
