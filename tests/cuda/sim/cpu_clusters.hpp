// The CPU backend's SMYRF clusters in the CUDA layout, for the simulator suites that run a
// CUDA kernel on given clusters (the simulator has no CUB sort, and the clusters are
// constants of a forward and its backward anyway).
#pragma once

#include "core/directions.hpp"
#include "core/params.hpp"
#include "cpu/smyrf_clusters.hpp"

#include <cstring>
#include <vector>

// The sorted positions of every (problem, round) in the CUDA layout ([B*H*R][Nq] and
// [B*H*R][Nk], valid keys first), from the CPU backend's clustering of fp32 q and k.
inline void cpu_clusters(const smyrf::Desc &d, std::vector<float> &q, std::vector<float> &k,
                         const std::vector<uint8_t> &mask, std::vector<int32_t> &q_sorted,
                         std::vector<int32_t> &k_sorted) {
    using namespace smyrf::cpu;
    Arena sizing;
    cluster_layout(sizing, d);
    std::vector<double> ws(sizing.used() / sizeof(double) + 8);
    Arena arena(ws.data());
    const ClusterBuffers cb = cluster_layout(arena, d);
    const std::vector<float> dirs = smyrf::hash_directions(d);
    const int64_t R = d.n_hashes, problems = d.batch * d.heads;
    q_sorted.assign((size_t)(problems * R * d.q_len), 0);
    k_sorted.assign((size_t)(problems * R * d.k_len), 0);
    for (int64_t prob = 0; prob < problems; prob++) {
        cluster_problems(d, View{q.data(), d.q}, View{k.data(), d.k},
                         mask.empty() ? nullptr : mask.data(), dirs.data(), cb, prob, 1);
        for (int64_t r = 0; r < R; r++) {
            std::memcpy(&q_sorted[(size_t)((prob * R + r) * d.q_len)], cb.queries(d, 0, r),
                        (size_t)d.q_len * sizeof(int32_t));
            std::memcpy(&k_sorted[(size_t)((prob * R + r) * d.k_len)], cb.keys(d, 0, r),
                        (size_t)cb.n_valid[0] * sizeof(int32_t));
        }
    }
}

