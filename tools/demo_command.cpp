// `smyrf demo`: DENSE, SMYRF and HYBRID side by side on built-in structured inputs, then
// on real attention (the MiniLM fixture).
#include "commands.hpp"
#include "demo_fixture.hpp"
#include "machine_load.hpp"
#include "run_options.hpp"
#include "stats.hpp"
#include "text_table.hpp"

#include <cstdio>

namespace smyrf_cli {

const char *const kDemoHelp =
    "usage: smyrf demo [options]\n"
    "Runs DENSE, SMYRF and HYBRID attention (fp32) on built-in inputs with topic structure\n"
    "and prints, side by side: median time, speed-up over DENSE, relative error against\n"
    "DENSE, and memory. Then, on real q, k, v of all-MiniLM-L6-v2 (512 tokens, every layer\n"
    "and head), the mean per-head error of SMYRF, a sliding window and HYBRID against DENSE\n"
    "at 32, 64 and 128 keys per query, with the time of each mode.\n"
    "  --n LIST         sequence lengths, q_len = k_len (default 4096,16384)\n"
    "  --hashes R       SMYRF hash rounds (default 2)\n"
    "  --cluster C      SMYRF queries per cluster (default 64)\n"
    "  --budget B       HYBRID keys per query (default R * C: the keys a query meets in SMYRF)\n"
    "  --reps R         timed calls per mode, after one warm-up call (default 3)\n"
    "  --fixture PATH   real q, k, v in the format of tests/data/minilm_qkv.bin (default: that\n"
    "                   file in the source tree this tool was built from, when present)\n";

namespace {

const char *const kDemoNotes =
    "rel. error: ||out - out_dense|| / ||out_dense|| over the whole output.\n"
    "workspace: smyrf_plan_workspace_size, allocated by this tool and passed to smyrf_execute.\n"
    "extra: peak RSS during the calls minus RSS before them (peak reset through\n"
    "  /proc/self/clear_refs), with q, k, v, out and the workspace already resident: memory\n"
    "  the library allocated on top of them.\n"
    "peak RSS: the whole process (VmHWM), including this tool's copies of every output.\n";

void print_table(const Problem &p, const std::vector<ModeSpec> &specs,
                 const std::vector<Measurement> &results, int reps) {
    const Measurement &dense = results[0];
    std::string where;
    for (const Measurement &m : results)
        if (m.ok()) {
            where = format("%s backend, %lld threads", m.backend.c_str(), (long long)m.threads);
            break;
        }
    std::printf("\nN = %lld (batch %lld, heads %lld, d %lld; %s; median of %d call%s; "
                "q, k, v, out = %.1f MiB)\n",
                (long long)p.shape.n, (long long)p.shape.batch, (long long)p.shape.heads,
                (long long)p.shape.d, where.c_str(), reps, reps == 1 ? "" : "s",
                p.io_bytes() / 1048576.0);
    TextTable table({"mode", "median ms", "speed-up", "rel. error", "workspace MiB",
                     "extra MiB", "peak RSS MiB"});
    for (size_t i = 0; i < specs.size(); i++) {
        const Measurement &m = results[i];
        if (!m.ok()) {
            table.add_row({specs[i].label(), m.failure()});
            continue;
        }
        const double median = spread_of(m.ms).median;
        const bool vs_dense = dense.ok() && i > 0;
        table.add_row({specs[i].label(), format("%.2f", median),
                       vs_dense ? format("%.1fx", spread_of(dense.ms).median / median)
                                : (i == 0 ? "1.0x" : "-"),
                       vs_dense ? format("%.4f", relative_error(m.out, dense.out))
                                : (i == 0 ? "reference" : "-"),
                       format("%.1f", m.workspace_mib),
                       m.peak_is_per_run ? format("%.1f", m.extra_mib) : "n/a",
                       format("%.1f", m.peak_rss_mib)});
    }
    table.print(stdout);
    std::fflush(stdout);
}

}  // namespace

int demo_command(int argc, char **argv) {
    Args args(argc, argv, 2, {});
    const std::vector<int64_t> lengths = args.integers("n", {4096, 16384}, 1, 1 << 24);
    ModeSpec smyrf;
    smyrf.hashes = args.integer("hashes", 2, 1, 256);
    smyrf.cluster = args.integer("cluster", 64, 1, 1 << 24);
    ModeSpec dense;
    dense.mode = SMYRF_MODE_DENSE;
    ModeSpec hybrid;
    hybrid.mode = SMYRF_MODE_HYBRID;
    hybrid.budget = args.integer("budget", smyrf.hashes * smyrf.cluster, 1, kMaxBudget);
    const std::string fixture = args.text("fixture", "");
    const RunOptions opt = read_run_options(args, 3);
    args.finish();
    if (!args.given("budget")) check_derived_budget(smyrf.hashes, smyrf.cluster);

    // DENSE first: it is the reference of the other rows.
    const std::vector<ModeSpec> specs = {dense, smyrf, hybrid};
    std::printf("smyrf demo: fp32, seed %llu\n", (unsigned long long)opt.settings.seed);
    const std::string load_note = busy_machine_note();
    if (!load_note.empty()) std::fprintf(stderr, "[smyrf] %s\n", load_note.c_str());
    bool failed = false;
    for (int64_t n : lengths) {
        Shape shape = opt.shape;
        shape.n = n;
        const Problem problem = clustered_problem(shape, opt.settings.seed);
        if (n == lengths.front()) {
            std::printf("inputs: %s\n", problem.origin.c_str());
            warm_up(shape, specs, opt.settings);
        }
        std::vector<Measurement> results;
        for (const ModeSpec &spec : specs) {
            results.push_back(measure(problem, spec, opt.settings));
            failed |= !results.back().ok() && results.back().status != SMYRF_ERR_UNSUPPORTED;
        }
        print_table(problem, specs, results, opt.settings.reps);
    }
    failed |= !demo_fixture(fixture, opt.settings);
    std::printf("\n%s%s", kDemoNotes, kDemoFixtureNotes);
    return failed ? 1 : 0;
}

}  // namespace smyrf_cli
