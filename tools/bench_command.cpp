// `smyrf bench`: sweeps N, hash rounds and cluster sizes; a table or JSON lines. With
// --fixture, the sweep over modes on real attention instead.
#include "backward_report.hpp"
#include "bench_fixture.hpp"
#include "commands.hpp"
#include "json_line.hpp"
#include "machine_load.hpp"
#include "run_options.hpp"
#include "stats.hpp"
#include "text_table.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace smyrf_cli {

const char *const kBenchHelp =
    "usage: smyrf bench [options]\n"
    "Times SMYRF (every hash-round and cluster-size pair), DENSE and HYBRID on built-in\n"
    "inputs (fp32) for each N: median over repetitions with min, max and quartiles.\n"
    "  --json           one JSON object per line instead of a table\n"
    "  --n LIST         sequence lengths (default 1024,4096,16384,65536)\n"
    "  --hashes LIST    SMYRF hash rounds (default 1,2,4)\n"
    "  --cluster LIST   SMYRF queries per cluster (default 32,64,128)\n"
    "  --modes LIST     among smyrf, dense, hybrid (default smyrf,dense); HYBRID runs with\n"
    "                   budget R * C for each pair, the keys a query meets in SMYRF\n"
    "  --dense-max-n N  skip DENSE above this N, as it grows as N^2 (default 16384;\n"
    "                   DENSE at N = 65536 takes tens of seconds per call on 2 cores)\n"
    "  --reps R         timed calls per configuration, after one warm-up call (default 5)\n"
    "  --backward       also time smyrf_execute_backward for each configuration (same plan\n"
    "                   and inputs; out and lse from the forward, dout fixed random values):\n"
    "                   median, min and max ms, and median / the forward's median; the\n"
    "                   memory figures stay the forward's\n"
    "  --fixture PATH   instead, real q, k, v in the format of tests/data/minilm_qkv.bin\n"
    "                   (512 tokens, every layer and head): DENSE, then SMYRF (R x 32), a\n"
    "                   sliding window and HYBRID at 32, 64, 128 keys per query, with each\n"
    "                   one's mean per-head error against DENSE; the fixture fixes the shapes\n"
    "                   (--backward times each layer's backward too, the window excepted)\n";

namespace {

struct Row {
    ModeSpec spec;
    Measurement m;
    bool skipped = false;  // DENSE above --dense-max-n
};

class Reporter {
public:
    Reporter(bool json, bool backward, int reps, int64_t dense_max_n)
        : json_(json), backward_(backward), reps_(reps), dense_max_n_(dense_max_n) {
        if (backward_) {
            headers_.insert(headers_.end(), kBackwardHeaders.begin(), kBackwardHeaders.end());
            table_ = TextTable(headers_);
        }
    }

    // `dense` is the DENSE row of the same N (`&row` for DENSE itself), or null when DENSE
    // did not run.
    void report(const Problem &p, const Row &row, const Row *dense) {
        const Shape &s = p.shape;
        const bool ok = !row.skipped && row.m.ok();
        const Spread t = ok ? spread_of(row.m.ms) : Spread{NAN, NAN, NAN, NAN, NAN};
        const bool have_dense = ok && dense && dense->m.ok();
        const double rel_err = !have_dense     ? NAN
                               : dense == &row ? 0.0
                                               : relative_error(row.m.out, dense->m.out);
        const double speedup = have_dense ? spread_of(dense->m.ms).median / t.median : NAN;
        const BackwardReport backward =
            ok ? BackwardReport(row.m.ms, row.m.backward_ms) : BackwardReport({}, {});
        const double gflops = attention_flops(s, row.spec) / (t.median * 1e6);
        const double io_mib = p.io_bytes() / 1048576.0;
        const double mem_ratio =
            (io_mib + row.m.workspace_mib + std::max(0.0, row.m.extra_mib)) / io_mib;
        const bool smyrf = row.spec.mode == SMYRF_MODE_SMYRF;
        const bool hybrid = row.spec.mode == SMYRF_MODE_HYBRID;
        const std::string status =
            row.skipped ? "skipped" : ok ? "ok" : smyrf_status_string(row.m.status);
        const std::string message =
            row.skipped ? format("DENSE above --dense-max-n %lld", (long long)dense_max_n_)
                        : ok ? "" : row.m.message;
        if (json_) {
            JsonLine j;
            j.add("mode", row.spec.name()).add("n", s.n).add("batch", s.batch)
                .add("heads", s.heads).add("d", s.d);
            if (smyrf) j.add("hashes", row.spec.hashes).add("cluster", row.spec.cluster);
            else j.add_null("hashes").add_null("cluster");
            if (hybrid) j.add("budget", row.spec.budget);
            else j.add_null("budget");
            if (ok) j.add("threads", row.m.threads);
            else j.add_null("threads");
            j.add("reps", (int64_t)reps_)
                .add("median_ms", t.median).add("min_ms", t.min).add("max_ms", t.max)
                .add("q1_ms", t.q1).add("q3_ms", t.q3).add("rel_err", rel_err)
                .add("speedup_vs_dense", speedup).add("attention_gflops", gflops)
                .add("io_mib", io_mib)
                .add("workspace_mib", ok ? row.m.workspace_mib : NAN)
                .add("extra_mib", ok && row.m.peak_is_per_run ? row.m.extra_mib : NAN)
                .add("peak_rss_mib", ok ? row.m.peak_rss_mib : NAN);
            if (backward_) backward.add_to(j);
            j.add("status", status).add("message", message);
            std::printf("%s\n", j.str().c_str());
            std::fflush(stdout);
            return;
        }
        std::vector<std::string> cells = {
            row.spec.name(), std::to_string(s.n), smyrf ? std::to_string(row.spec.hashes) : "-",
            smyrf ? std::to_string(row.spec.cluster) : "-",
            hybrid ? std::to_string(row.spec.budget) : "-"};
        if (!ok) {
            cells.push_back(status + ": " + message);
        } else {
            auto opt_num = [](double v, const char *fmt) {
                return std::isfinite(v) ? format(fmt, v) : std::string("-");
            };
            for (const std::string &c :
                 {format("%.3f", t.median), format("%.3f", t.min), format("%.3f", t.max),
                  opt_num(rel_err, "%.4f"), opt_num(speedup, "%.1fx"), format("%.1f", gflops),
                  row.m.peak_is_per_run ? format("%.2f", mem_ratio) : std::string("n/a")})
                cells.push_back(c);
            if (backward_)
                for (const std::string &c : backward.cells()) cells.push_back(c);
        }
        table_.add_row(cells);
    }

    // Prints the rows of one N, so that a long sweep shows its results as it goes.
    void end_length() {
        if (json_) return;
        table_.print(stdout);
        std::printf("\n");
        std::fflush(stdout);
        table_ = TextTable(headers_);
    }

    void finish() const {
        if (json_) return;
        std::printf(
            "ms: wall time of one smyrf_execute call, median (min, max) of %d call(s) after a "
            "warm-up call.\nrel. error: against DENSE at the same N. attn GFLOP/s: FLOPs of "
            "the q.k and p.v products / median time\n(hashing, sorting, softmax not "
            "counted). mem/io: (q, k, v, out + workspace + extra peak RSS) / (q, k, v, out).\n",
            reps_);
        if (backward_) std::printf("%s", kBackwardNote);
    }

private:
    bool json_, backward_;
    int reps_;
    int64_t dense_max_n_;
    std::vector<std::string> headers_ = {
        "mode",       "N",        "R",            "C",     "B", "median ms", "min ms", "max ms",
        "rel. error", "vs dense", "attn GFLOP/s", "mem/io"};
    TextTable table_{headers_};
};

}  // namespace

int bench_command(int argc, char **argv) {
    Args args(argc, argv, 2, {"json", "backward"});
    const bool json = args.given("json");
    const auto lengths = args.integers("n", {1024, 4096, 16384, 65536}, 1, 1 << 24);
    const auto hashes = args.integers("hashes", {1, 2, 4}, 1, 256);
    const auto clusters = args.integers("cluster", {32, 64, 128}, 1, 1 << 24);
    const auto modes = args.words("modes", {"smyrf", "dense"}, {"smyrf", "dense", "hybrid"});
    const int64_t dense_max_n = args.integer("dense-max-n", 16384, 1, 1 << 24);
    const std::string fixture = args.text("fixture", "");
    RunOptions opt = read_run_options(args, 5);
    opt.settings.backward = args.given("backward");
    if (!fixture.empty())
        for (const char *name : {"n", "hashes", "cluster", "modes", "dense-max-n", "batch",
                                 "heads", "d"})
            if (args.given(name))
                throw UsageError(std::string("--") + name + " does not apply with --fixture");
    args.finish();
    if (std::count(modes.begin(), modes.end(), "hybrid"))  // HYBRID's budget is R x C
        for (int64_t r : hashes)
            for (int64_t c : clusters) check_derived_budget(r, c);
    const std::set<std::string> wanted(modes.begin(), modes.end());

    const std::string load_note = busy_machine_note();
    if (!load_note.empty()) std::fprintf(stderr, "[smyrf] %s\n", load_note.c_str());
    if (!fixture.empty()) return bench_fixture(fixture, json, opt.settings) ? 0 : 1;

    // The rows of each N after DENSE: every SMYRF pair, and HYBRID once per budget.
    std::vector<ModeSpec> specs;
    std::set<int64_t> budgets;
    for (int64_t r : hashes)
        for (int64_t c : clusters) {
            ModeSpec spec;
            spec.hashes = r;
            spec.cluster = c;
            if (wanted.count("smyrf")) specs.push_back(spec);
            spec.mode = SMYRF_MODE_HYBRID;
            spec.budget = r * c;
            if (wanted.count("hybrid") && budgets.insert(spec.budget).second)
                specs.push_back(spec);
        }
    ModeSpec dense_spec;
    dense_spec.mode = SMYRF_MODE_DENSE;
    std::vector<ModeSpec> every = specs;
    if (wanted.count("dense")) every.push_back(dense_spec);

    Reporter reporter(json, opt.settings.backward, opt.settings.reps, dense_max_n);
    bool failed = false;
    for (int64_t n : lengths) {
        Shape shape = opt.shape;
        shape.n = n;
        const Problem problem = clustered_problem(shape, opt.settings.seed);
        if (n == lengths.front()) warm_up(shape, every, opt.settings);
        auto run = [&](const ModeSpec &spec, const Row *dense) {
            Row row{spec, measure(problem, spec, opt.settings)};
            failed |= !row.m.ok() && row.m.status != SMYRF_ERR_UNSUPPORTED;
            reporter.report(problem, row, spec.mode == SMYRF_MODE_DENSE ? &row : dense);
            return row;
        };
        Row dense_row;
        dense_row.spec = dense_spec;
        const bool have_dense = wanted.count("dense") && n <= dense_max_n;
        if (have_dense) dense_row = run(dense_row.spec, nullptr);
        else if (wanted.count("dense")) {
            dense_row.skipped = true;
            reporter.report(problem, dense_row, nullptr);
        }
        const Row *dense = have_dense ? &dense_row : nullptr;
        for (const ModeSpec &spec : specs) run(spec, dense);
        reporter.end_length();
    }
    reporter.finish();
    return failed ? 1 : 0;
}

}  // namespace smyrf_cli
