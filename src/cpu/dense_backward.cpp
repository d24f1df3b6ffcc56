// DENSE mode gradients, tiled (FlashAttention-2 style, two passes so that every output
// row has one owner and a fixed summation order, whatever the thread count):
//   pass 1, one task per (batch, kv head, key tile): for each query head of the group in
//     order, every query tile that may see the key tile: dK and dV of the tile;
//   pass 2, one task per (batch, query head, query tile): its allowed key tiles: dQ.
// The logits are recomputed in each pass; no Nq x Nk matrix exists (memory O(N d)).
#include "cpu/attention_backward.hpp"
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>
#include <cstring>

namespace smyrf::cpu {
namespace {

constexpr int64_t kDenseKeyTile = kGradKeyTile;

struct Buffers {
    DenseKeys keys;  // positions 0..Nq-1, valid keys per batch
    float *delta;          // [B][H][Nq]
    GradScratch *scratch;  // [threads]
};

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const size_t T = d.threads;
    bf.keys = dense_keys_layout(arena, d);
    bf.delta = arena.take<float>((size_t)(d.batch * d.heads * d.q_len));
    bf.scratch = per_thread<GradScratch>(arena, T,
        [&](Arena &a) { return grad_scratch(a, d); });
    return bf;
}

}  // namespace

size_t dense_backward_workspace(const Desc &d) { return layout_bytes(layout, d); }

void dense_backward_run(const Desc &d, const GradArgs &g, void *workspace) {
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const int64_t nq = d.q_len, nk = d.k_len, dim = d.qk_dim, dvd = d.v_dim, T = d.threads;
    dense_keys_fill(bf.keys, d, g.key_mask);

    parallel_for(d.batch * d.heads, T, [&](int64_t p, int) {
        attention_backward_delta(d, g, p / d.heads, p % d.heads, bf.delta + p * nq);
    });

    // Pass 1: dK, dV. Padded keys belong to no tile: zero them first.
    parallel_for(d.batch * d.kv_heads, T, [&](int64_t p, int) {
        const int64_t b = p / d.kv_heads, hk = p % d.kv_heads;
        for (int64_t j = 0; j < nk; j++) {
            if (g.key_mask && !g.key_mask[b * nk + j]) {
                std::memset(g.dk.row(b, hk, j), 0, (size_t)dim * sizeof(float));
                std::memset(g.dv.row(b, hk, j), 0, (size_t)dvd * sizeof(float));
            }
        }
    });
    const int64_t k_tiles = (nk + kDenseKeyTile - 1) / kDenseKeyTile;
    parallel_for(d.batch * d.kv_heads * k_tiles, T, [&](int64_t task, int thread) {
        const int64_t p = task / k_tiles, b = p / d.kv_heads, hk = p % d.kv_heads;
        const int32_t *valid = bf.keys.valid + b * nk;
        const int64_t t0 = (task % k_tiles) * kDenseKeyTile;
        const int64_t t1 = std::min(bf.keys.n_valid[b], t0 + kDenseKeyTile);
        if (t0 >= t1) return;  // a tile past the valid keys
        const GradRows dk{g.dk.row(b, hk, 0), g.dk.s.token};
        const GradRows dv{g.dv.row(b, hk, 0), g.dv.s.token};
        for (int64_t t = t0; t < t1; t++) {
            std::memset(dk.row(valid[t]), 0, (size_t)dim * sizeof(float));
            std::memset(dv.row(valid[t]), 0, (size_t)dvd * sizeof(float));
        }
        // Causal: queries before the one whose limit reaches the tile's first key see none.
        const int64_t i0 = d.causal ? std::clamp<int64_t>(valid[t0] - d.causal_offset(), 0, nq) : 0;
        for (int64_t h = hk * d.group_size(); h < (hk + 1) * d.group_size(); h++)
            attention_backward(d, g, b, h, bf.keys.positions + i0, nq - i0, valid + t0, t1 - t0,
                               bf.delta + (b * d.heads + h) * nq, false, &dk, &dv, nullptr,
                               bf.scratch[thread]);
    });

    // Pass 2: dQ.
    const int64_t q_tiles = (nq + kGradQueryTile - 1) / kGradQueryTile;
    parallel_for(d.batch * d.heads * q_tiles, T, [&](int64_t task, int thread) {
        const int64_t p = task / q_tiles, b = p / d.heads, h = p % d.heads;
        const int64_t i0 = (task % q_tiles) * kGradQueryTile, i1 = std::min(nq, i0 + kGradQueryTile);
        for (int64_t i = i0; i < i1; i++)
            std::memset(g.dq.row(b, h, i), 0, (size_t)dim * sizeof(float));
        const int32_t *valid = bf.keys.valid + b * nk;
        int64_t n_keys = bf.keys.n_valid[b];
        if (d.causal)
            n_keys = std::upper_bound(valid, valid + n_keys, i1 - 1 + d.causal_offset()) - valid;
        attention_backward(d, g, b, h, bf.keys.positions + i0, i1 - i0, valid, n_keys,
                           bf.delta + p * nq, true, nullptr, nullptr, nullptr,
                           bf.scratch[thread]);
    });
}

}  // namespace smyrf::cpu
