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
    DenseKeys keys;  // positions 0..Nq-1, valid keys per batch
    float *m, *l;                  // [threads][Nq], indexed by query position
    AttentionScratch *attention;   // [threads]
};

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const size_t T = d.threads;
    bf.keys = dense_keys_layout(arena, d);
    bf.m = arena.take<float>(T * d.q_len);
    bf.l = arena.take<float>(T * d.q_len);
    bf.attention = per_thread<AttentionScratch>(arena, T,
        [&](Arena &a) { return attention_scratch(a, d); });
    return bf;
}

}  // namespace

size_t dense_workspace(const Desc &d) { return layout_bytes(layout, d); }

void dense_run(const Desc &d, const Args &a, void *workspace) {
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const int64_t nq = d.q_len, nk = d.k_len;
    dense_keys_fill(bf.keys, d, a.key_mask);

    const int64_t q_tiles = (nq + kQueryTile - 1) / kQueryTile;
    parallel_for(d.batch * d.heads * q_tiles, d.threads, [&](int64_t task, int thread) {
        const int64_t p = task / q_tiles, b = p / d.heads, h = p % d.heads;
        const int64_t i0 = (task % q_tiles) * kQueryTile, i1 = std::min(nq, i0 + kQueryTile);
        float *m = bf.m + thread * nq, *l = bf.l + thread * nq;
        const int32_t *valid = bf.keys.valid + b * nk;
        const int64_t n_valid = bf.keys.n_valid[b];
        // Causal: keys after the tile's last query's limit are never allowed; skip them.
        int64_t n_keys = n_valid;
        if (d.causal) {
            const int64_t limit = i1 - 1 + d.causal_offset();
            n_keys = std::upper_bound(valid, valid + n_valid, limit) - valid;
        }
        combine_init(i0, i1, m, l);
        attend_tiled(d, a, b, h, bf.keys.positions + i0, i1 - i0, valid, n_keys,
                     bf.attention[thread], m, l);
        combine_finish(d, a, b, h, i0, i1, valid, n_valid, m, l);
    });
}

}  // namespace smyrf::cpu
