// The in-cluster attention alone (stage 4 + its merge) against the machine's GEMM peak,
// side by side in one run: SMYRF's clusters at N = 16384 (d = 64, 2 rounds of clusters
// of 64 queries and 64 keys in a random order, as hashing leaves them; 64-byte aligned
// tensors) through the library's tile kernel, and OpenBLAS sgemm at 2048^3, on the same
// threads. The machines this runs on switch between fast and slow states, so the two
// alternate, one of each per pair, and the share of the peak is the median of the
// per-pair ratios: both sides of a ratio are timed a moment apart.
// Prints one JSON line. A measuring aid built from the library's internals: not installed.
#include "core/params.hpp"
#include "cpu/parallel.hpp"
#include "cpu/stages.hpp"
#include "tensor.hpp"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

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

// The median of `x` (sorted in place); the mean of the middle two for an even count.
double median(std::vector<double> &x) {
    std::sort(x.begin(), x.end());
    const size_t h = x.size() / 2;
    return x.size() % 2 ? x[h] : (x[h - 1] + x[h]) / 2;
}

double seconds_of(const std::function<void()> &call) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    return seconds_since(t0);
}

// argv[at] as a whole positive number up to 4096, the fallback where it is missing, or
// 0 (refused) for anything else.
int64_t count_arg(int argc, char **argv, int at, int64_t fallback) {
    if (argc <= at) return fallback;
    char *end = nullptr;
    errno = 0;
    const long v = std::strtol(argv[at], &end, 10);
    const bool whole = std::isdigit((unsigned char)argv[at][0]) && *end == '\0' && errno == 0;
    return whole && v <= 4096 ? v : 0;
}

}  // namespace

int main(int argc, char **argv) {
    const int64_t threads = count_arg(argc, argv, 1, 2);
    const int pairs = (int)count_arg(argc, argv, 2, 20);
    if (argc > 3 || threads < 1 || pairs < 1) {
        std::fprintf(stderr, "usage: smyrf_attention_peak [threads >= 1] [pairs >= 1]\n");
        return 2;
    }
    const int64_t n = 16384, dim = 64;
    const smyrf::Desc d = problem(n, dim, threads);
    const int64_t R = d.n_hashes, C = d.n_clusters();
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    smyrf_cli::Tensor q(n * dim), k(n * dim), v(n * dim), out(n * dim);
    std::vector<smyrf::cpu::RowState> state(n);
    for (auto *x : {&q, &k, &v})
        for (float &e : *x) e = normal(rng);
    std::vector<std::vector<int32_t>> order(2 * R, std::vector<int32_t>(n));
    for (auto &o : order) {  // each round's query and key orders
        std::iota(o.begin(), o.end(), 0);
        std::shuffle(o.begin(), o.end(), rng);
    }
    smyrf::cpu::Args a{};
    a.q = {q.data(), d.q}, a.k = {k.data(), d.k}, a.v = {v.data(), d.v}, a.out = {out.data(), d.out};
    smyrf::cpu::Arena sizing;
    for (int64_t t = 0; t < threads; t++) smyrf::cpu::attention_scratch(sizing, d);
    std::vector<char> ws(sizing.used() + 64);
    smyrf::cpu::Arena arena((void *)(((uintptr_t)ws.data() + 63) & ~(uintptr_t)63));
    std::vector<smyrf::cpu::AttentionScratch> scratch;
    for (int64_t t = 0; t < threads; t++) scratch.push_back(smyrf::cpu::attention_scratch(arena, d));

    auto attention = [&] {
        smyrf::cpu::combine_init(0, n, state.data());
        for (int64_t r = 0; r < R; r++)
            smyrf::cpu::parallel_for(C, threads, [&](int64_t c, int thread) {
                const int64_t q0 = smyrf::cpu::cluster_begin(n, C, c);
                const int64_t q1 = smyrf::cpu::cluster_begin(n, C, c + 1);
                smyrf::cpu::Ahead own = smyrf::cpu::ahead_of(
                    d, a, 0, 0, order[2 * r].data() + q0, q1 - q0, order[2 * r + 1].data() + q0,
                    q1 - q0);
                smyrf::cpu::load_ahead(own, own.rows);
                smyrf::cpu::attend_tiled(d, a, 0, 0, order[2 * r].data() + q0, q1 - q0,
                                         order[2 * r + 1].data() + q0, q1 - q0,
                                         scratch[thread], state.data());
            });
    };
    const int g = 2048;
    std::vector<float> ga(g * g, 0.5f), gb(g * g, 0.25f), gc(g * g);
    openblas_set_num_threads((int)threads);
    auto sgemm = [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g, g, g, 1.0f, ga.data(), g,
                    gb.data(), g, 0.0f, gc.data(), g);
    };
    // OpenBLAS's workers spin for up to 2^28 cycles (about 0.1 s) after a call before they
    // sleep, and would take the cores from the attention timed next: in 3 of 8 runs that
    // made it 1.8x slower. They are waited out after every sgemm.
    auto let_openblas_sleep = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
    const double flops = 4.0 * R * n * 64.0 * dim;  // q.k and p.v, 64 keys per query
    const double gemm_flops = 2.0 * g * g * (double)g;

    std::vector<double> attention_gflops, sgemm_gflops, shares;
    sgemm();  // warms up OpenBLAS's threads and buffers
    let_openblas_sleep();
    for (int pair = 0; pair < pairs; pair++) {
        // An untimed pass first: the sgemm's 48 MiB have just pushed the clusters' rows out
        // of the caches, which the library's own call finds warm after hashing read them.
        attention();
        const double a_rate = flops / seconds_of(attention) * 1e-9;
        const double g_rate = gemm_flops / seconds_of(sgemm) * 1e-9;
        let_openblas_sleep();
        attention_gflops.push_back(a_rate);
        sgemm_gflops.push_back(g_rate);
        shares.push_back(a_rate / g_rate);
    }
    const double attention_rate = median(attention_gflops), share = median(shares);
    if (share > 1)  // no kernel beats the GEMM peak: this sgemm did not run at it
        std::fprintf(stderr, "smyrf_attention_peak: share_of_peak %.2f is above 1, a "
                             "measurement error: OpenBLAS's %s kernels are not this CPU's "
                             "fastest (OPENBLAS_CORETYPE picks others)\n",
                     share, openblas_get_corename());
    // The core OpenBLAS picked: an old OpenBLAS falls back to generic kernels (Prescott)
    // on a CPU it does not know, and the "peak" is then no peak (OPENBLAS_CORETYPE fixes it).
    std::printf("{\"threads\": %lld, \"kernel\": \"%s\", \"pairs\": %d, \"in_cluster_ms\": %.3f, "
                "\"in_cluster_gflops\": %.1f, \"sgemm_2048_gflops\": %.1f, \"share_of_peak\": %.3f, "
                "\"openblas_core\": \"%s\"}\n",
                (long long)threads, smyrf::cpu::tile_kernel_name(), pairs,
                flops / attention_rate * 1e-6, attention_rate, median(sgemm_gflops), share,
                openblas_get_corename());
    return 0;
}
