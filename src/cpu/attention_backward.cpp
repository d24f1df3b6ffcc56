// The backward pass of attention over one block of queries and keys (see the header):
// for each key tile, its row pointers once, then for each query tile the fused backward
// tile kernel, which recomputes the logits, P = e^{S - LSE} with the forward's LSE,
// dP = dO V^T, dS = P (dP - D), and adds dV, dK and dQ into their rows in place.
// Everything runs in a fixed order on the calling thread.
#include "cpu/attention_backward.hpp"

#include "cpu/reduce.hpp"

#include <algorithm>

namespace smyrf::cpu {
namespace {

// The kernel's before_dq for a query tile under a DqOrder.
struct Waiting {
    const DqOrder *order;
    int64_t q0;
};

void wait_for_dq(void *ctx) {
    const Waiting &w = *(const Waiting *)ctx;
    w.order->wait(w.order->ctx, w.q0);
}

}  // namespace

GradScratch grad_scratch(Arena &arena, const Desc &d) {
    const size_t tq = kGradQueryTile, tk = kGradKeyTile;
    GradScratch s;
    s.q = arena.take<const float *>(tq);
    s.dout = arena.take<const float *>(tq);
    s.k = arena.take<const float *>(tk);
    s.v = arena.take<const float *>(tk);
    s.dq = arena.take<float *>(tq);
    s.dk = arena.take<float *>(tk);
    s.dv = arena.take<float *>(tk);
    s.qt = arena.take<float>((size_t)d.qk_dim * tq);
    s.ot = arena.take<float>((size_t)d.v_dim * tq);
    s.pt = arena.take<float>(tk * tq);
    s.dst = arena.take<float>(tk * tq);
    s.lse_t = arena.take<float>(tq);
    s.delta_t = arena.take<float>(tq);
    return s;
}

void attention_backward_delta(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                              int64_t i0, int64_t i1, float *delta) {
    for (int64_t i = i0; i < i1; i++)
        delta[i] = dot_of(g.dout.row(b, h, i), g.out.row(b, h, i), d.v_dim);
}

Ahead backward_ahead_of(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                        const int32_t *qi, int64_t nq, const int32_t *kj, int64_t nk) {
    const int64_t hk = d.kv_head_of(h), dim = d.qk_dim, dvd = d.v_dim;
    Ahead x;
    ahead_add(x, qi, nq, g.q.row(b, h, 0), g.q.s.token, dim);
    ahead_add(x, qi, nq, g.dout.row(b, h, 0), g.dout.s.token, dvd);
    ahead_add(x, kj, nk, g.k.row(b, hk, 0), g.k.s.token, dim);
    ahead_add(x, kj, nk, g.v.row(b, hk, 0), g.v.s.token, dvd);
    return x;
}

void attention_backward(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                        const int32_t *qi, int64_t nq, const int32_t *kj, int64_t nk,
                        const float *delta, bool want_dq, const GradRows *dk,
                        const GradRows *dv, uint8_t *met, const GradScratch &ws,
                        const DqOrder *order, Ahead *ahead) {
    const GradTileKernel kernel = grad_tile_kernel();
    const int64_t hk = d.kv_head_of(h);
    GradTile t;
    t.q = ws.q, t.dout = ws.dout, t.k = ws.k, t.v = ws.v;
    t.dq = want_dq ? ws.dq : nullptr;
    t.dk = dk ? ws.dk : nullptr;
    t.dv = dv ? ws.dv : nullptr;
    t.lse = g.lse + (b * d.heads + h) * d.q_len;
    t.delta = delta;
    t.met = met;
    t.qk_dim = d.qk_dim, t.v_dim = d.v_dim;
    t.scale = (float)d.scale;
    t.causal = d.causal;
    t.causal_offset = d.causal ? d.causal_offset() : 0;
    t.before_dq = nullptr, t.ctx = nullptr;
    t.qt = ws.qt, t.ot = ws.ot, t.pt = ws.pt, t.dst = ws.dst;
    t.lse_t = ws.lse_t, t.delta_t = ws.delta_t;
    t.ahead = ahead;
    int64_t tiles = (nk + kGradKeyTile - 1) / kGradKeyTile * ((nq + kGradQueryTile - 1) / kGradQueryTile);
    for (int64_t k0 = 0; k0 < nk; k0 += kGradKeyTile) {
        t.nk = std::min(kGradKeyTile, nk - k0);
        t.kj = kj + k0;
        for (int64_t u = 0; u < t.nk; u++) {
            const int64_t j = t.kj[u];
            ws.k[u] = g.k.row(b, hk, j);
            ws.v[u] = g.v.row(b, hk, j);
            if (dk) ws.dk[u] = dk->row(j);
            if (dv) ws.dv[u] = dv->row(j);
        }
        for (int64_t q0 = 0; q0 < nq; q0 += kGradQueryTile) {
            t.nq = std::min(kGradQueryTile, nq - q0);
            t.qi = qi + q0;
            for (int64_t r = 0; r < t.nq; r++) {
                const int64_t i = t.qi[r];
                ws.q[r] = g.q.row(b, h, i);
                ws.dout[r] = g.dout.row(b, h, i);
                if (want_dq) ws.dq[r] = g.dq.row(b, h, i);
            }
            Waiting w{order, q0};
            if (order) t.before_dq = wait_for_dq, t.ctx = &w;
            t.ahead_rows = ahead_share(ahead, tiles--);
            Ahead own;  // with ahead (SMYRF), the tile's dk, dv and dq rows: see cpu/stages.hpp
            if (ahead) {
                if (dk) ahead_add(own, t.kj, t.nk, dk->base, dk->ld, d.qk_dim);
                if (dv) ahead_add(own, t.kj, t.nk, dv->base, dv->ld, d.v_dim);
                if (want_dq) ahead_add(own, t.qi, t.nq, g.dq.row(b, h, 0), g.dq.s.token, d.qk_dim);
                t.own = &own;
            }
            kernel(t);
            if (order) order->done(order->ctx, q0);
        }
    }
}

}  // namespace smyrf::cpu
