#include "run_options.hpp"

namespace smyrf_cli {

const char *const kRunOptionsHelp =
    "  --batch B        batch size (default 1)\n"
    "  --heads H        heads (default 1)\n"
    "  --d D            head dimension of q, k and v (default 64)\n"
    "  --threads T      worker threads, 0 = the CPUs this process may run on (default 0)\n"
    "  --seed S         seed of the inputs and of the hash directions (default 0)\n"
    "  --expand E       HYBRID keys per query spent expanding the heaviest summaries\n"
    "                   (SMYRF_PARAM_EXPAND; default -1: derived from the budget, 0: none)\n"
    "  --kmeans-iters I HYBRID's k-means iterations (SMYRF_PARAM_KMEANS_ITERS; default 0:\n"
    "                   the library's default, 2)\n";

RunOptions read_run_options(Args &args, int default_reps) {
    RunOptions o;
    o.shape.batch = args.integer("batch", 1, 1, 1024);
    o.shape.heads = args.integer("heads", 1, 1, 1024);
    o.shape.d = args.integer("d", 64, 1, 4096);
    o.settings.threads = args.integer("threads", 0, 0, 1024);
    o.settings.reps = (int)args.integer("reps", default_reps, 1, 1000);
    o.settings.seed = (uint64_t)args.integer("seed", 0, 0, INT64_MAX);
    o.settings.expand = args.integer("expand", -1, -1, INT32_MAX);
    o.settings.kmeans_iters = args.integer("kmeans-iters", 0, 0, 1000);
    return o;
}

void check_derived_budget(int64_t hashes, int64_t cluster) {
    if (hashes * cluster > kMaxBudget)
        throw UsageError("--hashes x --cluster = " + std::to_string(hashes * cluster) +
                         " is above the largest HYBRID budget, " + std::to_string(kMaxBudget));
}

}  // namespace smyrf_cli
