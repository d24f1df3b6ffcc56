// Runs one attention mode on one problem through the public C API and measures it.
#pragma once

#include "problem.hpp"

#include <smyrf/smyrf.h>

#include <string>
#include <vector>

namespace smyrf_cli {

struct ModeSpec {
    smyrf_mode mode = SMYRF_MODE_SMYRF;
    int64_t hashes = 2, cluster = 64;  // SMYRF
    int64_t budget = 128;              // HYBRID: keys per query
    std::string name() const;          // "smyrf", "dense", "hybrid"
    std::string label() const;         // "smyrf 2x64", "dense", "hybrid B=128"
};

struct RunSettings {
    int64_t threads = 0;  // 0 = the CPUs the process may run on
    uint64_t seed = 0;
    int reps = 3;         // timed calls, after one untimed warm-up call
    // Also time smyrf_execute_backward, after the forward's calls and their memory figures.
    bool backward = false;
    int64_t expand = -1;  // HYBRID's SMYRF_PARAM_EXPAND; -1 = derived from the budget
    int64_t kmeans_iters = 0;  // HYBRID's SMYRF_PARAM_KMEANS_ITERS; 0 = the library's default
};

struct Measurement {
    smyrf_status status = SMYRF_OK;
    std::string message;       // the library's message when status is not OK ("backward:
                               // ..." when smyrf_execute_backward failed)
    std::string backend;       // "cpu", "cuda"
    int64_t threads = 0;       // as resolved by the plan
    std::vector<double> ms;    // one wall time per timed call of smyrf_execute
    // With RunSettings::backward: the same for smyrf_execute_backward on the same plan and
    // inputs, with out and lse from the forward and a fixed random dout.
    std::vector<double> backward_ms;
    double workspace_mib = 0;  // smyrf_plan_workspace_size, passed in by the CLI
    // Peak RSS during the calls minus RSS before them, with q, k, v, out and the
    // workspace already resident: what the library allocated on top of them.
    double extra_mib = 0;
    double peak_rss_mib = 0;   // the process's VmHWM after the calls
    bool peak_is_per_run = true;  // false where the kernel would not reset VmHWM
    Tensor out;

    bool ok() const { return status == SMYRF_OK; }
    // "unsupported: <message>"
    std::string failure() const;
};

Measurement measure(const Problem &problem, const ModeSpec &spec, const RunSettings &settings);

// One untimed call of each spec (and its backward, with settings.backward) before any
// measurement, on one head of shape's d and N up to 4096 (at 1024, 20 KiB of first-time
// costs were left for 4096): what a process pays once (code pages faulted in, the thread
// pool started) then falls on no row, where it would be charged to the first row's time
// and extra memory. Failures are left to the measured rows to report.
void warm_up(const Shape &shape, const std::vector<ModeSpec> &specs, const RunSettings &settings);

// Floating-point operations of the attention products (q.k and p.v, 2 per multiply-add)
// that the mode computes on the shape: the figure to hold against the GEMM peak. Hashing,
// sorting, softmax and k-means are not counted.
double attention_flops(const Shape &shape, const ModeSpec &spec);

}  // namespace smyrf_cli
