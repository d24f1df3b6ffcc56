// SMYRF mode: transform, hash, cluster (cpu/smyrf_clusters.cpp), then attention and
// combine, over chunks of problems so that memory stays O(N) per problem in flight.
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"
#include "cpu/smyrf_clusters.hpp"
#include "cpu/stages.hpp"

#include <algorithm>

namespace smyrf::cpu {
namespace {

// The clusters of the problems in flight, the combine state and per-thread scratch.
struct Buffers {
    ClusterBuffers clusters;
    RowState *state;               // [chunk][Nq] running combine state
    AttentionScratch *attention;   // [threads]
};

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const size_t nq = d.q_len, T = d.threads;
    bf.clusters = cluster_layout(arena, d);
    const size_t ch = (size_t)bf.clusters.chunk;
    bf.state = arena.take<RowState>(ch * nq);
    bf.attention = per_thread<AttentionScratch>(arena, T,
        [&](Arena &a) { return attention_scratch(a, d); });
    return bf;
}

}  // namespace

size_t smyrf_workspace(const Desc &d) { return layout_bytes(layout, d); }

void smyrf_run(const Desc &d, const Args &a, void *workspace, const float *directions) {
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const ClusterBuffers &cb = bf.clusters;
    const int64_t nq = d.q_len, R = d.n_hashes;
    const int64_t problems = d.batch * d.heads, T = d.threads;

    for (int64_t first = 0; first < problems; first += cb.chunk) {
        const int64_t np = std::min(cb.chunk, problems - first);
        auto problem = [&](int64_t t, int64_t &b, int64_t &h) {
            b = (first + t) / d.heads;
            h = (first + t) % d.heads;
        };

        // transform, hash, cluster; an empty combine state per problem
        cluster_problems(d, a.q, a.k, a.key_mask, directions, cb, first, np);
        for (int64_t t = 0; t < np; t++)
            combine_init(0, nq, bf.state + t * nq);

        // attention + combine, round after round (a query sits in one cluster per round),
        // each cluster's q and k rows (ahead) loaded during the sums of the cluster before
        // it, its v and out rows during its own products (stages.hpp, ahead_of)
        const auto ahead = [&](const ClusterAt &c) {
            int64_t b, h;
            problem(c.t, b, h);
            return ahead_of(d, a, b, h, c.rows.q, c.rows.nq, c.rows.k, c.rows.nk);
        };
        for (int64_t r = 0; r < R; r++) {
            walk_clusters(d, cb, np, r, ahead,
                [&](const ClusterAt &c, Ahead *later, int thread) {  // loading `later`
                    int64_t b, h;
                    problem(c.t, b, h);
                    const int64_t t = c.t;
                    attend_tiled(d, a, b, h, c.rows.q, c.rows.nq, c.rows.k, c.rows.nk,
                                 bf.attention[thread], bf.state + t * nq, r == R - 1, later);
                });
        }

        const int64_t qb = (nq + kRowsPerTask - 1) / kRowsPerTask;  // query blocks
        parallel_for(np * qb, T, [&](int64_t task, int) {
            const int64_t t = task / qb, i0 = (task % qb) * kRowsPerTask;
            int64_t b, h;
            problem(t, b, h);
            combine_finish(d, a, b, h, i0, std::min(nq, i0 + kRowsPerTask),
                           cb.valid + t * d.k_len, cb.n_valid[t], bf.state + t * nq);
        });
    }
}

}  // namespace smyrf::cpu
