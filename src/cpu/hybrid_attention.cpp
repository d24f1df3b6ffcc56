// HYBRID steps 4-5: one softmax over the exact keys (window and sinks) and the summary
// logits, in one pass. A tile of consecutive queries reads one band of consecutive valid
// keys plus the sinks outside it: S = scale Q K^T over the band, the summary logits
// scale Q Ksum^T, a per-query histogram of its exact keys over the groups for the exact
// complement, then O = P' V + U Vsum with P'_ij = p_ij - u_{i,a_j} (ALGORITHM.md's
// one-pass numerator), so no per-query group sums are ever formed.
#include "cpu/blas.hpp"
#include "cpu/fast_exp.hpp"
#include "cpu/hybrid.hpp"
#include "cpu/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace smyrf::cpu::hybrid {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The sink columns that are exact for a query besides its window columns [ws, we).
int sink_extras(const Columns &c, int64_t ws, int64_t we, int64_t *cols) {
    int n = 0;
    for (int64_t col : c.sink_col)
        if (col >= 0 && (col < ws || col >= we)) cols[n++] = col;
    return n;
}

void gather_rows(const View &x, int64_t b, int64_t h, const int32_t *valid, const Columns &c,
                 int64_t dim, float *dst) {
    for (int64_t j = 0; j < c.count; j++) {
        const int64_t u = j < c.band ? c.s0 + j : c.extra[j - c.band];
        std::memcpy(dst + j * dim, x.row(b, h, valid[u]), (size_t)dim * sizeof(float));
    }
}

// Summary logits of one query: the mean logit of each group's non-exact keys plus the
// log of their number (t_ig); `t` comes in as scale q . Ksum_g and leaves as t_ig, -inf
// for a group with nothing left. Non-causal groups subtract the query's exact keys.
void summary_logits(const Pair &p, const float *s_row, const Columns &c, Range r,
                    const int64_t *extras, int n_extras, const Scratch &sc, bool causal,
                    float *t) {
    if (causal) {
        // Whole blocks before the window's block; its own block comes as the partial sum.
        const int64_t first = p.valid[r.s] / p.block;
        for (int64_t g = 0; g < p.groups; g++) {
            const int32_t m = g < first ? p.count[g] : 0;
            t[g] = m > 0 ? t[g] / (float)m + p.log_n[m] : kNegInf;
        }
        return;
    }
    std::fill(sc.hits, sc.hits + p.groups, 0);
    std::fill(sc.hit_logits, sc.hit_logits + p.groups, 0.0f);
    auto hit = [&](int64_t j) {
        sc.hits[sc.col_label[j]]++;
        sc.hit_logits[sc.col_label[j]] += s_row[j];
    };
    for (int64_t j = r.s - c.s0; j < r.e - c.s0; j++) hit(j);
    for (int x = 0; x < n_extras; x++) hit(extras[x]);
    for (int64_t g = 0; g < p.groups; g++) {
        const int32_t m = p.count[g] - sc.hits[g];
        t[g] = m > 0 ? (t[g] - sc.hit_logits[g]) / (float)m + p.log_n[m] : kNegInf;
    }
}

// One query's softmax, relative to e^mx: on return s holds the weights of the exact
// keys (less their group's share u_{i,a_j}, non-causal), t the group weights u_ig, and
// `partial` the weight of each member of the window's own causal block.
struct Row {
    float l, mx, partial;
};

Row weigh_row(const Desc &d, const Pair &p, const Columns &c, Range ri, const float *q,
              const Scratch &sc, float *s, float *t) {
    const int64_t G = p.groups;
    // Band keys outside this query's window are not exact for it, sinks aside.
    int64_t extras[2];
    const int n_extras = sink_extras(c, ri.s - c.s0, ri.e - c.s0, extras);
    float kept[2];
    for (int x = 0; x < n_extras; x++) kept[x] = s[extras[x]];
    std::fill(s, s + (ri.s - c.s0), kNegInf);
    std::fill(s + (ri.e - c.s0), s + c.band, kNegInf);
    for (int x = 0; x < n_extras; x++) s[extras[x]] = kept[x];
    float mx = max_of(s, c.count, kNegInf);
    if (G > 0) {
        summary_logits(p, s, c, ri, extras, n_extras, sc, d.causal, t);
        mx = max_of(t, G, mx);
    }
    // Causal: the members of the window's own block before it, as one more summary.
    const int32_t pn = d.causal && G > 0 ? p.pn[ri.s] : 0;
    float tp = kNegInf;
    if (pn > 0) {
        tp = (float)d.scale * dot_of(q, p.pk + ri.s * d.qk_dim, d.qk_dim) / (float)pn + p.log_n[pn];
        mx = std::max(mx, tp);
    }
    for (int64_t j = 0; j < c.count; j++) s[j] = fast_exp(s[j] - mx);
    for (int64_t g = 0; g < G; g++) t[g] = fast_exp(t[g] - mx);
    Row row{sum_of(s, c.count) + sum_of(t, G), mx, 0.0f};
    if (pn > 0) {
        const float e = fast_exp(tp - mx);
        row.l += e;
        row.partial = e / (float)pn;
    }
    // u_ig = e^{t_ig} / m_ig weighs each member's value; exact keys take theirs back.
    if (G > 0 && !d.causal) {
        for (int64_t g = 0; g < G; g++)
            if (t[g] > 0.0f) t[g] /= (float)(p.count[g] - sc.hits[g]);
        for (int64_t j = ri.s - c.s0; j < ri.e - c.s0; j++) s[j] -= t[sc.col_label[j]];
        for (int x = 0; x < n_extras; x++) s[extras[x]] -= t[sc.col_label[extras[x]]];
    } else if (G > 0) {
        for (int64_t g = 0; g < G; g++)
            if (t[g] > 0.0f) t[g] /= (float)p.count[g];
    }
    return row;
}

// Queries [i0, i0 + n) with windows r[0..n), whose band fits the scratch.
void attend_band(const Desc &d, const Args &a, const Pair &p, int64_t h, int64_t i0,
                 int64_t n, const Range *r, const Scratch &sc) {
    const int64_t dim = d.qk_dim, dv = d.v_dim, G = p.groups;
    const Columns c = columns(d, p, r, n);
    for (int64_t t = 0; t < n; t++)
        std::memcpy(sc.q + t * dim, a.q.row(p.b, h, i0 + t), (size_t)dim * sizeof(float));
    if (c.count > 0) {
        gather_rows(a.k, p.b, p.hk, p.valid, c, dim, sc.k);
        gather_rows(a.v, p.b, p.hk, p.valid, c, dv, sc.v);
        gemm_nt(n, c.count, dim, (float)d.scale, sc.q, dim, sc.k, dim, 0.0f, sc.s, c.count);
    }
    if (G > 0) gemm_nt(n, G, dim, (float)d.scale, sc.q, dim, p.ksum, dim, 0.0f, sc.t, G);
    if (G > 0 && !d.causal)
        for (int64_t j = 0; j < c.count; j++)
            sc.col_label[j] = p.label[j < c.band ? c.s0 + j : c.extra[j - c.band]];

    for (int64_t t = 0; t < n; t++) {
        float *s = sc.s + t * c.count, *tg = sc.t + t * G;
        if (r[t].e == r[t].s) {  // no allowed key: a zero row, lse = -inf
            std::fill(s, s + c.count, 0.0f);
            std::fill(tg, tg + G, 0.0f);
            sc.l[t] = 0.0f;
            continue;
        }
        const Row row = weigh_row(d, p, c, r[t], sc.q + t * dim, sc, s, tg);
        sc.l[t] = row.l, sc.mx[t] = row.mx, sc.partial[t] = row.partial;
    }

    // O = P' V + U Vsum, then the causal partial block, then the normalisation.
    if (c.count > 0) gemm_nn(n, dv, c.count, 1.0f, sc.s, c.count, sc.v, dv, 0.0f, sc.o, dv);
    if (G > 0) gemm_nn(n, dv, G, 1.0f, sc.t, G, p.vsum, dv, c.count > 0 ? 1.0f : 0.0f, sc.o, dv);
    for (int64_t t = 0; t < n; t++) {
        float *out = a.out.row(p.b, h, i0 + t);
        float lse = kNegInf;
        if (sc.l[t] > 0.0f) {
            const float w = sc.partial[t], inv = 1.0f / sc.l[t];
            const float *o = sc.o + t * dv, *pv = w > 0.0f ? p.pv + r[t].s * dv : nullptr;
            for (int64_t j = 0; j < dv; j++) out[j] = (o[j] + (pv ? w * pv[j] : 0.0f)) * inv;
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
    Range r[kQueryTile];
    for (int64_t i = i0; i < i1; i++) r[i - i0] = window_range(d, p, i);
    // Split where the windows drift apart further than the scratch band holds (Nk >> Nq).
    const int64_t cap = max_columns(d) - 2;
    for (int64_t start = i0; start < i1;) {
        int64_t end = start + 1;
        while (end < i1 && r[end - i0].e - r[start - i0].s <= cap) end++;
        attend_band(d, a, p, h, start, end - start, r + (start - i0), sc);
        start = end;
    }
}

}  // namespace smyrf::cpu::hybrid
