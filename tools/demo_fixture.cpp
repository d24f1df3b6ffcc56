#include "demo_fixture.hpp"

#include "fixture_sweep.hpp"
#include "qkv_fixture.hpp"
#include "stats.hpp"
#include "text_table.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>

namespace smyrf_cli {

const char *const kDemoFixtureNotes =
    "real attention: mean over all heads of each head's ||out - out_dense|| / ||out_dense||;\n"
    "  SMYRF runs keys/32 rounds of clusters of 32, HYBRID a budget of keys/query; the\n"
    "  window (keys/query consecutive keys around each query) is this tool's float64 loop,\n"
    "  not a library mode, so it has no time. ms: all heads of all layers, one call per layer.\n";

namespace {

std::string ms_cell(const FixtureRow &r) {
    return r.ok() ? format("%.2f", spread_of(r.ms).median) : smyrf_status_string(r.status);
}

std::string error_cell(const FixtureRow &r) {
    return r.ok() && std::isfinite(r.mean_error) ? format("%.4f", r.mean_error) : "-";
}

void print_table(const std::string &path, const std::vector<Problem> &layers,
                 const FixtureSweep &sweep, int reps) {
    const Shape &s = layers.front().shape;
    const FixtureRow &dense = sweep.rows[0];
    std::printf("\nreal attention (all-MiniLM-L6-v2, %lld tokens, %zu layers x %lld heads)\n"
                "inputs: %s (binary16, as fp32); %s backend, %lld threads; median of %d "
                "call%s\n",
                (long long)s.n, layers.size(), (long long)s.heads, path.c_str(),
                sweep.backend.c_str(), (long long)sweep.threads, reps, reps == 1 ? "" : "s");
    std::printf("dense: %s ms for the %lld heads, the reference of the errors\n",
                ms_cell(dense).c_str(), (long long)(s.heads * (int64_t)layers.size()));
    TextTable table({"keys/query", "smyrf", "smyrf ms", "smyrf error", "window error",
                     "hybrid ms", "hybrid error", "hybrid/smyrf"});
    // After DENSE the rows come in threes: smyrf, window, hybrid at one keys per query.
    for (size_t i = 1; i + 2 < sweep.rows.size(); i += 3) {
        const FixtureRow &sm = sweep.rows[i], &wi = sweep.rows[i + 1], &hy = sweep.rows[i + 2];
        const bool ratio = sm.ok() && hy.ok() && sm.mean_error > 0;
        table.add_row({std::to_string(sm.keys),
                       format("%lldx%lld", (long long)sm.spec.hashes, (long long)sm.spec.cluster),
                       ms_cell(sm), error_cell(sm), error_cell(wi), ms_cell(hy), error_cell(hy),
                       ratio ? format("%.2f", hy.mean_error / sm.mean_error) : "-"});
    }
    table.print(stdout);
    for (const FixtureRow &r : sweep.rows)
        if (!r.ok()) std::printf("  %s: %s\n", r.label().c_str(), r.message.c_str());
    std::fflush(stdout);
}

}  // namespace

bool demo_fixture(const std::string &path, const RunSettings &settings) {
    std::string file = path;
    if (file.empty()) {
        file = SMYRF_CLI_FIXTURE;
        if (!std::ifstream(file)) {
            std::printf("\nreal attention: skipped, no %s (point --fixture at a copy of "
                        "tests/data/minilm_qkv.bin)\n", file.c_str());
            return true;
        }
    }
    const std::vector<Problem> layers = read_qkv_fixture(file, kFixtureTokens);
    const FixtureSweep sweep = sweep_fixture(layers, settings);
    print_table(file, layers, sweep, settings.reps);
    for (const FixtureRow &r : sweep.rows)
        if (!r.ok() && r.status != SMYRF_ERR_UNSUPPORTED) return false;
    return true;
}

}  // namespace smyrf_cli
