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
    int64_t chunk, max_cq, max_ck;
    int32_t *valid;          // [chunk][Nk]
    int64_t *n_valid;        // [chunk]
    float *q_norm, *k_norm;  // [chunk][Nq], [chunk][Nk]
    float *q_hash, *k_hash;  // [chunk][Nq][R], [chunk][Nk][R]
    int32_t *q_sorted, *k_sorted;  // [chunk][R][Nq], [chunk][R][Nk]
    float *m, *l;            // [chunk][Nq] running combine state
    uint32_t *sort_scratch;  // [threads][3 max(Nq, Nk)]
    float *att_base;         // per thread: attention scratch + o + mx + sum
    size_t att_stride;       // floats per thread
};

struct ThreadScratch {
    AttentionScratch att;
    float *o, *mx, *sum;
};

ThreadScratch thread_scratch(const Desc &d, const Buffers &bf, int thread) {
    Arena arena(bf.att_base + (size_t)thread * bf.att_stride);
    ThreadScratch t;
    t.att = attention_scratch(arena, bf.max_cq, bf.max_ck, d);
    t.o = arena.take<float>((size_t)(bf.max_cq * d.v_dim));
    t.mx = arena.take<float>((size_t)bf.max_cq);
    t.sum = arena.take<float>((size_t)bf.max_cq);
    return t;
}

size_t thread_scratch_floats(const Desc &d, int64_t max_cq, int64_t max_ck) {
    Arena arena;
    attention_scratch(arena, max_cq, max_ck, d);
    arena.take<float>((size_t)(max_cq * d.v_dim));
    arena.take<float>((size_t)max_cq);
    arena.take<float>((size_t)max_cq);
    return arena.used() / sizeof(float);
}

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const int64_t nq = d.q_len, nk = d.k_len, R = d.n_hashes, C = d.n_clusters();
    bf.chunk = std::min<int64_t>(d.batch * d.heads, d.threads);
    bf.max_cq = (nq + C - 1) / C;
    bf.max_ck = (nk + C - 1) / C;
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
    bf.sort_scratch = arena.take<uint32_t>((size_t)(d.threads * sort_scratch_words(std::max(nq, nk))));
    bf.att_stride = thread_scratch_floats(d, bf.max_cq, bf.max_ck);
    bf.att_base = arena.take<float>((size_t)d.threads * bf.att_stride);
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
                const ThreadScratch ts = thread_scratch(d, bf, thread);
                cluster_attention(d, a, b, h, qs + q0, q1 - q0, ks + k0, k1 - k0, ts.att, ts.o,
                                  ts.mx, ts.sum);
                combine_merge(d, a, b, h, qs + q0, q1 - q0, ts.o, ts.mx, ts.sum, bf.m + t * nq,
                              bf.l + t * nq);
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
