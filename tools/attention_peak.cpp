// The in-cluster attention alone (stage 4 + its merge) against the machine's GEMM peak,
// side by side in one run: SMYRF's clusters at N = 16384 (d = 64, 2 rounds of clusters
// of 64 queries and 64 keys in a random order, as hashing leaves them: cluster_pass.hpp)
// through the library's tile kernel, and OpenBLAS sgemm at 2048^3, on the same threads.
// The machines this runs on switch between fast and slow states, so the two alternate,
// one of each per pair, and the share of the peak is the median of the
// per-pair ratios: both sides of a ratio are timed a moment apart.
// Prints one JSON line. A measuring aid built from the library's internals: not installed.
#include "cluster_pass.hpp"
#include "cpu/tile.hpp"

#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char **argv) {
    const int64_t threads = smyrf_tools::count_arg(argc, argv, 1, 2);
    const int pairs = (int)smyrf_tools::count_arg(argc, argv, 2, 20);
    if (argc > 3 || threads < 1 || pairs < 1) {
        std::fprintf(stderr, "usage: smyrf_attention_peak [threads >= 1] [pairs >= 1]\n");
        return 2;
    }
    smyrf_tools::ClusterPass pass(16384, 64, threads);
    const auto attention = [&] { pass.run(false); };
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
    const double flops = pass.flops();
    const double gemm_flops = 2.0 * g * g * (double)g;

    std::vector<double> attention_gflops, sgemm_gflops, shares;
    sgemm();  // warms up OpenBLAS's threads and buffers
    let_openblas_sleep();
    for (int pair = 0; pair < pairs; pair++) {
        // An untimed pass first: the sgemm's 48 MiB have just pushed the clusters' rows out
        // of the caches, which the library's own call finds warm after hashing read them.
        attention();
        const double a_rate = flops / smyrf_tools::seconds_of(attention) * 1e-9;
        const double g_rate = gemm_flops / smyrf_tools::seconds_of(sgemm) * 1e-9;
        let_openblas_sleep();
        attention_gflops.push_back(a_rate);
        sgemm_gflops.push_back(g_rate);
        shares.push_back(a_rate / g_rate);
    }
    const double attention_rate = smyrf_tools::median(attention_gflops);
    const double share = smyrf_tools::median(shares);
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
                flops / attention_rate * 1e-6, attention_rate, smyrf_tools::median(sgemm_gflops),
                share, openblas_get_corename());
    return 0;
}
