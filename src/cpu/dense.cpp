// DENSE mode: exact attention tile by tile. Each task is a tile of consecutive queries
// that meets its allowed valid keys through attend_tiled (key tiles merged online), so no
// Nq x Nk matrix ever exists.
//
// Decoder steps under grouped-query attention (a few queries, heads sharing a kv head)
// run one task per kv head instead: the queries of all the group's heads form one tile,
// so the group's keys and values are read once, not once per head. The kernel never
// mixes rows, so every row gets the same bits either way (tests/c/test_dense.c).
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"
#include "cpu/stages.hpp"

#include <algorithm>

namespace smyrf::cpu {
namespace {

// Heads per kv head whose queries share a tile: the group, when all of them fit one
// tile; else 1 (a tile per head).
int64_t heads_per_tile(const Desc &d) {
    const int64_t group = d.heads / d.kv_heads;
    return group > 1 && group * d.q_len <= kQueryTile ? group : 1;
}

struct Buffers {
    DenseKeys keys;  // positions 0..Nq-1, valid keys per batch
    int32_t *rows;   // grouped tiles: row g * Nq + i is position i (of head h0 + g)
    RowState *state;               // [threads][rows of a task], the tasks' running state
    AttentionScratch *attention;   // [threads]
};

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const size_t T = d.threads, group = heads_per_tile(d), per_task = group * d.q_len;
    bf.keys = dense_keys_layout(arena, d);
    bf.rows = arena.take<int32_t>(group > 1 ? per_task : 0);
    bf.state = arena.take<RowState>(T * per_task);
    bf.attention = per_thread<AttentionScratch>(arena, T,
        [&](Arena &a) { return attention_scratch(a, d); });
    return bf;
}

// The valid keys that queries up to position `last` may see (causal: none after the
// last query's limit).
int64_t keys_for(const Desc &d, const int32_t *valid, int64_t n_valid, int64_t last) {
    if (!d.causal) return n_valid;
    return std::upper_bound(valid, valid + n_valid, last + d.causal_offset()) - valid;
}

// The queries of heads h0, h0 + 1, ... of batch b (all Nq of each) as one tile of n rows
// (Buffers::rows) against the keys kj[0..nk) of their kv head, key tile after key tile.
void attend_group(const Desc &d, const Args &a, int64_t b, int64_t h0, const int32_t *rows,
                  int64_t n, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                  RowState *state) {
    const TileKernel kernel = tile_kernel();
    for (int64_t k0 = 0; k0 < nk; k0 += kKeyTile)
        kernel(tile_of(d, a, b, h0, rows, n, kj + k0, std::min(kKeyTile, nk - k0), ws, state,
                       false, d.q_len));
}

}  // namespace

size_t dense_workspace(const Desc &d) { return layout_bytes(layout, d); }

void dense_run(const Desc &d, const Args &a, void *workspace) {
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const int64_t nq = d.q_len, nk = d.k_len, group = heads_per_tile(d);
    dense_keys_fill(bf.keys, d, a.key_mask);

    if (group > 1) {
        const int64_t n = group * nq;
        for (int64_t r = 0; r < n; r++) bf.rows[r] = (int32_t)(r % nq);
        parallel_for(d.batch * d.kv_heads, d.threads, [&](int64_t task, int thread) {
            const int64_t b = task / d.kv_heads, h0 = task % d.kv_heads * group;
            RowState *state = bf.state + thread * n;
            const int32_t *valid = bf.keys.valid + b * nk;
            const int64_t n_valid = bf.keys.n_valid[b];
            combine_init(0, n, state);
            attend_group(d, a, b, h0, bf.rows, n, valid, keys_for(d, valid, n_valid, nq - 1),
                         bf.attention[thread], state);
            for (int64_t g = 0; g < group; g++)
                combine_finish(d, a, b, h0 + g, 0, nq, valid, n_valid, state + g * nq);
        });
        return;
    }
    const int64_t q_tiles = (nq + kQueryTile - 1) / kQueryTile;
    parallel_for(d.batch * d.heads * q_tiles, d.threads, [&](int64_t task, int thread) {
        const int64_t p = task / q_tiles, b = p / d.heads, h = p % d.heads;
        const int64_t i0 = (task % q_tiles) * kQueryTile, i1 = std::min(nq, i0 + kQueryTile);
        RowState *state = bf.state + thread * nq;
        const int32_t *valid = bf.keys.valid + b * nk;
        const int64_t n_valid = bf.keys.n_valid[b];
        combine_init(i0, i1, state);
        attend_tiled(d, a, b, h, bf.keys.positions + i0, i1 - i0, valid,
                     keys_for(d, valid, n_valid, i1 - 1), bf.attention[thread], state);
        combine_finish(d, a, b, h, i0, i1, valid, n_valid, state);
    });
}

}  // namespace smyrf::cpu
