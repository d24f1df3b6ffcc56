#include "cluster_pass.hpp"

#include "cpu/smyrf_clusters.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <random>

namespace smyrf_tools {
namespace {

smyrf::Desc problem(int64_t n, int64_t dim, int64_t threads) {
    smyrf::RawParams raw;
    raw.value[SMYRF_PARAM_Q_LEN] = n;
    raw.value[SMYRF_PARAM_K_LEN] = n;
    raw.value[SMYRF_PARAM_QK_DIM] = dim;
    raw.value[SMYRF_PARAM_V_DIM] = dim;
    raw.value[SMYRF_PARAM_N_HASHES] = 2;
    raw.value[SMYRF_PARAM_Q_CLUSTER_SIZE] = 64;
    raw.value[SMYRF_PARAM_THREADS] = threads;
    return smyrf::resolve(raw);
}

}  // namespace

ClusterPass::ClusterPass(int64_t n, int64_t dim, int64_t threads)
    : d(problem(n, dim, threads)), q(n * dim), k(n * dim), v(n * dim), out(n * dim),
      random_(2 * d.n_hashes * n), consecutive_(2 * d.n_hashes * n), state_(n) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    for (auto *x : {&q, &k, &v})
        for (float &e : *x) e = normal(rng);
    for (int64_t list = 0; list < 2 * d.n_hashes; list++) {  // each round's q and k orders
        const auto at = [&](std::vector<int32_t> &o) { return o.begin() + list * n; };
        std::iota(at(consecutive_), at(consecutive_) + n, 0);
        std::iota(at(random_), at(random_) + n, 0);
        std::shuffle(at(random_), at(random_) + n, rng);
    }
    smyrf::cpu::Arena sizing;
    for (int64_t t = 0; t < threads; t++) smyrf::cpu::attention_scratch(sizing, d);
    scratch_bytes_.resize(sizing.used() + 64);
    smyrf::cpu::Arena arena((void *)(((uintptr_t)scratch_bytes_.data() + 63) & ~(uintptr_t)63));
    for (int64_t t = 0; t < threads; t++) scratch_.push_back(smyrf::cpu::attention_scratch(arena, d));
}

void ClusterPass::run(bool consecutive) {
    using namespace smyrf::cpu;
    const int64_t n = d.q_len, R = d.n_hashes;
    int32_t *order = consecutive ? consecutive_.data() : random_.data();
    int64_t n_valid = n;
    ClusterBuffers cb{};  // one problem: its sorted lists, every key valid
    cb.chunk = 1;
    cb.n_valid = &n_valid;
    cb.q_sorted = order;
    cb.k_sorted = order + R * n;
    Args a{};
    a.q = {q.data(), d.q}, a.k = {k.data(), d.k}, a.v = {v.data(), d.v}, a.out = {out.data(), d.out};
    combine_init(0, n, state_.data());
    const auto ahead = [&](const ClusterAt &c) {
        return ahead_of(d, a, 0, 0, c.rows.q, c.rows.nq, c.rows.k, c.rows.nk);
    };
    for (int64_t r = 0; r < R; r++)
        walk_clusters(d, cb, 1, r, ahead, [&](const ClusterAt &c, Ahead *later, int thread) {
            attend_tiled(d, a, 0, 0, c.rows.q, c.rows.nq, c.rows.k, c.rows.nk, scratch_[thread],
                         state_.data(), r == R - 1, later);
        });
}

double ClusterPass::flops() const {
    return 4.0 * d.n_hashes * d.q_len * (double)d.q_cluster_size * d.qk_dim;
}

double median(std::vector<double> x) {
    std::sort(x.begin(), x.end());
    const size_t h = x.size() / 2;
    return x.size() % 2 ? x[h] : (x[h - 1] + x[h]) / 2;
}

double seconds_of(const std::function<void()> &call) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int64_t count_arg(int argc, char **argv, int at, int64_t fallback) {
    if (argc <= at) return fallback;
    char *end = nullptr;
    errno = 0;
    const long v = std::strtol(argv[at], &end, 10);
    const bool whole = std::isdigit((unsigned char)argv[at][0]) && *end == '\0' && errno == 0;
    return whole && v <= 4096 ? v : 0;
}

}  // namespace smyrf_tools
