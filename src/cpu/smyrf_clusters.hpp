// The clustering half of SMYRF mode (transform, hash, sort), shared by the forward pass
// and the backward pass, which recomputes the forward's clusters from the seed.
#pragma once

#include "cpu/cpu.hpp"
#include "cpu/stages.hpp"

#include <algorithm>

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
    uint64_t *sort_scratch;        // [threads][sort_scratch_entries(max(Nq, Nk))]

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

// Cluster c of problem slot t in round r: its queries and its valid keys (the balanced
// cut of stages.hpp over each sorted list).
struct ClusterRows {
    const int32_t *q, *k;
    int64_t nq, nk;
};
inline ClusterRows cluster_rows(const Desc &d, const ClusterBuffers &cb, int64_t t, int64_t r,
                                int64_t c) {
    const int64_t C = d.n_clusters(), nq = d.q_len, nv = cb.n_valid[t];
    const int64_t q0 = cluster_begin(nq, C, c), k0 = cluster_begin(nv, C, c);
    return {cb.queries(d, t, r) + q0, cb.keys(d, t, r) + k0, cluster_begin(nq, C, c + 1) - q0,
            cluster_begin(nv, C, c + 1) - k0};
}

// The attention passes (forward and backward) take a run of consecutive clusters per
// task and load each cluster's rows while the one before it computes: the rows sit at
// random positions, and this overlaps their cache misses with the arithmetic. Runs of 4
// keep a round's last task, which the other threads wait for, short.
constexpr int64_t kClustersPerTask = 4;
inline int64_t cluster_runs(const Desc &d) {
    return (d.n_clusters() + kClustersPerTask - 1) / kClustersPerTask;
}
// Over the clusters of run `run` of slot t, round r: first(rows) for the first one, then
// body(rows, next) for each, next pointing to the rows of the cluster after it in the
// run (nullptr for the last), for body to load while it computes.
template <class First, class Body>
void for_cluster_run(const Desc &d, const ClusterBuffers &cb, int64_t t, int64_t r, int64_t run,
                     const First &first, const Body &body) {
    const int64_t c0 = run * kClustersPerTask;
    const int64_t c1 = std::min(d.n_clusters(), c0 + kClustersPerTask);
    ClusterRows rows = cluster_rows(d, cb, t, r, c0);
    first(rows);
    for (int64_t c = c0; c < c1; c++) {
        const ClusterRows next = c + 1 < c1 ? cluster_rows(d, cb, t, r, c + 1) : ClusterRows{};
        body(rows, c + 1 < c1 ? &next : nullptr);
        rows = next;
    }
}

// Transform, hash and sort (every round) the problems first .. first + np - 1 (problem
// p = b * heads + h) into slots 0 .. np - 1, with the plan's directions.
void cluster_problems(const Desc &d, const View &q, const View &k, const uint8_t *key_mask,
                      const float *directions, const ClusterBuffers &bf, int64_t first,
                      int64_t np);

}  // namespace smyrf::cpu
