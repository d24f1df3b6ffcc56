// HYBRID's expansion (docs/algorithm.md, "Expansion"): each query spends SMYRF_PARAM_EXPAND
// more keys on the groups whose summaries weigh most for it, attending their members
// exactly instead. choose picks the groups from the tile's summary logits; the band pass
// then leaves those groups out (no summary, and their exact keys weigh 0 there), and
// expand attends every member of a chosen group, window and sinks included, once.
#include "cpu/hybrid.hpp"

#include <algorithm>
#include <cmath>

namespace smyrf::cpu::hybrid {

void choose(const Pair &p, const BandTile &bt, int64_t live, const Scratch &s) {
    const int64_t G = p.groups, n = bt.nq;
    std::fill(s.chosen, s.chosen + G * kAttendQueries, uint8_t(0));
    for (int64_t i = live; i < n; i++) {
        // The groups with a summary (t > -inf; NaN ranks last), by decreasing t, ties to
        // the lower g.
        const auto t = [&](int32_t g) {
            const float x = bt.st[g * kAttendQueries + i];
            return std::isnan(x) ? -INFINITY : x;
        };
        int64_t c = 0;
        for (int32_t g = 0; g < G; g++)
            if (bt.st[g * kAttendQueries + i] > -INFINITY) s.order[c++] = g;
        std::sort(s.order, s.order + c, [&](int32_t x, int32_t y) {
            return t(x) > t(y) || (t(x) == t(y) && x < y);
        });
        // Greedy: every group whose whole size still fits what is left.
        int64_t left = p.expand;
        for (int64_t at = 0; at < c && left > 0; at++) {
            const int32_t g = s.order[at];
            if (p.count[g] > left) continue;
            s.chosen[g * kAttendQueries + i] = 1;
            bt.st[g * kAttendQueries + i] = -INFINITY;  // the summary is dropped
            left -= p.count[g];
        }
    }
}

void expand(const Desc &d, const Args &a, const Pair &p, int64_t live, int64_t n,
            const Scratch &s) {
    static const TileKernel kernel = tile_kernel();
    const AttentionScratch &x = s.x;
    for (int64_t g = 0; g < p.groups; g++) {
        const uint8_t *chosen = s.chosen + g * kAttendQueries;
        int64_t nq = 0;
        for (int64_t i = live; i < n; i++) {
            if (!chosen[i]) continue;
            s.xq[nq] = (int32_t)i;
            x.q[nq] = s.qrow[i];
            x.out[nq] = s.out[i];
            nq++;
        }
        const int32_t *m = p.members + p.member_start[g], *end = p.members + p.member_start[g + 1];
        for (; nq > 0 && m < end; m += kKeyTile) {
            const int64_t nk = std::min<int64_t>(kKeyTile, end - m);
            for (int64_t u = 0; u < nk; u++) {
                s.xk[u] = p.valid[m[u]];
                x.k[u] = a.k.row(p.b, p.hk, s.xk[u]);
                x.v[u] = a.v.row(p.b, p.hk, s.xk[u]);
            }
            Tile t;
            t.q = x.q, t.k = x.k, t.v = x.v, t.out = x.out;
            t.qi = s.xq, t.kj = s.xk;  // m and l below are indexed by the band tile's rows
            t.nq = nq, t.nk = nk, t.qk_dim = d.qk_dim, t.v_dim = d.v_dim;
            t.scale = (float)d.scale;
            t.causal = false, t.causal_offset = 0;
            t.m = s.mx, t.l = s.l;
            t.qt = x.qt, t.st = x.st;
            t.mx = x.mx, t.sum = x.sum, t.keep = x.keep, t.add = x.add;
            t.done = nullptr, t.inv = x.inv;
            kernel(t);
        }
    }
}

int64_t expand_grads(const Desc &d, const GradArgs &a, const Pair &p, int64_t live, int64_t n,
                     const TileGrads &out, const BackScratch &b) {
    static const GradTileKernel kernel = grad_tile_kernel();
    const Scratch &s = b.f;
    const GradScratch &x = b.x;
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    int64_t rows = 0;
    for (int64_t g = 0; g < p.groups; g++) {
        const uint8_t *chosen = s.chosen + g * kAttendQueries;
        int64_t nq = 0;
        for (int64_t i = live; i < n; i++) {
            if (!chosen[i]) continue;
            s.xq[nq] = (int32_t)i;
            x.q[nq] = s.qrow[i];
            x.dout[nq] = b.orow[i];
            x.dq[nq] = s.out[i];
            nq++;
        }
        const int32_t *m = p.members + p.member_start[g], *end = p.members + p.member_start[g + 1];
        for (; nq > 0 && m < end; m += kGradTileKeys) {
            const int64_t nk = std::min<int64_t>(kGradTileKeys, end - m);
            for (int64_t u = 0; u < nk; u++, rows++) {
                s.xk[u] = p.valid[m[u]];
                x.k[u] = a.k.row(p.b, p.hk, s.xk[u]);
                x.v[u] = a.v.row(p.b, p.hk, s.xk[u]);
                out.xu[rows] = m[u];
                x.dk[u] = out.xk + rows * dim;
                x.dv[u] = out.xv + rows * dv;
                std::fill(x.dk[u], x.dk[u] + dim, 0.0f);
                std::fill(x.dv[u], x.dv[u] + dv, 0.0f);
            }
            GradTile t;
            t.q = x.q, t.dout = x.dout, t.k = x.k, t.v = x.v;
            t.dq = x.dq, t.dk = x.dk, t.dv = x.dv;
            t.qi = s.xq, t.kj = s.xk;  // lse and delta below are indexed by the tile's rows
            t.lse = b.lse_t, t.delta = b.delta_t;
            t.met = nullptr;
            t.nq = nq, t.nk = nk, t.qk_dim = dim, t.v_dim = dv;
            t.scale = (float)d.scale;
            t.causal = false, t.causal_offset = 0;
            t.before_dq = nullptr, t.ctx = nullptr;
            t.qt = x.qt, t.ot = x.ot, t.pt = x.pt, t.dst = x.dst;
            t.lse_t = x.lse_t, t.delta_t = x.delta_t;
            kernel(t);
        }
    }
    return rows;
}

}  // namespace smyrf::cpu::hybrid
