// HYBRID's expansion (docs/algorithm.md, "Expansion"): each query spends SMYRF_PARAM_EXPAND
// more keys on the groups whose summaries weigh most for it, attending their members
// exactly instead. choose picks the groups from the tile's summary logits; the band pass
// then leaves those groups out (no summary, and their exact keys weigh 0 there), and
// expand attends every member of a chosen group, window and sinks included, once.
#include "cpu/hybrid.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

namespace smyrf::cpu::hybrid {
namespace {

// The greedy walk of every query at once, a step per group taken or passed over: each
// step finds each query's best unseen summary (the largest t, the lower g on ties; NaN
// and -inf never win), which the query takes when its whole group fits what it has
// left. A group that does not fit now never will, so this is the walk down the sorted
// summaries, without a sort per query.
SMYRF_VECTOR_CLONES  // of this file alone (cpu.hpp)
void walk(const Pair &p, const BandTile &bt, int64_t live, const Scratch &s) {
    constexpr int64_t L = kAttendQueries;
    const int64_t G = p.groups;
    std::fill(s.chosen, s.chosen + G * L, 0.0f);
    std::fill(s.seen, s.seen + G * L, 0.0f);
    int32_t smallest = INT32_MAX;  // the smallest group a summary can stand for
    for (int64_t g = 0; g < G; g++)
        if (p.count[g] > 0) smallest = std::min(smallest, p.count[g]);
    alignas(64) int32_t left[L], arg[L];
    alignas(64) float best[L];
    for (int64_t i = 0; i < L; i++) left[i] = i >= live && i < bt.nq ? (int32_t)p.expand : 0;
    // Rows outside [live, nq) hold no logits (never computed): -inf keeps the compares
    // below on defined values (valgrind) without a mask per step.
    for (int64_t g = 0; g < G; g++) {
        std::fill(bt.st + g * L, bt.st + g * L + live, -INFINITY);
        std::fill(bt.st + g * L + bt.nq, bt.st + (g + 1) * L, -INFINITY);
    }
    for (int64_t step = 0; step < G; step++) {
        for (int64_t i = 0; i < L; i++) best[i] = -INFINITY, arg[i] = -1;
        for (int32_t g = 0; g < G; g++) {
            const float *t = bt.st + g * L;
            const float *seen = s.seen + g * L;
            for (int64_t i = 0; i < L; i++) {
                const bool better = (seen[i] == 0.0f) & (t[i] > best[i]);  // & vectorises
                best[i] = better ? t[i] : best[i];
                arg[i] = better ? g : arg[i];
            }
        }
        bool going = false;
        for (int64_t i = 0; i < L; i++) {
            if (left[i] < smallest || arg[i] < 0) continue;
            const int32_t g = arg[i];
            s.seen[g * L + i] = 1.0f;
            if (p.count[g] <= left[i]) {
                s.chosen[g * L + i] = 1.0f;
                left[i] -= p.count[g];
            }
            going = true;
        }
        if (!going) break;
    }
    for (int64_t x = 0; x < G * L; x++)  // a chosen group's summary is dropped
        bt.st[x] = s.chosen[x] != 0.0f ? -INFINITY : bt.st[x];
}

// Every group some query of the tile chose: its queries (rows of the band tile) into
// s.xq, then queries(nq); its members (valid-key indices), at most `keys` at a time,
// their positions into s.xk and their k, v rows into k_rows, v_rows, then
// chunk(nq, members, nk). Groups in index order, members in position order: the forward
// and the backward see the same tiles.
template <class Queries, class Chunk>
void each_chosen(const View &k, const View &v, const Pair &p, int64_t live, int64_t n,
                 const Scratch &s, int64_t keys, const float **k_rows, const float **v_rows,
                 const Queries &queries, const Chunk &chunk) {
    for (int64_t g = 0; g < p.groups; g++) {
        const float *chosen = s.chosen + g * kAttendQueries;
        int64_t nq = 0;
        for (int64_t i = live; i < n; i++)
            if (chosen[i] != 0.0f) s.xq[nq++] = (int32_t)i;
        if (nq == 0) continue;
        queries(nq);
        const int32_t *m = p.members + p.member_start[g], *end = p.members + p.member_start[g + 1];
        for (; m < end; m += keys) {
            const int64_t nk = std::min<int64_t>(keys, end - m);
            for (int64_t u = 0; u < nk; u++) {
                s.xk[u] = p.valid[m[u]];
                k_rows[u] = k.row(p.b, p.hk, s.xk[u]);
                v_rows[u] = v.row(p.b, p.hk, s.xk[u]);
            }
            chunk(nq, m, nk);
        }
    }
}

}  // namespace

void choose(const Pair &p, const BandTile &bt, int64_t live, const Scratch &s) {
    walk(p, bt, live, s);
}

void expand(const Desc &d, const Args &a, const Pair &p, int64_t live, int64_t n,
            const Scratch &s) {
    const TileKernel kernel = tile_kernel();
    const AttentionScratch &x = s.x;
    each_chosen(a.k, a.v, p, live, n, s, kKeyTile, x.k, x.v,
        [&](int64_t nq) {
            for (int64_t r = 0; r < nq; r++) x.q[r] = s.qrow[s.xq[r]], x.out[r] = s.out[s.xq[r]];
        },
        [&](int64_t nq, const int32_t *, int64_t nk) {
            // the rows' state as the kernel keeps it (the band's loops keep mx and l apart)
            for (int64_t r = 0; r < nq; r++) s.xs[s.xq[r]] = {s.mx[s.xq[r]], s.l[s.xq[r]]};
            Tile t;
            t.q = x.q, t.k = x.k, t.v = x.v, t.out = x.out;
            t.qi = s.xq, t.kj = s.xk;  // the state below is indexed by the band tile's rows
            t.nq = nq, t.nk = nk, t.qk_dim = d.qk_dim, t.v_dim = d.v_dim;
            t.scale = (float)d.scale;
            t.causal = false, t.causal_offset = 0;
            t.state = s.xs;
            t.qt = x.qt, t.st = x.st;
            t.mx = x.mx, t.sum = x.sum, t.keep = x.keep, t.add = x.add;
            t.inv = x.inv;
            kernel(t);
            for (int64_t r = 0; r < nq; r++) {
                const RowState &now = s.xs[s.xq[r]];
                s.mx[s.xq[r]] = now.m, s.l[s.xq[r]] = now.l;
            }
        });
}

int64_t expand_grads(const Desc &d, const GradArgs &a, const Pair &p, int64_t live, int64_t n,
                     const TileGrads &out, const BackScratch &b) {
    const GradTileKernel kernel = grad_tile_kernel();
    const Scratch &s = b.f;
    const GradScratch &x = b.x;
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    int64_t rows = 0;
    each_chosen(a.k, a.v, p, live, n, s, kGradTileKeys, x.k, x.v,
        [&](int64_t nq) {
            for (int64_t r = 0; r < nq; r++) {
                x.q[r] = s.qrow[s.xq[r]];
                x.dout[r] = b.orow[s.xq[r]];
                x.dq[r] = s.out[s.xq[r]];
            }
        },
        [&](int64_t nq, const int32_t *m, int64_t nk) {
            for (int64_t u = 0; u < nk; u++, rows++) {  // the members' rows of the slot
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
        });
    return rows;
}

}  // namespace smyrf::cpu::hybrid
