#include "bench_fixture.hpp"

#include "backward_report.hpp"
#include "fixture_sweep.hpp"
#include "json_line.hpp"
#include "qkv_fixture.hpp"
#include "stats.hpp"
#include "text_table.hpp"

#include <cmath>
#include <cstdio>

namespace smyrf_cli {

bool bench_fixture(const std::string &path, bool json, const RunSettings &settings) {
    const std::vector<Problem> layers = read_qkv_fixture(path, kFixtureTokens);
    const FixtureSweep sweep = sweep_fixture(layers, settings);
    const Shape &s = layers.front().shape;
    std::vector<std::string> headers = {"mode",      "keys/query", "R",      "C",         "B",
                                        "median ms", "min ms",     "max ms", "mean error"};
    if (settings.backward)
        headers.insert(headers.end(), kBackwardHeaders.begin(), kBackwardHeaders.end());
    TextTable table(headers);
    bool failed = false;
    for (const FixtureRow &r : sweep.rows) {
        failed |= !r.ok() && r.status != SMYRF_ERR_UNSUPPORTED;
        const bool smyrf = r.mode == "smyrf", hybrid = r.mode == "hybrid";
        const bool timed = r.ok() && !r.ms.empty();
        const Spread t = timed ? spread_of(r.ms) : Spread{NAN, NAN, NAN, NAN, NAN};
        const double error = r.ok() ? r.mean_error : NAN;
        const BackwardReport backward =
            r.ok() ? BackwardReport(r.ms, r.backward_ms) : BackwardReport({}, {});
        if (json) {
            JsonLine j;
            j.add("mode", r.mode).add("fixture", path).add("n", s.n)
                .add("layers", (int64_t)layers.size()).add("heads", s.heads).add("d", s.d)
                .add("keys_per_query", r.keys);
            if (smyrf) j.add("hashes", r.spec.hashes).add("cluster", r.spec.cluster);
            else j.add_null("hashes").add_null("cluster");
            if (hybrid) j.add("budget", r.spec.budget);
            else j.add_null("budget");
            j.add("threads", sweep.threads).add("reps", (int64_t)settings.reps)
                .add("median_ms", t.median).add("min_ms", t.min).add("max_ms", t.max)
                .add("q1_ms", t.q1).add("q3_ms", t.q3).add("mean_rel_err", error);
            if (settings.backward) backward.add_to(j);
            j.add("status", r.ok() ? "ok" : smyrf_status_string(r.status))
                .add("message", r.message);
            std::printf("%s\n", j.str().c_str());
            continue;
        }
        auto num = [](double v, const char *fmt) {
            return std::isfinite(v) ? format(fmt, v) : std::string("-");
        };
        std::vector<std::string> cells = {
            r.mode, std::to_string(r.keys), smyrf ? std::to_string(r.spec.hashes) : "-",
            smyrf ? std::to_string(r.spec.cluster) : "-",
            hybrid ? std::to_string(r.spec.budget) : "-"};
        if (!r.ok()) cells.push_back(std::string(smyrf_status_string(r.status)) + ": " + r.message);
        else {
            for (const std::string &c : {num(t.median, "%.3f"), num(t.min, "%.3f"),
                                         num(t.max, "%.3f"), num(error, "%.4f")})
                cells.push_back(c);
            if (settings.backward)
                for (const std::string &c : backward.cells()) cells.push_back(c);
        }
        table.add_row(cells);
    }
    if (!json) {
        std::printf("real attention: %s, %lld tokens, %zu layers x %lld heads, d %lld; %s "
                    "backend, %lld threads\n",
                    path.c_str(), (long long)s.n, layers.size(), (long long)s.heads,
                    (long long)s.d, sweep.backend.c_str(), (long long)sweep.threads);
        table.print(stdout);
        std::printf("\nms: all heads of all layers (one smyrf_execute call per layer), median "
                    "(min, max) of %d call(s)\nafter a warm-up call; the window is this tool's "
                    "float64 loop, not timed. mean error: over all\nheads, of each head's "
                    "||out - out_dense|| / ||out_dense||.\n",
                    settings.reps);
        if (settings.backward) std::printf("%s", kBackwardNote);
    }
    std::fflush(stdout);
    return !failed;
}

}  // namespace smyrf_cli
