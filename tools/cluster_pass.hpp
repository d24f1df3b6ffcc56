// SMYRF's in-cluster attention alone (stages 4 and 5: no transform, hash or sort), walked
// as the library's SMYRF pass walks it (cpu/smyrf_clusters.hpp, walk_clusters: each
// cluster's rows asked for while the cluster before it computes), at N = n, d = dim,
// 2 rounds of clusters of 64 queries and 64 keys. The clusters hold either rows in a
// random order, as hashing leaves them, or consecutive rows, the best case a hashing
// could hand the kernel. For the measuring aids smyrf_attention_peak and smyrf_ceiling,
// which are built from the library's internals.
#pragma once

#include "core/params.hpp"
#include "cpu/stages.hpp"
#include "tensor.hpp"

#include <cstdint>
#include <functional>
#include <vector>

namespace smyrf_tools {

struct ClusterPass {
    // q, k, v from a normal distribution (seeded); 64-byte aligned, as PyTorch's tensors.
    ClusterPass(int64_t n, int64_t dim, int64_t threads);
    // Both rounds of clusters into out, each query's state merged as the library does.
    void run(bool consecutive);
    // The multiply-adds of the q.k and p.v products, counted as 2 FLOPs each.
    double flops() const;

    smyrf::Desc d;
    smyrf_cli::Tensor q, k, v, out;

private:
    std::vector<int32_t> random_, consecutive_;  // [2 (q, k)][R][n] sorted positions
    std::vector<smyrf::cpu::RowState> state_;
    std::vector<char> scratch_bytes_;
    std::vector<smyrf::cpu::AttentionScratch> scratch_;  // per thread
};

// The median of x; the mean of the middle two for an even count.
double median(std::vector<double> x);
// Wall seconds of one call.
double seconds_of(const std::function<void()> &call);
// argv[at] as a whole positive number up to 4096, the fallback where it is missing, or
// 0 (refused) for anything else.
int64_t count_arg(int argc, char **argv, int at, int64_t fallback);

}  // namespace smyrf_tools
