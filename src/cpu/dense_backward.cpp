// DENSE mode gradients, tiled (FlashAttention-2 style) in one pass: one task per (batch,
// kv head, key tile) runs, for each query head of the group in order, every query tile
// that may see the key tile, through the fused backward tile kernel. The task owns its
// keys' dK and dV rows. The dQ rows of a query tile get the additions of every key tile
// in key tile order: a task adds into a query tile's dq rows only after the task of the
// previous key tile has (tasks are taken in order, so the two run as a pipeline, one
// query tile apart). Every output element thus has one fixed summation order, whatever
// the thread count. The logits are recomputed; no Nq x Nk matrix exists (memory O(N d)).
#include "cpu/attention_backward.hpp"
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>
#include <cstring>

namespace smyrf::cpu {
namespace {

constexpr int64_t kDenseKeyTile = kGradKeyTile, kDenseQueryTile = kGradQueryTile;
constexpr int64_t kAllDone = INT64_MAX;

struct Buffers {
    DenseKeys keys;        // positions 0..Nq-1, valid keys per batch
    float *delta;          // [B][H][Nq]
    int64_t *progress;     // [B][Hkv][key tiles]: see Chain
    GradScratch *scratch;  // [threads]
};

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const size_t T = d.threads;
    const size_t k_tiles = (size_t)((d.k_len + kDenseKeyTile - 1) / kDenseKeyTile);
    bf.keys = dense_keys_layout(arena, d);
    bf.delta = arena.take<float>((size_t)(d.batch * d.heads * d.q_len));
    bf.progress = arena.take<int64_t>((size_t)(d.batch * d.kv_heads) * k_tiles);
    bf.scratch = per_thread<GradScratch>(arena, T,
        [&](Arena &a) { return grad_scratch(a, d); });
    return bf;
}

// The dq order of one task. Steps number the query tiles of a group's heads, head after
// head: step = head-in-group * q_tiles + query tile. A task's progress s means that it
// and every task of an earlier key tile of its problem have made all their additions to
// the dq rows of the steps below s (kAllDone: of every step).
struct Chain {
    int64_t *mine;
    const int64_t *before;  // the previous key tile's progress; null for the first
    int64_t first_step;     // the step of the query tile at q0 = 0 of the current call
};

// The wait for a predecessor is short (part of one tile) unless its thread lost the CPU.
void wait_past(const int64_t *progress, int64_t step) {
    if (!progress) return;
    for (int64_t n = 0; __atomic_load_n(progress, __ATOMIC_ACQUIRE) <= step; n++)
        wait_a_little(n);
}

void chain_wait(void *ctx, int64_t q0) {
    const Chain &c = *(const Chain *)ctx;
    wait_past(c.before, c.first_step + q0 / kDenseQueryTile);
}

void chain_done(void *ctx, int64_t q0) {
    const Chain &c = *(const Chain *)ctx;
    const int64_t step = c.first_step + q0 / kDenseQueryTile;
    wait_past(c.before, step);  // the tile may have added nothing, without waiting
    __atomic_store_n(c.mine, step + 1, __ATOMIC_RELEASE);
}

}  // namespace

size_t dense_backward_workspace(const Desc &d) { return layout_bytes(layout, d); }

void dense_backward_run(const Desc &d, const GradArgs &g, void *workspace) {
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const int64_t nq = d.q_len, nk = d.k_len, dim = d.qk_dim, dvd = d.v_dim, T = d.threads;
    const int64_t k_tiles = (nk + kDenseKeyTile - 1) / kDenseKeyTile;
    const int64_t q_tiles = (nq + kDenseQueryTile - 1) / kDenseQueryTile;
    dense_keys_fill(bf.keys, d, g.key_mask);
    std::memset(bf.progress, 0, (size_t)(d.batch * d.kv_heads * k_tiles) * sizeof(int64_t));

    // D, and dq = 0 (every key tile adds into it); padded keys belong to no tile: their
    // dk and dv are zeros.
    parallel_for(d.batch * d.heads, T, [&](int64_t p, int) {
        const int64_t b = p / d.heads, h = p % d.heads;
        attention_backward_delta(d, g, b, h, 0, nq, bf.delta + p * nq);
        for (int64_t i = 0; i < nq; i++)
            std::memset(g.dq.row(b, h, i), 0, (size_t)dim * sizeof(float));
    });
    parallel_for(d.batch * d.kv_heads, T, [&](int64_t p, int) {
        const int64_t b = p / d.kv_heads, hk = p % d.kv_heads;
        for (int64_t j = 0; j < nk; j++) {
            if (g.key_mask && !g.key_mask[b * nk + j]) {
                std::memset(g.dk.row(b, hk, j), 0, (size_t)dim * sizeof(float));
                std::memset(g.dv.row(b, hk, j), 0, (size_t)dvd * sizeof(float));
            }
        }
    });

    // parallel_for hands the tasks out in order, and a task taken runs to its end: a
    // task that waits (Chain) waits for one already running, so the pipeline cannot
    // deadlock.
    parallel_for(d.batch * d.kv_heads * k_tiles, T, [&](int64_t task, int thread) {
        const int64_t p = task / k_tiles, kt = task % k_tiles;
        const int64_t b = p / d.kv_heads, hk = p % d.kv_heads;
        Chain chain{bf.progress + task, kt > 0 ? bf.progress + task - 1 : nullptr, 0};
        const int32_t *valid = bf.keys.valid + b * nk;
        const int64_t t0 = kt * kDenseKeyTile;
        const int64_t t1 = std::min(bf.keys.n_valid[b], t0 + kDenseKeyTile);
        if (t0 >= t1) {  // a tile past the valid keys: so are the later ones
            __atomic_store_n(chain.mine, kAllDone, __ATOMIC_RELEASE);
            return;
        }
        const GradRows dk{g.dk.row(b, hk, 0), g.dk.s.token};
        const GradRows dv{g.dv.row(b, hk, 0), g.dv.s.token};
        for (int64_t t = t0; t < t1; t++) {
            std::memset(dk.row(valid[t]), 0, (size_t)dim * sizeof(float));
            std::memset(dv.row(valid[t]), 0, (size_t)dvd * sizeof(float));
        }
        // Causal: queries before the one whose limit reaches the tile's first key see
        // none; the tiles start at multiples of kDenseQueryTile, the same for every task.
        const int64_t i0 = d.causal ? std::clamp<int64_t>(valid[t0] - d.causal_offset(), 0, nq) : 0;
        const int64_t first_tile = i0 / kDenseQueryTile, a0 = first_tile * kDenseQueryTile;
        const DqOrder order{chain_wait, chain_done, &chain};
        for (int64_t hl = 0; hl < d.group_size(); hl++) {
            const int64_t h = hk * d.group_size() + hl;
            chain.first_step = hl * q_tiles + first_tile;
            attention_backward(d, g, b, h, bf.keys.positions + a0, nq - a0, valid + t0, t1 - t0,
                               bf.delta + (b * d.heads + h) * nq, true, &dk, &dv, nullptr,
                               bf.scratch[thread], &order);
        }
        wait_past(chain.before, kAllDone - 1);
        __atomic_store_n(chain.mine, kAllDone, __ATOMIC_RELEASE);
    });
}

}  // namespace smyrf::cpu
