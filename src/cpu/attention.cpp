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
             const int32_t *kj, int64_t nk, const AttentionScratch &ws, RowState *state,
             bool normalise, int64_t per_head) {
    // Rows as base + position * step, from locals: the stores below could alias a's fields.
    const int64_t hk = d.kv_head_of(h);
    const float *k = a.k.row(b, hk, 0), *v = a.v.row(b, hk, 0);
    const int64_t qs = a.q.s.token, ks = a.k.s.token, vs = a.v.s.token, os = a.out.s.token;
    const int64_t rows = per_head > 0 ? per_head : nq;  // of each head
    for (int64_t t0 = 0, g = 0; t0 < nq; t0 += rows, g++) {
        const float *q = a.q.row(b, h + g, 0);
        float *out = a.out.row(b, h + g, 0);
        for (int64_t t = t0; t < std::min(nq, t0 + rows); t++) {
            ws.q[t] = q + qi[t] * qs;
            ws.out[t] = out + qi[t] * os;
        }
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
    t.state = state;
    t.state_by_row = per_head > 0;
    t.qt = ws.qt, t.st = ws.st;
    t.mx = ws.mx, t.sum = ws.sum, t.keep = ws.keep, t.add = ws.add;
    t.normalise = normalise, t.inv = ws.inv;
    return t;
}

void cluster_attention(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                       int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                       RowState *state, bool normalise, Ahead *ahead, int64_t ahead_rows) {
    const TileKernel kernel = tile_kernel();
    Tile t = tile_of(d, a, b, h, qi, nq, kj, nk, ws, state, normalise);
    t.ahead = ahead, t.ahead_rows = ahead_rows;
    Ahead own;  // with ahead (SMYRF), this tile's v and out rows: see ahead_of
    if (ahead) {
        ahead_add(own, kj, nk, a.v.row(b, d.kv_head_of(h), 0), a.v.s.token, d.v_dim);
        ahead_add(own, qi, nq, a.out.row(b, h, 0), a.out.s.token, d.v_dim);
        t.own = &own;
    }
    kernel(t);
}

void ahead_add(Ahead &a, const int32_t *at, int64_t n, const float *base, int64_t step,
               int64_t dim) {
    a.list[a.lists++] = {at, n, base, step, dim};
    a.rows += n;
}

void load_ahead(Ahead &a, int64_t rows) {
    for (const int64_t end = std::min(a.rows, a.done + rows); a.done < end; a.done++) {
        while (a.within == a.list[a.cur].n) a.cur++, a.within = 0;
        const Ahead::List &x = a.list[a.cur];
        prefetch_row(x.base + x.at[a.within++] * x.step, x.dim);
    }
}

int64_t ahead_share(const Ahead *a, int64_t tiles) {
    return a ? (a->rows - a->done + tiles - 1) / tiles : 0;
}

Ahead ahead_of(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
               int64_t nq, const int32_t *kj, int64_t nk) {
    const int64_t hk = d.kv_head_of(h);
    Ahead x;
    ahead_add(x, qi, nq, a.q.row(b, h, 0), a.q.s.token, d.qk_dim);
    ahead_add(x, kj, nk, a.k.row(b, hk, 0), a.k.s.token, d.qk_dim);
    return x;
}

void attend_tiled(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                  int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                  RowState *state, bool normalise, Ahead *ahead) {
    const int64_t key_tiles = (nk + kKeyTile - 1) / kKeyTile;
    int64_t tiles = (nq + kQueryTile - 1) / kQueryTile * key_tiles;
    for (int64_t q0 = 0; q0 < nq; q0 += kQueryTile) {
        const int64_t tq = std::min(kQueryTile, nq - q0);
        for (int64_t k0 = 0; k0 < nk; k0 += kKeyTile, tiles--) {
            const bool last = k0 + kKeyTile >= nk;
            cluster_attention(d, a, b, h, qi + q0, tq, kj + k0, std::min(kKeyTile, nk - k0), ws,
                              state, normalise && last, ahead, ahead_share(ahead, tiles));
        }
    }
}

}  // namespace smyrf::cpu
