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
// A command's own option names (those that take a value) with the ones above.
std::set<std::string> with_run_options(std::set<std::string> options);
// The largest HYBRID budget the tools take (--budget, or --hashes x --cluster).
constexpr int64_t kMaxBudget = 1 << 24;

// The help lines for those options.
extern const char *const kRunOptionsHelp;

}  // namespace smyrf_cli
