// SMYRF mode: transform, hash, cluster, attention, combine, over chunks of problems so
// that memory stays O(N) per problem in flight.
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"
#include "cpu/stages.hpp"

#include <algorithm>

namespace smyrf::cpu {
namespace {

// Buffers for `chunk` problems in flight plus per-thread scratch.
struct Buffers {
    int64_t chunk;
    int32_t *valid;                // [chunk][Nk]
    int64_t *n_valid;              // [chunk]
    float *q_norm, *k_norm;        // [chunk][Nq], [chunk][Nk]
    float *q_hash, *k_hash;        // [chunk][Nq][R], [chunk][Nk][R]
    int32_t *q_sorted, *k_sorted;  // [chunk][R][Nq], [chunk][R][Nk]
    float *m, *l;                  // [chunk][Nq] running combine state
    uint32_t *sort_scratch;        // [threads][sort_scratch_words(max(Nq, Nk))]
    AttentionScratch *attention;   // [threads]
};

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const size_t nq = d.q_len, nk = d.k_len, R = d.n_hashes, T = d.threads;
    bf.chunk = std::min<int64_t>(d.batch * d.heads, d.threads);
    const size_t ch = (size_t)bf.chunk;
    bf.valid = arena.take<int32_t>(ch * nk);
    bf.n_valid = arena.take<int64_t>(ch);
    bf.q_norm = arena.take<float>(ch * nq);
    bf.k_norm = arena.take<float>(ch * nk);
    bf.q_hash = arena.take<float>(ch * nq * R);
    bf.k_hash = arena.take<float>(ch * nk * R);
    bf.q_sorted = arena.take<int32_t>(ch * R * nq);
    bf.k_sorted = arena.take<int32_t>(ch * R * nk);
    bf.m = arena.take<float>(ch * nq);
    bf.l = arena.take<float>(ch * nq);
    bf.sort_scratch = arena.take<uint32_t>(T * sort_scratch_words(std::max(nq, nk)));
    bf.attention = arena.take<AttentionScratch>(T);
    for (size_t t = 0; t < T; t++) {
        const AttentionScratch s = attention_scratch(arena, d);
        if (bf.attention) bf.attention[t] = s;
    }
    return bf;
}

}  // namespace

size_t smyrf_workspace(const Desc &d) {
    Arena arena;
    layout(arena, d);
    return arena.used();
}

void smyrf_run(const Desc &d, const Args &a, void *workspace, const float *directions) {
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const int64_t nq = d.q_len, nk = d.k_len, R = d.n_hashes, C = d.n_clusters();
    const int64_t dim = d.qk_dim, problems = d.batch * d.heads, T = d.threads;

    for (int64_t first = 0; first < problems; first += bf.chunk) {
        const int64_t np = std::min(bf.chunk, problems - first);
        auto problem = [&](int64_t t, int64_t &b, int64_t &h) {
            b = (first + t) / d.heads;
            h = (first + t) % d.heads;
        };

        // transform + hash, and an empty combine state, per problem
        parallel_for(np, T, [&](int64_t t, int) {
            int64_t b, h;
            problem(t, b, h);
            const int64_t hk = d.kv_head_of(h);
            int32_t *valid = bf.valid + t * nk;
            const int64_t n_valid = valid_keys(a.key_mask, b, nk, valid);
            bf.n_valid[t] = n_valid;
            float *qn = bf.q_norm + t * nq, *kn = bf.k_norm + t * nk;
            const float m2 = transform_norms(a.q, b, h, nq, dim, nullptr, 0, qn) +
                             transform_norms(a.k, b, hk, nk, dim, valid, n_valid, kn);
            const float *dirs = directions + h * R * (dim + 2);
            hash_project(a.q, b, h, nq, dim, qn, m2, true, dirs, R, bf.q_hash + t * nq * R);
            hash_project(a.k, b, hk, nk, dim, kn, m2, false, dirs, R, bf.k_hash + t * nk * R);
            combine_init(d, a, b, h, 0, nq, bf.m + t * nq, bf.l + t * nq);
        });

        // cluster: one sort per (problem, round, queries or keys)
        parallel_for(np * R * 2, T, [&](int64_t task, int thread) {
            const int64_t t = task / (2 * R), r = (task / 2) % R;
            uint32_t *scratch = bf.sort_scratch + thread * sort_scratch_words(std::max(nq, nk));
            if (task % 2 == 0)
                sort_by_hash(bf.q_hash + t * nq * R + r, R, nullptr, nq,
                             bf.q_sorted + (t * R + r) * nq, scratch);
            else
                sort_by_hash(bf.k_hash + t * nk * R + r, R, bf.valid + t * nk, bf.n_valid[t],
                             bf.k_sorted + (t * R + r) * nk, scratch);
        });

        // attention + combine, round after round (a query sits in one cluster per round)
        for (int64_t r = 0; r < R; r++) {
            parallel_for(np * C, T, [&](int64_t task, int thread) {
                const int64_t t = task / C, c = task % C;
                int64_t b, h;
                problem(t, b, h);
                const int32_t *qs = bf.q_sorted + (t * R + r) * nq;
                const int32_t *ks = bf.k_sorted + (t * R + r) * nk;
                const int64_t nv = bf.n_valid[t];
                const int64_t q0 = cluster_begin(nq, C, c), q1 = cluster_begin(nq, C, c + 1);
                const int64_t k0 = cluster_begin(nv, C, c), k1 = cluster_begin(nv, C, c + 1);
                combine_prefetch(d, a, b, h, qs + q0, q1 - q0);
                attend_tiled(d, a, b, h, qs + q0, q1 - q0, ks + k0, k1 - k0,
                             bf.attention[thread], bf.m + t * nq, bf.l + t * nq);
            });
        }

        parallel_for(np, T, [&](int64_t t, int) {
            int64_t b, h;
            problem(t, b, h);
            combine_finish(d, a, b, h, 0, nq, bf.valid + t * nk, bf.n_valid[t], bf.m + t * nq,
                           bf.l + t * nq);
        });
    }
}

}  // namespace smyrf::cpu
