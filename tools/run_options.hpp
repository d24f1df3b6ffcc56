// Options that demo and bench share: the shape other than N, threads, seed, repetitions.
#pragma once

#include "cli_args.hpp"
#include "measurement.hpp"
#include "problem.hpp"

namespace smyrf_cli {

struct RunOptions {
    Shape shape;  // n is set per run
    RunSettings settings;
};

RunOptions read_run_options(Args &args, int default_reps);
// The largest HYBRID budget the tools take (--budget, or --hashes x --cluster).
constexpr int64_t kMaxBudget = 1 << 24;
// Refuses a budget derived as --hashes x --cluster above kMaxBudget.
void check_derived_budget(int64_t hashes, int64_t cluster);

// The help lines for those options.
extern const char *const kRunOptionsHelp;

}  // namespace smyrf_cli
