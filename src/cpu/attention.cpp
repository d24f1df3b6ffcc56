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
    const int64_t hk = d.kv_head_of(h);
    for (int64_t t = 0; t < nq; t++) {
        ws.q[t] = a.q.row(b, h, qi[t]);
        ws.out[t] = a.out.row(b, h, qi[t]);
    }
    for (int64_t u = 0; u < nk; u++) {
        ws.k[u] = a.k.row(b, hk, kj[u]);
        ws.v[u] = a.v.row(b, hk, kj[u]);
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
                       float *m, float *l, uint8_t *done) {
    static const TileKernel kernel = tile_kernel();
    kernel(tile_of(d, a, b, h, qi, nq, kj, nk, ws, m, l, done));
}

void cluster_prefetch(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                      int64_t nq, const int32_t *kj, int64_t nk) {
    const int64_t hk = d.kv_head_of(h);
    for (int64_t t = 0; t < nq; t++) {
        prefetch_row(a.q.row(b, h, qi[t]), d.qk_dim);
        prefetch_row(a.out.row(b, h, qi[t]), d.v_dim);
    }
    for (int64_t u = 0; u < nk; u++) {
        prefetch_row(a.k.row(b, hk, kj[u]), d.qk_dim);
        prefetch_row(a.v.row(b, hk, kj[u]), d.v_dim);
    }
}

void attend_tiled(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                  int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                  float *m, float *l, uint8_t *done) {
    for (int64_t q0 = 0; q0 < nq; q0 += kQueryTile) {
        const int64_t tq = std::min(kQueryTile, nq - q0);
        for (int64_t k0 = 0; k0 < nk; k0 += kKeyTile) {
            const bool last = k0 + kKeyTile >= nk;
            cluster_attention(d, a, b, h, qi + q0, tq, kj + k0, std::min(kKeyTile, nk - k0), ws,
                              m, l, last ? done : nullptr);
        }
    }
}

}  // namespace smyrf::cpu
