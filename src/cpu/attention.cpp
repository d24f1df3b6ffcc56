// Stage 4: dense softmax attention inside one cluster (or one tile, in DENSE mode),
// through the fused tile kernel (cpu/tile.hpp), which also merges each tile's result
// into the running state (stage 5).
#include "cpu/stages.hpp"

#include <algorithm>

namespace smyrf::cpu {

AttentionScratch attention_scratch(Arena &arena, const Desc &d) {
    const size_t tq = kQueryTile, tk = kKeyTile;
    AttentionScratch s;
    s.q = arena.take<const float *>(tq);
    s.k = arena.take<const float *>(tk);
    s.v = arena.take<const float *>(tk);
    s.out = arena.take<float *>(tq);
    s.qt = arena.take<float>(tq * d.qk_dim);
    s.st = arena.take<float>(tk * tq);
    s.mx = arena.take<float>(tq);
    s.sum = arena.take<float>(tq);
    s.keep = arena.take<float>(tq);
    s.add = arena.take<float>(tq);
    s.inv = arena.take<float>(tq);
    return s;
}

Tile tile_of(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi, int64_t nq,
             const int32_t *kj, int64_t nk, const AttentionScratch &ws, float *m, float *l,
             uint8_t *done) {
    // Rows as base + position * step, from locals: the stores below could alias a's fields.
    const int64_t hk = d.kv_head_of(h);
    const float *q = a.q.row(b, h, 0), *k = a.k.row(b, hk, 0), *v = a.v.row(b, hk, 0);
    float *out = a.out.row(b, h, 0);
    const int64_t qs = a.q.s.token, ks = a.k.s.token, vs = a.v.s.token, os = a.out.s.token;
    for (int64_t t = 0; t < nq; t++) {
        ws.q[t] = q + qi[t] * qs;
        ws.out[t] = out + qi[t] * os;
    }
    for (int64_t u = 0; u < nk; u++) {
        ws.k[u] = k + kj[u] * ks;
        ws.v[u] = v + kj[u] * vs;
    }
    Tile t;
    t.q = ws.q, t.k = ws.k, t.v = ws.v, t.out = ws.out;
    t.qi = qi, t.kj = kj;
    t.nq = nq, t.nk = nk, t.qk_dim = d.qk_dim, t.v_dim = d.v_dim;
    t.scale = (float)d.scale;
    t.causal = d.causal;
    t.causal_offset = d.causal ? d.causal_offset() : 0;
    t.m = m, t.l = l;
    t.qt = ws.qt, t.st = ws.st;
    t.mx = ws.mx, t.sum = ws.sum, t.keep = ws.keep, t.add = ws.add;
    t.done = done, t.inv = ws.inv;
    return t;
}

void cluster_attention(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                       int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                       float *m, float *l, uint8_t *done, Ahead *ahead, int64_t ahead_rows) {
    static const TileKernel kernel = tile_kernel();
    Tile t = tile_of(d, a, b, h, qi, nq, kj, nk, ws, m, l, done);
    t.ahead = ahead, t.ahead_rows = ahead_rows;
    kernel(t);
}

void load_ahead(Ahead &a, int64_t rows) {
    const int64_t end = std::min(a.rows, a.done + rows);
    for (; a.done < end; a.done++) {
        int64_t i = a.done;
        if (i < a.nq) {
            prefetch_row(a.q + a.qi[i] * a.q_step, a.qk_dim);
        } else if ((i -= a.nq) < a.nk) {
            prefetch_row(a.k + a.kj[i] * a.k_step, a.qk_dim);
        } else if ((i -= a.nk) < a.nq) {
            prefetch_row(a.out + a.qi[i] * a.out_step, a.v_dim);
        } else {
            i -= a.nq;
            prefetch_row(a.v + a.kj[i] * a.v_step, a.v_dim);
        }
    }
}

Ahead ahead_of(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
               int64_t nq, const int32_t *kj, int64_t nk) {
    const int64_t hk = d.kv_head_of(h);
    Ahead x;
    x.qi = qi, x.kj = kj, x.nq = nq, x.nk = nk;
    x.q = a.q.row(b, h, 0), x.out = a.out.row(b, h, 0);
    x.k = a.k.row(b, hk, 0), x.v = a.v.row(b, hk, 0);
    x.q_step = a.q.s.token, x.out_step = a.out.s.token;
    x.k_step = a.k.s.token, x.v_step = a.v.s.token;
    x.qk_dim = d.qk_dim, x.v_dim = d.v_dim;
    x.rows = 2 * (nq + nk);
    return x;
}

void attend_tiled(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                  int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                  float *m, float *l, uint8_t *done, Ahead *ahead) {
    const int64_t key_tiles = (nk + kKeyTile - 1) / kKeyTile;
    int64_t tiles = (nq + kQueryTile - 1) / kQueryTile * key_tiles;
    for (int64_t q0 = 0; q0 < nq; q0 += kQueryTile) {
        const int64_t tq = std::min(kQueryTile, nq - q0);
        for (int64_t k0 = 0; k0 < nk; k0 += kKeyTile, tiles--) {
            const bool last = k0 + kKeyTile >= nk;
            // each tile loads an even share of the rows still to load
            const int64_t share = ahead ? (ahead->rows - ahead->done + tiles - 1) / tiles : 0;
            cluster_attention(d, a, b, h, qi + q0, tq, kj + k0, std::min(kKeyTile, nk - k0), ws,
                              m, l, last ? done : nullptr, ahead, share);
        }
    }
}

}  // namespace smyrf::cpu
