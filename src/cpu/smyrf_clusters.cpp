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
    bf.block_max = arena.take<float>(ch * (size_t)cluster_blocks(d));
    bf.q_hash = arena.take<float>(ch * nq * R);
    bf.k_hash = arena.take<float>(ch * nk * R);
    bf.q_sorted = arena.take<int32_t>(ch * R * nq);
    bf.k_sorted = arena.take<int32_t>(ch * R * nk);
    bf.sort_scratch = arena.take<uint64_t>(T * sort_scratch_entries(std::max(nq, nk)));
    return bf;
}

void cluster_problems(const Desc &d, const View &q, const View &k, const uint8_t *key_mask,
                      const float *directions, const ClusterBuffers &bf, int64_t first,
                      int64_t np) {
    const int64_t nq = d.q_len, nk = d.k_len, R = d.n_hashes, dim = d.qk_dim, T = d.threads;

    // Row blocks of every problem in flight: its queries' blocks, then its keys'.
    const int64_t qb = (nq + kRowsPerTask - 1) / kRowsPerTask, blocks = cluster_blocks(d);
    struct Block {
        int64_t t, b, h, head;  // slot, batch, query head, head of this tensor
        bool is_query;
        int64_t i0, i1;
    };
    auto block = [&](int64_t task) {
        Block x;
        x.t = task / blocks;
        const int64_t at = task % blocks;
        x.b = (first + x.t) / d.heads, x.h = (first + x.t) % d.heads;
        x.is_query = at < qb;
        x.head = x.is_query ? x.h : d.kv_head_of(x.h);
        x.i0 = (x.is_query ? at : at - qb) * kRowsPerTask;
        x.i1 = std::min(x.is_query ? nq : nk, x.i0 + kRowsPerTask);
        return x;
    };
    auto norms_of = [&](const Block &x) {
        return x.is_query ? bf.q_norm + x.t * nq : bf.k_norm + x.t * nk;
    };

    auto hash_of = [&](const Block &x) {
        return x.is_query ? bf.q_hash + x.t * nq * R : bf.k_hash + x.t * nk * R;
    };
    auto dirs_of = [&](int64_t h) { return directions + h * R * (dim + 2); };  // query head h

    // transform and hash, one read of each row, with the largest norm of each block
    // (keys: of its valid keys); one more task per problem lists its valid keys
    parallel_for(np * (blocks + 1), T, [&](int64_t task, int) {
        const int64_t t = task / (blocks + 1), at = task % (blocks + 1);
        if (at == blocks) {
            bf.n_valid[t] = valid_keys(key_mask, (first + t) / d.heads, nk, bf.valid + t * nk);
            return;
        }
        const Block x = block(t * blocks + at);
        float *norms = norms_of(x);
        transform_project(x.is_query ? q : k, x.b, x.head, x.i0, x.i1, dim, dirs_of(x.h), R,
                          norms, hash_of(x));
        const uint8_t *mask = key_mask && !x.is_query ? key_mask + x.b * nk : nullptr;
        bf.block_max[t * blocks + at] = max_norm(norms, mask, x.i0, x.i1);
    });
    // Each problem's M^2 over its queries and valid keys, from the blocks' maxima.
    const auto m2_of = [&](int64_t t) {
        float mq = 0.0f, mk = 0.0f;
        for (int64_t at = 0; at < blocks; at++) {
            const float m = bf.block_max[t * blocks + at];
            float &to = at < qb ? mq : mk;
            if (m > to) to = m;
        }
        return mq + mk;
    };
    // cluster: one sort per (problem, round, queries or keys), each after the XBOX+
    // coordinate of its round's hashes
    parallel_for(np * R * 2, T, [&](int64_t task, int thread) {
        const int64_t t = task / (2 * R), r = (task / 2) % R;
        const float *dirs = dirs_of((first + t) % d.heads);
        uint64_t *scratch = bf.sort_scratch + thread * sort_scratch_entries(std::max(nq, nk));
        if (task % 2 == 0) {
            float *hash = bf.q_hash + t * nq * R;
            hash_extend(0, nq, dim, bf.q_norm + t * nq, m2_of(t), true, dirs, R, r, hash);
            sort_by_hash(hash + r, R, nullptr, nq, bf.q_sorted + (t * R + r) * nq, scratch);
        } else {
            float *hash = bf.k_hash + t * nk * R;
            hash_extend(0, nk, dim, bf.k_norm + t * nk, m2_of(t), false, dirs, R, r, hash);
            sort_by_hash(hash + r, R, bf.valid + t * nk, bf.n_valid[t],
                         bf.k_sorted + (t * R + r) * nk, scratch);
        }
    });
}

}  // namespace smyrf::cpu
