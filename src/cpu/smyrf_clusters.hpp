// The clustering half of SMYRF mode (transform, hash, sort), shared by the forward pass
// and the backward pass, which recomputes the forward's clusters from the seed.
#pragma once

#include "cpu/cpu.hpp"
#include "cpu/parallel.hpp"
#include "cpu/stages.hpp"

#include <algorithm>

namespace smyrf::cpu {

// Per-problem buffers for `chunk` problems in flight plus per-thread sort scratch.
struct ClusterBuffers {
    int64_t chunk;
    int32_t *valid;                // [chunk][Nk]
    int64_t *n_valid;              // [chunk]
    float *q_norm, *k_norm;        // [chunk][Nq], [chunk][Nk]
    float *block_max;              // [chunk][cluster_blocks] the largest norm of each row block
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

// Row blocks of one problem: its queries' blocks, then its keys'.
inline int64_t cluster_blocks(const Desc &d) {
    return (d.q_len + kRowsPerTask - 1) / kRowsPerTask + (d.k_len + kRowsPerTask - 1) / kRowsPerTask;
}
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

// The attention passes (forward and backward) walk the clusters of one round, those of
// every problem in flight, and load each cluster's rows while the one before it
// computes: the rows sit at random positions, and this overlaps their cache misses with
// the arithmetic. The threads walk their shares of the clusters (ShareClaims,
// cpu/parallel.hpp), each claiming its next cluster before it computes the current one,
// so only its first cluster is loaded in one burst. Which thread computes a cluster
// changes no result.

// Cluster c of problem slot t.
struct ClusterAt {
    int64_t t = 0;
    ClusterRows rows{};
};

// Over every cluster of round r of the np problems in flight, on d.threads threads:
// body(cluster, later, thread), where later holds the rows of the cluster the thread
// computes next (ahead(cluster) gives a cluster's rows; nullptr after the thread's last),
// for body to load while it computes. A thread's first cluster is loaded at once.
template <class AheadOf, class Body>
void walk_clusters(const Desc &d, const ClusterBuffers &cb, int64_t np, int64_t r,
                   const AheadOf &ahead, const Body &body) {
    const int64_t C = d.n_clusters(), n = np * C;
    const int64_t T = ShareClaims::shares_for(n, d.threads);
    ShareClaims claims(n, T);
    const auto at = [&](int64_t u) {
        return ClusterAt{u / C, cluster_rows(d, cb, u / C, r, u % C)};
    };
    parallel_for(T, T, [&](int64_t share, int thread) {
        int64_t u = claims.claim(share);
        if (u < 0) return;
        ClusterAt now = at(u);
        Ahead all = ahead(now);
        load_ahead(all, all.rows);
        for (;;) {
            u = claims.claim(share);
            const ClusterAt next = u >= 0 ? at(u) : ClusterAt{};
            Ahead later = u >= 0 ? ahead(next) : Ahead{};
            body(now, u >= 0 ? &later : nullptr, thread);
            if (u < 0) return;
            now = next;
        }
    });
}

// Transform, hash and sort (every round) the problems first .. first + np - 1 (problem
// p = b * heads + h) into slots 0 .. np - 1, with the plan's directions.
void cluster_problems(const Desc &d, const View &q, const View &k, const uint8_t *key_mask,
                      const float *directions, const ClusterBuffers &bf, int64_t first,
                      int64_t np);

}  // namespace smyrf::cpu
