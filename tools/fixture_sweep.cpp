#include "fixture_sweep.hpp"

#include "sliding_window.hpp"
#include "stats.hpp"

#include <cmath>

namespace smyrf_cli {

const std::vector<int64_t> kFixtureKeys = {32, 64, 128};

std::string FixtureRow::label() const {
    return mode == "window" ? "window " + std::to_string(keys) : spec.label();
}

namespace {

std::vector<FixtureRow> planned_rows() {
    FixtureRow dense;
    dense.mode = "dense";
    dense.spec.mode = SMYRF_MODE_DENSE;
    dense.keys = kFixtureTokens;
    std::vector<FixtureRow> rows = {dense};
    for (int64_t keys : kFixtureKeys) {
        FixtureRow r;
        r.keys = keys;
        r.mode = "smyrf";
        r.spec.hashes = keys / kFixtureCluster;
        r.spec.cluster = kFixtureCluster;
        rows.push_back(r);
        r.mode = "window";
        rows.push_back(r);
        r.mode = "hybrid";
        r.spec.mode = SMYRF_MODE_HYBRID;
        r.spec.budget = keys;
        rows.push_back(r);
    }
    return rows;
}

// Adds one layer's figures to the row; `dense` is that layer's DENSE output (empty when
// DENSE failed).
void add_layer(FixtureRow &row, const Measurement &m, const Tensor &dense,
               size_t heads, size_t layers) {
    if (!row.ok()) return;
    if (!m.ok()) {
        row.status = m.status, row.message = m.message;
        return;
    }
    auto add_times = [](std::vector<double> &sum, const std::vector<double> &layer) {
        sum.resize(layer.size());
        for (size_t rep = 0; rep < layer.size(); rep++) sum[rep] += layer[rep];
    };
    add_times(row.ms, m.ms);
    add_times(row.backward_ms, m.backward_ms);
    row.mean_error += dense.empty() ? NAN : mean_relative_error(m.out, dense, heads) / layers;
}

}  // namespace

FixtureSweep sweep_fixture(const std::vector<Problem> &layers, const RunSettings &settings) {
    FixtureSweep sweep;
    sweep.rows = planned_rows();
    for (const Problem &p : layers) {
        const size_t heads = (size_t)(p.shape.batch * p.shape.heads);
        Measurement dense = measure(p, sweep.rows[0].spec, settings);
        if (dense.ok()) sweep.backend = dense.backend, sweep.threads = dense.threads;
        else dense.out.clear();
        for (FixtureRow &row : sweep.rows) {
            Measurement m;
            if (row.mode == "dense") m = dense;
            else if (row.mode == "window") m.out = sliding_window_attention(p, row.keys);
            else m = measure(p, row.spec, settings);
            add_layer(row, m, dense.out, heads, layers.size());
        }
    }
    return sweep;
}

}  // namespace smyrf_cli
