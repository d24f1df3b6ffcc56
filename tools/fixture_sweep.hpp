// Issue 10's comparison on real attention (tests/data/minilm_qkv.bin): at each number of
// keys per query, SMYRF (keys / 32 rounds of clusters of 32), a plain sliding window and
// HYBRID (budget = keys per query), each against DENSE on the same heads. demo prints it
// as a table, bench as rows or JSON lines.
#pragma once

#include "measurement.hpp"

#include <string>
#include <vector>

namespace smyrf_cli {

// The sequence length of the fixture that the sweep reads, and its axis.
constexpr int64_t kFixtureTokens = 512;
constexpr int64_t kFixtureCluster = 32;
extern const std::vector<int64_t> kFixtureKeys;  // 32, 64, 128

struct FixtureRow {
    std::string mode;  // "dense", "smyrf", "window", "hybrid"
    ModeSpec spec;     // the library's mode and parameters (not used by the window)
    int64_t keys = 0;  // keys per query (DENSE: every key)
    // One entry per timed call: the sum over layers, so the time of all heads. Empty for
    // the window, which is this tool's float64 loop, not the library.
    std::vector<double> ms;
    std::vector<double> backward_ms;  // the same for smyrf_execute_backward (--backward)
    double mean_error = 0;  // mean over all heads of ||out - dense|| / ||dense||
    smyrf_status status = SMYRF_OK;  // of the first layer that failed, and its message
    std::string message;
    bool ok() const { return status == SMYRF_OK; }
    std::string label() const;  // "smyrf 2x32", "window 64", "hybrid B=64", "dense"
};

struct FixtureSweep {
    std::string backend;  // of the DENSE plan
    int64_t threads = 0;
    std::vector<FixtureRow> rows;  // DENSE, then smyrf, window, hybrid for each keys
};

// layers: read_qkv_fixture's problems. A mode whose plan or call fails keeps its status
// and message; errors need DENSE, so they are NaN when DENSE failed.
FixtureSweep sweep_fixture(const std::vector<Problem> &layers, const RunSettings &settings);

}  // namespace smyrf_cli
