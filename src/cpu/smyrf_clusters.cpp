// SMYRF's clusters: stages 1-3 (transform, hash, cluster) over a chunk of problems.
#include "cpu/smyrf_clusters.hpp"

#include "cpu/parallel.hpp"
#include "cpu/stages.hpp"

#include <algorithm>

namespace smyrf::cpu {

ClusterBuffers cluster_layout(Arena &arena, const Desc &d) {
    ClusterBuffers bf;
    const size_t nq = d.q_len, nk = d.k_len, R = d.n_hashes, T = d.threads;
    bf.chunk = cluster_chunk(d);
    const size_t ch = (size_t)bf.chunk;
    bf.valid = arena.take<int32_t>(ch * nk);
    bf.n_valid = arena.take<int64_t>(ch);
    bf.q_norm = arena.take<float>(ch * nq);
    bf.k_norm = arena.take<float>(ch * nk);
    bf.q_hash = arena.take<float>(ch * nq * R);
    bf.k_hash = arena.take<float>(ch * nk * R);
    bf.q_sorted = arena.take<int32_t>(ch * R * nq);
    bf.k_sorted = arena.take<int32_t>(ch * R * nk);
    bf.sort_scratch = arena.take<uint32_t>(T * sort_scratch_words(std::max(nq, nk)));
    return bf;
}

void cluster_problems(const Desc &d, const View &q, const View &k, const uint8_t *key_mask,
                      const float *directions, const ClusterBuffers &bf, int64_t first,
                      int64_t np) {
    const int64_t nq = d.q_len, nk = d.k_len, R = d.n_hashes, dim = d.qk_dim, T = d.threads;

    // transform + hash, per problem
    parallel_for(np, T, [&](int64_t t, int) {
        const int64_t b = (first + t) / d.heads, h = (first + t) % d.heads;
        const int64_t hk = d.kv_head_of(h);
        int32_t *valid = bf.valid + t * nk;
        const int64_t n_valid = valid_keys(key_mask, b, nk, valid);
        bf.n_valid[t] = n_valid;
        float *qn = bf.q_norm + t * nq, *kn = bf.k_norm + t * nk;
        const float m2 = transform_norms(q, b, h, nq, dim, nullptr, 0, qn) +
                         transform_norms(k, b, hk, nk, dim, valid, n_valid, kn);
        const float *dirs = directions + h * R * (dim + 2);
        hash_project(q, b, h, nq, dim, qn, m2, true, dirs, R, bf.q_hash + t * nq * R);
        hash_project(k, b, hk, nk, dim, kn, m2, false, dirs, R, bf.k_hash + t * nk * R);
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
}

}  // namespace smyrf::cpu
