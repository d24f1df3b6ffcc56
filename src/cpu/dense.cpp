// DENSE mode: exact attention tile by tile. Each task is a tile of consecutive queries;
// it meets the valid keys in tiles, each tile is one "cluster" for the attention stage,
// and the combine stage merges the tiles online. No Nq x Nk matrix ever exists.
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"
#include "cpu/stages.hpp"

#include <algorithm>

namespace smyrf::cpu {
namespace {

constexpr int64_t kQueryTile = 64;

// Keys per tile: keeps each GEMM just below 2^18 multiply-adds, where OpenBLAS still
// runs it on the calling thread (see blas.cpp).
int64_t key_tile(const Desc &d) {
    const int64_t t = ((int64_t(1) << 18) - 1) / (kQueryTile * std::max(d.qk_dim, d.v_dim));
    return std::clamp<int64_t>(t, 16, 512);
}

struct Buffers {
    int32_t *positions;  // [max(Nq, Nk)]: 0, 1, 2, ...
    int32_t *valid;      // [B][Nk]
    int64_t *n_valid;    // [B]
    float *att_base;     // per thread: attention scratch, o, mx, sum, m, l
    size_t att_stride;
};

struct ThreadScratch {
    AttentionScratch att;
    float *o, *mx, *sum, *m, *l;
};

ThreadScratch thread_scratch(Arena &arena, const Desc &d) {
    const size_t tq = kQueryTile;
    ThreadScratch t;
    t.att = attention_scratch(arena, kQueryTile, key_tile(d), d);
    t.o = arena.take<float>(tq * d.v_dim);
    t.mx = arena.take<float>(tq);
    t.sum = arena.take<float>(tq);
    t.m = arena.take<float>((size_t)d.q_len);  // indexed by query position
    t.l = arena.take<float>((size_t)d.q_len);
    return t;
}

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    bf.positions = arena.take<int32_t>((size_t)std::max(d.q_len, d.k_len));
    bf.valid = arena.take<int32_t>((size_t)(d.batch * d.k_len));
    bf.n_valid = arena.take<int64_t>((size_t)d.batch);
    Arena sizing;
    thread_scratch(sizing, d);
    bf.att_stride = sizing.used() / sizeof(float);
    bf.att_base = arena.take<float>((size_t)d.threads * bf.att_stride);
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
    const int64_t nq = d.q_len, nk = d.k_len, tk = key_tile(d);
    for (int64_t i = 0; i < std::max(nq, nk); i++) bf.positions[i] = (int32_t)i;
    for (int64_t b = 0; b < d.batch; b++)
        bf.n_valid[b] = valid_keys(a.key_mask, b, nk, bf.valid + b * nk);

    const int64_t q_tiles = (nq + kQueryTile - 1) / kQueryTile;
    parallel_for(d.batch * d.heads * q_tiles, d.threads, [&](int64_t task, int thread) {
        const int64_t p = task / q_tiles, b = p / d.heads, h = p % d.heads;
        const int64_t i0 = (task % q_tiles) * kQueryTile, i1 = std::min(nq, i0 + kQueryTile);
        Arena mine(bf.att_base + (size_t)thread * bf.att_stride);
        const ThreadScratch ts = thread_scratch(mine, d);
        float *m = ts.m, *l = ts.l;
        const int32_t *valid = bf.valid + b * nk;
        const int64_t n_valid = bf.n_valid[b];
        // Causal: keys after the last query's limit are never allowed.
        const int64_t last_key = d.causal ? i1 - 1 + d.causal_offset() : nk - 1;
        combine_init(d, a, b, h, i0, i1, m, l);
        for (int64_t k0 = 0; k0 < n_valid && valid[k0] <= last_key; k0 += tk) {
            const int64_t count = std::min(tk, n_valid - k0);
            cluster_attention(d, a, b, h, bf.positions + i0, i1 - i0, valid + k0, count, ts.att,
                              ts.o, ts.mx, ts.sum);
            combine_merge(d, a, b, h, bf.positions + i0, i1 - i0, ts.o, ts.mx, ts.sum, m, l);
        }
        combine_finish(d, a, b, h, i0, i1, valid, n_valid, m, l);
    });
}

}  // namespace smyrf::cpu
