// DENSE mode: exact attention tile by tile. Each task is a tile of consecutive queries
// that meets its allowed valid keys through attend_tiled (key tiles merged online), so no
// Nq x Nk matrix ever exists.
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"
#include "cpu/stages.hpp"

#include <algorithm>

namespace smyrf::cpu {
namespace {

struct Buffers {
    int32_t *positions;            // [Nq]: 0, 1, 2, ...
    int32_t *valid;                // [B][Nk]
    int64_t *n_valid;              // [B]
    float *m, *l;                  // [threads][Nq], indexed by query position
    AttentionScratch *attention;   // [threads]
};

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const size_t T = d.threads;
    bf.positions = arena.take<int32_t>((size_t)d.q_len);
    bf.valid = arena.take<int32_t>((size_t)(d.batch * d.k_len));
    bf.n_valid = arena.take<int64_t>((size_t)d.batch);
    bf.m = arena.take<float>(T * d.q_len);
    bf.l = arena.take<float>(T * d.q_len);
    bf.attention = per_thread<AttentionScratch>(arena, T,
        [&](Arena &a) { return attention_scratch(a, d); });
    return bf;
}

}  // namespace

size_t dense_workspace(const Desc &d) {
    Arena arena;
    layout(arena, d);
    return arena.used();
}

void dense_run(const Desc &d, const Args &a, void *workspace) {
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const int64_t nq = d.q_len, nk = d.k_len;
    for (int64_t i = 0; i < nq; i++) bf.positions[i] = (int32_t)i;
    for (int64_t b = 0; b < d.batch; b++)
        bf.n_valid[b] = valid_keys(a.key_mask, b, nk, bf.valid + b * nk);

    const int64_t q_tiles = (nq + kQueryTile - 1) / kQueryTile;
    parallel_for(d.batch * d.heads * q_tiles, d.threads, [&](int64_t task, int thread) {
        const int64_t p = task / q_tiles, b = p / d.heads, h = p % d.heads;
        const int64_t i0 = (task % q_tiles) * kQueryTile, i1 = std::min(nq, i0 + kQueryTile);
        float *m = bf.m + thread * nq, *l = bf.l + thread * nq;
        const int32_t *valid = bf.valid + b * nk;
        const int64_t n_valid = bf.n_valid[b];
        // Causal: keys after the tile's last query's limit are never allowed; skip them.
        int64_t n_keys = n_valid;
        if (d.causal) {
            const int64_t limit = i1 - 1 + d.causal_offset();
            n_keys = std::upper_bound(valid, valid + n_valid, limit) - valid;
        }
        combine_init(d, a, b, h, i0, i1, m, l);
        attend_tiled(d, a, b, h, bf.positions + i0, i1 - i0, valid, n_keys, bf.attention[thread],
                     m, l);
        combine_finish(d, a, b, h, i0, i1, valid, n_valid, m, l);
    });
}

}  // namespace smyrf::cpu
