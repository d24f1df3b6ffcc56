// HYBRID: the rows a tile of queries reads, where they lie (hybrid.hpp, "a tile's rows"):
// the forward's attention and the backward's gradients read the same ones.
#include "cpu/hybrid.hpp"

#include <algorithm>

namespace smyrf::cpu::hybrid {

Rows tile_rows(const Desc &d, const View &q, const View &k, const View &v, const Pair &p,
               int64_t h, int64_t i0, int64_t n, const Range *r, const Scratch &s) {
    const int64_t dim = d.qk_dim, dv = d.v_dim, G = p.groups;
    Rows w{columns(d, p, r, n), G, 0, 0, 0, {-1, -1}, G > 0 && !d.causal};
    const Columns &c = w.c;
    while (w.live < n && r[w.live].e == r[w.live].s) w.live++;

    // Groups, sinks, band. A sink in the band is exact through its own row only, so its
    // band row is exact for no query.
    for (int64_t g = 0; g < G; g++) {
        s.krow[g] = p.ksum + g * dim;
        s.vrow[g] = p.vsum + g * dv;
    }
    for (int64_t x = 0; x < 2; x++) {
        if (c.sink_col[x] < 0) continue;
        const int64_t row = G + w.sinks;
        const int64_t u = c.sink_col[x] < c.band ? c.s0 + c.sink_col[x] : c.extra[c.sink_col[x] - c.band];
        w.sink_key[w.sinks++] = u;
        s.krow[row] = k.row(p.b, p.hk, p.valid[u]);
        s.vrow[row] = v.row(p.b, p.hk, p.valid[u]);
        s.label[row] = w.labelled ? p.label[u] : 0;
        s.qa[row] = (int32_t)w.live, s.qb[row] = (int32_t)n;
    }
    w.fixed = G + w.sinks;
    for (int64_t j = 0; j < c.band; j++) {
        const int64_t u = c.s0 + j;
        s.krow[w.fixed + j] = k.row(p.b, p.hk, p.valid[u]);
        s.vrow[w.fixed + j] = v.row(p.b, p.hk, p.valid[u]);
        s.label[w.fixed + j] = w.labelled ? p.label[u] : 0;
    }
    for (int64_t t = 0; t < n; t++) {
        s.qrow[t] = q.row(p.b, h, i0 + t);
        s.lo[t] = (int32_t)(w.fixed + r[t].s - c.s0);
        s.hi[t] = (int32_t)(w.fixed + r[t].e - c.s0);
    }
    // Band row j is exact for the queries [qa, qb) whose window holds it (lo and hi are
    // non-decreasing).
    for (int64_t j = 0, qa = 0, qb = 0; j < c.band; j++) {
        const int64_t row = w.fixed + j;
        while (qa < n && s.hi[qa] <= row) qa++;
        while (qb < n && s.lo[qb] <= row) qb++;
        const bool sink = j == c.sink_col[0] || j == c.sink_col[1];
        s.qa[row] = (int32_t)qa;
        s.qb[row] = (int32_t)(sink ? qa : std::max(qa, qb));
    }
    // Causal: the block of each window's first key.
    if (d.causal && G > 0)
        for (int64_t t = 0; t < n; t++) s.first[t] = t < w.live ? 0 : p.valid[r[t].s] / (int32_t)p.block;
    return w;
}

}  // namespace smyrf::cpu::hybrid
