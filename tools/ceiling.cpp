// How far SMYRF can get from its own DENSE mode on this machine, measured, not assumed.
// At N = 16384, d = 64 and 2 rounds of clusters of 64, SMYRF does 1/128 of DENSE's
// products, so 128x is the ceiling of DENSE / SMYRF; what SMYRF adds (hashing, sorting,
// rows at random positions, a softmax, transpose and merge per 64 x 64 cluster instead of
// per 64 x 256 tile) comes off it. This alternates, one of each per pair on the same
// threads and inputs: the whole SMYRF call and the DENSE call (public API), SMYRF's
// clusters alone on rows in a random order as hashing leaves them, and the same clusters
// on consecutive rows, the best case (cluster_pass.hpp). DENSE / the clusters on
// consecutive rows bounds DENSE / SMYRF from above for any hashing whatever its cost.
// Prints one JSON line: medians of the times and of the per-pair ratios.
// A measuring aid built from the library's internals: not installed.
#include "cluster_pass.hpp"

#include <smyrf/smyrf.h>

#include <cstdio>
#include <vector>

namespace {

smyrf_plan *plan_for(const smyrf::Desc &d, int mode) {
    smyrf_config *cfg = nullptr;
    smyrf_plan *plan = nullptr;
    const bool made =
        smyrf_config_create(&cfg) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, d.q_len) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_K_LEN, d.k_len) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_QK_DIM, d.qk_dim) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_V_DIM, d.v_dim) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_N_HASHES, d.n_hashes) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, d.q_cluster_size) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_THREADS, d.threads) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU) == SMYRF_OK &&
        smyrf_config_set(cfg, SMYRF_PARAM_MODE, mode) == SMYRF_OK &&
        smyrf_plan_create(&plan, cfg) == SMYRF_OK;
    if (!made) std::fprintf(stderr, "smyrf_ceiling: %s\n", smyrf_last_error_message());
    smyrf_config_destroy(cfg);
    return made ? plan : nullptr;
}

}  // namespace

int main(int argc, char **argv) {
    const int64_t threads = smyrf_tools::count_arg(argc, argv, 1, 2);
    const int pairs = (int)smyrf_tools::count_arg(argc, argv, 2, 15);
    if (argc > 3 || threads < 1 || pairs < 1) {
        std::fprintf(stderr, "usage: smyrf_ceiling [threads >= 1] [pairs >= 1]\n");
        return 2;
    }
    smyrf_tools::ClusterPass pass(16384, 64, threads);
    smyrf_plan *smyrf = plan_for(pass.d, SMYRF_MODE_SMYRF), *dense = plan_for(pass.d, SMYRF_MODE_DENSE);
    bool ok = smyrf && dense;
    // Each plan its own workspace, allocated once, as a serving loop would.
    std::vector<smyrf_cli::Tensor> workspace;
    for (smyrf_plan *p : {smyrf, dense})
        workspace.emplace_back(p ? (smyrf_plan_workspace_size(p) + 3) / 4 : 0);
    const auto call = [&](smyrf_plan *p, smyrf_cli::Tensor &ws) {
        ok = ok && smyrf_execute(p, pass.q.data(), pass.k.data(), pass.v.data(), nullptr,
                                 pass.out.data(), nullptr, ws.data(), ws.size() * 4,
                                 nullptr) == SMYRF_OK;
    };
    enum { kSmyrf, kDense, kRandom, kConsecutive, kParts };
    const char *names[kParts] = {"smyrf_ms", "dense_ms", "clusters_ms", "clusters_consecutive_ms"};
    std::vector<double> ms[kParts], dense_over[kParts];
    for (int pair = 0; pair < pairs && ok; pair++) {
        // Each part once untimed first, so that it finds its rows as warm as in a loop.
        const std::function<void()> part[kParts] = {
            [&] { call(smyrf, workspace[0]); }, [&] { call(dense, workspace[1]); },
            [&] { pass.run(false); }, [&] { pass.run(true); }};
        double s[kParts];
        for (int i = 0; i < kParts; i++) {
            if (i != kDense) part[i]();
            s[i] = smyrf_tools::seconds_of(part[i]);
            ms[i].push_back(s[i] * 1e3);
        }
        for (int i = 0; i < kParts; i++) dense_over[i].push_back(s[kDense] / s[i]);
    }
    if (!ok) {
        std::fprintf(stderr, "smyrf_ceiling: %s\n", smyrf_last_error_message());
        return 1;
    }
    std::printf("{\"threads\": %lld, \"pairs\": %d", (long long)threads, pairs);
    for (int i = 0; i < kParts; i++) std::printf(", \"%s\": %.3f", names[i], smyrf_tools::median(ms[i]));
    std::printf(", \"dense_over_smyrf\": %.1f, \"dense_over_clusters\": %.1f, "
                "\"dense_over_clusters_consecutive\": %.1f}\n",
                smyrf_tools::median(dense_over[kSmyrf]), smyrf_tools::median(dense_over[kRandom]),
                smyrf_tools::median(dense_over[kConsecutive]));
    smyrf_plan_destroy(smyrf);
    smyrf_plan_destroy(dense);
    return 0;
}
