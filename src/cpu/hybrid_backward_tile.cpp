// HYBRID gradients of one tile of queries (docs/hybrid-notes.md, "Backward"), on the
// forward's rows (tile_rows: summaries, sinks, band, read where they lie) and in its
// column layout (one row of kAttendQueries query lanes per row of the tile):
//   1. band_scores twice: S = scale K Q^T and dP = V dO^T (summaries: Ksum_g, Vsum_g);
//   2. weigh, down each query's column: the exact complement (the histogram of the
//      query's exact keys over the groups, their summed logits and dout . v_j), then
//        C_ig = P_ig (dout.Vbar_ig - D_i) / m_ig,   U_ig = P_ig / m_ig      (summary rows)
//        dS'_ij = P_ij (dout.v_j - D_i) - C_{i,a_j},  P'_ij = P_ij - U_{i,a_j}  (exact)
//      with scale folded into C and dS', and 0 on every entry no query reads;
//   3. band_values: dq = scale (dS' K + C Ksum) (+ the causal partial block), in place;
//   4. band_grads: the rows' gradients, scale dS'^T Q and P'^T dO (summaries: of Ksum_g,
//      Vsum_g), into the caller's TileGrads.
#include "cpu/fast_exp.hpp"
#include "cpu/hybrid.hpp"
#include "cpu/reduce.hpp"

#include <algorithm>
#include <limits>

namespace smyrf::cpu::hybrid {
namespace {

constexpr int64_t kStride = kAttendQueries;
constexpr float kInf = std::numeric_limits<float>::infinity();

// st: the logits become the dq/dk weights (scale C, scale dS'); dpt: dout . v becomes the
// dv weights (U, P'), down the column of each query in [0, nq). A query with no term has
// lse_t = +inf, so that every P of it is 0.
SMYRF_VECTOR_CLONES
void weigh(const Pair &p, const BandTile &bt, const Rows &w, const BackScratch &b) {
    const Scratch &sc = b.f;
    const int64_t nq = bt.nq, G = w.groups;
    const float scale = bt.scale, *lse = b.lse_t, *D = b.delta_t, *log_n = p.log_n;
    float *dpt = b.dpt;
    for (int64_t i = 0; i < kStride; i++) sc.zero[i] = 0.0f;
    if (w.labelled)
        for (int64_t x = 0; x < G * kStride; x++)
            sc.hits[x] = 0, sc.hit_logits[x] = 0.0f, b.hit_dp[x] = 0.0f;

    // The exact keys of each group: how many, their summed logits and dout . v_j.
    for (int64_t r = G; w.labelled && r < bt.rows; r++) {
        const float *s = bt.st + r * kStride, *dp = dpt + r * kStride;
        const int64_t a = sc.qa[r], e = sc.qb[r];
        int32_t *hits = sc.hits + sc.label[r] * kStride;
        float *hs = sc.hit_logits + sc.label[r] * kStride, *hd = b.hit_dp + sc.label[r] * kStride;
        for (int64_t i = block_floor(a); i < block_ceil(e); i++) {
            const bool in = i >= a && i < e;
            hits[i] += in;
            hs[i] += in ? s[i] : 0.0f;
            hd[i] += in ? dp[i] : 0.0f;
        }
    }

    // The summaries over the m_ig members not exact for the query (kept in hits): their
    // logits t_ig (the forward's, bit for bit), then the expansion's choice from them.
    for (int64_t g = 0; g < G; g++) {
        float *s = bt.st + g * kStride, *dp = dpt + g * kStride;
        int32_t *m = sc.hits + g * kStride;
        float *hs = sc.hit_logits + g * kStride, *hd = b.hit_dp + g * kStride;  // then log m_ig
        const int32_t n = p.count[g];
        if (w.labelled)
            for (int64_t i = 0; i < nq; i++) m[i] = n - m[i], s[i] -= hs[i], dp[i] -= hd[i];
        else
            for (int64_t i = 0; i < nq; i++) m[i] = g < sc.first[i] ? n : 0;
        for (int64_t i = 0; i < nq; i++) hs[i] = log_n[m[i]];  // apart: it does not vectorise
        for (int64_t i = 0; i < nq; i++) s[i] = m[i] > 0 ? s[i] / (float)m[i] + hs[i] : -kInf;
    }
    const bool expanding = p.expand > 0 && w.labelled;
    if (expanding) choose(p, bt, w.live, sc);
    static const float kNone[kStride] = {};
    for (int64_t g = 0; g < G; g++) {
        float *s = bt.st + g * kStride, *dp = dpt + g * kStride;
        const int32_t *m = sc.hits + g * kStride;
        for (int64_t i = 0; i < nq; i++) {
            const float fm = (float)m[i];
            const float P = m[i] > 0 ? fast_exp(s[i] - lse[i]) : 0.0f;
            const float u = m[i] > 0 ? P / fm : 0.0f;
            s[i] = m[i] > 0 ? u * (dp[i] / fm - D[i]) : 0.0f;
            dp[i] = u;
        }
    }

    // The exact keys, each taking back its group's share (causal: none; the zero row);
    // those of an expanded group weigh 0 here (expand_grads takes the whole group).
    for (int64_t r = G; r < bt.rows; r++) {
        float *s = bt.st + r * kStride, *dp = dpt + r * kStride;
        const int64_t a = sc.qa[r], e = sc.qb[r], a0 = block_floor(a), e0 = block_ceil(e);
        const float *c = w.labelled ? bt.st + sc.label[r] * kStride : sc.zero;
        const float *u = w.labelled ? dpt + sc.label[r] * kStride : sc.zero;
        const float *drop = expanding ? sc.chosen + sc.label[r] * kStride : kNone;
        for (int64_t i = 0; i < a0; i++) s[i] = 0.0f, dp[i] = 0.0f;
        for (int64_t i = a0; i < e0; i++) {
            const bool in = (i >= a) & (i < e) & (drop[i] == 0.0f);  // no &&: the loads vectorise
            const float x = fast_exp(s[i] - lse[i]);  // every lane: the loop vectorises
            const float P = in ? x : 0.0f;
            s[i] = in ? scale * (P * (dp[i] - D[i]) - c[i]) : 0.0f;
            dp[i] = in ? P - u[i] : 0.0f;
        }
        for (int64_t i = e0; i < nq; i++) s[i] = 0.0f, dp[i] = 0.0f;
    }
    for (int64_t x = 0; x < G * kStride; x++) bt.st[x] *= scale;
}

}  // namespace

BackScratch back_scratch_layout(Arena &arena, const Desc &d) {
    const size_t g = (size_t)max_groups(d), rows = (size_t)max_rows(d), tq = kAttendQueries;
    BackScratch s{};
    s.f = scratch_layout(arena, d);
    s.orow = arena.take<const float *>(tq);
    s.dkrow = arena.take<float *>(rows);
    s.dvrow = arena.take<float *>(rows);
    s.qc = arena.take<int32_t>(rows);
    s.ot = arena.take<float>((size_t)d.v_dim * tq);
    s.dpt = arena.take<float>(rows * tq);
    s.hit_dp = arena.take<float>(g * tq);
    s.lse_t = arena.take<float>(tq);
    s.delta_t = arena.take<float>(tq);
    s.next = arena.take<int64_t>((size_t)d.group_size());
    if (max_expanded(d) > 0) s.x = grad_scratch(arena, d);
    return s;
}

Rows tile_grads(const Desc &d, const GradArgs &a, const Pair &p, int64_t h, int64_t i0,
                int64_t n, const TileGrads &out, const BackScratch &b) {
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    const float scale = (float)d.scale, inf = std::numeric_limits<float>::infinity();
    const Scratch &sc = b.f;
    Range r[kAttendQueries];
    for (int64_t t = 0; t < n; t++) r[t] = window_range(d, p, i0 + t);
    Rows w = tile_rows(d, a.q, a.k, a.v, p, h, i0, n, r, sc);
    const int64_t rows = w.fixed + w.c.band;
    for (int64_t x = 0; x < rows; x++) b.dkrow[x] = out.dk + x * dim, b.dvrow[x] = out.dv + x * dv;
    // band_grads needs non-decreasing ends: a sink's band row (qb = qa) must not cut those
    // of the rows before it (its weights are 0 anyway).
    for (int64_t x = w.fixed, end = 0; x < rows; x++) {
        end = std::max<int64_t>(end, sc.qb[x]);
        b.qc[x] = (int32_t)end;
    }

    // Each query's LSE (+inf where it has no term) and D.
    for (int64_t t = 0; t < n; t++) {
        b.orow[t] = a.dout.row(p.b, h, i0 + t);
        sc.out[t] = a.dq.row(p.b, h, i0 + t);
        const float lse = a.lse[(p.b * d.heads + h) * d.q_len + i0 + t];
        const bool live = t >= w.live && lse > -inf;
        b.lse_t[t] = live ? lse : inf;
        b.delta_t[t] = live ? dot_of(b.orow[t], a.out.row(p.b, h, i0 + t), dv) : 0.0f;
    }
    // The lanes past the tile's queries: weigh's vector loops read whole blocks of them.
    for (int64_t t = n; t < kAttendQueries; t++) b.lse_t[t] = inf, b.delta_t[t] = 0.0f;
    // Causal: the partial block (the members of the window's first block before it).
    const bool partial = d.causal && w.groups > 0;
    for (int64_t t = 0; partial && t < n; t++) {
        out.cp[t] = 0.0f, out.up[t] = 0.0f;
        const int32_t pn = t >= w.live ? p.pn[r[t].s] : 0;
        if (pn <= 0) continue;
        const float *pk = p.pk + r[t].s * dim, *pv = p.pv + r[t].s * dv;
        const float tp = scale * dot_of(sc.qrow[t], pk, dim) / (float)pn + p.log_n[pn];
        const float u = fast_exp(tp - b.lse_t[t]) / (float)pn;
        out.cp[t] = u * (dot_of(b.orow[t], pv, dv) / (float)pn - b.delta_t[t]);
        out.up[t] = u;
    }

    const BandTile logits{sc.qrow, sc.krow, sc.vrow, sc.out, sc.lo, sc.hi, n, rows, w.fixed,
                          dim, dv, scale, sc.qt, sc.st};
    const BandTile dots{b.orow, sc.vrow, nullptr, nullptr, sc.lo, sc.hi, n, rows, w.fixed,
                        dv, 0, 1.0f, b.ot, b.dpt};
    const BandTile dq{nullptr, nullptr, sc.krow, sc.out, sc.lo, sc.hi, n, rows, w.fixed,
                      0, dim, scale, nullptr, sc.st};
    const BandKernels &kernels = band_kernels();
    kernels.scores(logits);
    kernels.scores(dots);
    weigh(p, logits, w, b);
    kernels.values(dq);
    kernels.grads({sc.qrow, b.orow, b.dkrow, b.dvrow, sc.st, b.dpt, sc.qa, b.qc, n, rows,
                   w.fixed, dim, dv});
    for (int64_t t = 0; partial && t < n; t++) {
        if (out.cp[t] == 0.0f) continue;
        const float c = scale * out.cp[t], *pk = p.pk + r[t].s * dim;
        for (int64_t x = 0; x < dim; x++) sc.out[t][x] += c * pk[x];
    }
    if (p.expand > 0 && w.labelled) w.expanded = expand_grads(d, a, p, w.live, n, out, b);
    return w;
}

}  // namespace smyrf::cpu::hybrid
