// The clustering half of SMYRF mode (transform, hash, sort), shared by the forward pass
// and the backward pass, which recomputes the forward's clusters from the seed.
#pragma once

#include "cpu/cpu.hpp"

namespace smyrf::cpu {

// Per-problem buffers for `chunk` problems in flight plus per-thread sort scratch.
struct ClusterBuffers {
    int64_t chunk;
    int32_t *valid;                // [chunk][Nk]
    int64_t *n_valid;              // [chunk]
    float *q_norm, *k_norm;        // [chunk][Nq], [chunk][Nk]
    float *m2;                     // [chunk] the XBOX+ M^2 of each problem
    float *q_hash, *k_hash;        // [chunk][Nq][R], [chunk][Nk][R]
    int32_t *q_sorted, *k_sorted;  // [chunk][R][Nq], [chunk][R][Nk]
    uint32_t *sort_scratch;        // [threads][sort_scratch_words(max(Nq, Nk))]

    // Problem slot t of the chunk: its sorted queries and valid keys in round r.
    const int32_t *queries(const Desc &d, int64_t t, int64_t r) const {
        return q_sorted + (t * d.n_hashes + r) * d.q_len;
    }
    const int32_t *keys(const Desc &d, int64_t t, int64_t r) const {
        return k_sorted + (t * d.n_hashes + r) * d.k_len;
    }
};

// Rows per task of the row-parallel steps (transform, hash, combine's ends), so that
// two threads share even a single long problem.
constexpr int64_t kRowsPerTask = 2048;

// The problems in flight at once: one per thread.
inline int64_t cluster_chunk(const Desc &d) {
    return d.batch * d.heads < d.threads ? d.batch * d.heads : d.threads;
}

ClusterBuffers cluster_layout(Arena &arena, const Desc &d);

// Transform, hash and sort (every round) the problems first .. first + np - 1 (problem
// p = b * heads + h) into slots 0 .. np - 1, with the plan's directions.
void cluster_problems(const Desc &d, const View &q, const View &k, const uint8_t *key_mask,
                      const float *directions, const ClusterBuffers &bf, int64_t first,
                      int64_t np);

}  // namespace smyrf::cpu
