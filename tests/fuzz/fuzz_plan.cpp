// Fuzz target 1: configuration and plan creation from arbitrary bytes.
// Each input is a list of operations on one config: set a parameter (any int, including
// unknown ids and out-of-range values), set the scale (any double bits), get; then a plan.
// Checked: every call returns a defined status; a refused set leaves the config as it
// was; a failed call writes no output (a refused get keeps what its output held) and
// leaves a message (naming the parameter a refused set was given); a plan reports values inside the parameter bounds, the scale it was
// given, a workspace size, and destroys cleanly.
#include <smyrf/smyrf.h>

#include "fuzz_input.hpp"

#include <cfloat>
#include <cmath>

namespace {

// Values that sit on and around every interesting edge, picked by one byte.
int64_t pick_value(fuzz::Input &in, int64_t lower, int64_t upper) {
    switch (in.below(12)) {
    case 0: return lower;
    case 1: return upper;
    case 2: return lower - (lower > INT64_MIN ? 1 : 0);
    case 3: return upper + (upper < INT64_MAX ? 1 : 0);
    case 4: return 0;
    case 5: return -1;
    case 6: return INT64_MIN;
    case 7: return INT64_MAX;
    case 8: return (int64_t)in.u64();
    case 9: return (int64_t)1 << in.below(63);
    default: return in.below(64);  // small: the sizes that make real plans
    }
}

// What a getter's output holds before a call that may refuse: kept if it does.
constexpr int64_t kKept = 0x5a5a5a5a5a5a5a5a;
constexpr double kKeptScale = -7.25;

bool known(smyrf_status s) { return s >= SMYRF_OK && s <= SMYRF_ERR_INTERNAL; }

void check_failure(smyrf_status s, const char *call) {
    FUZZ_REQUIRE(s != SMYRF_OK, call);
    FUZZ_REQUIRE(known(s), call);
    FUZZ_REQUIRE(s != SMYRF_ERR_INTERNAL, call);
    FUZZ_REQUIRE(smyrf_last_error_message()[0] != '\0', call);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz::Input in(data, size);
    smyrf_config *cfg = nullptr;
    if (smyrf_config_create(&cfg) != SMYRF_OK) return 0;
    // The plan-sized defaults the fuzzer then perturbs: a small valid problem.
    smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, 8);
    smyrf_config_set(cfg, SMYRF_PARAM_QK_DIM, 4);
    smyrf_config_set(cfg, SMYRF_PARAM_THREADS, 1);

    const int ops = (int)in.below(24);
    for (int i = 0; i < ops && in.more(); i++) {
        const uint8_t op = in.byte();
        if (op < 200) {
            // Mostly real parameters, sometimes unknown ids around them.
            const int raw = (op % 40) - 2;
            const smyrf_param p = (smyrf_param)raw;
            int64_t lower = kKept, upper = kKept, before = kKept, after = 0;
            const bool valid = smyrf_param_bounds(p, &lower, &upper) == SMYRF_OK;
            FUZZ_REQUIRE(valid == (smyrf_param_name(p) != nullptr), "bounds vs name");
            const bool had = smyrf_config_get(cfg, p, &before) == SMYRF_OK;
            FUZZ_REQUIRE(had == valid, "get of a parameter");
            if (!valid) {
                FUZZ_REQUIRE(lower == kKept && upper == kKept, "bounds written on failure");
                FUZZ_REQUIRE(before == kKept, "get wrote its value on failure");
                lower = upper = 0;  // pick_value's edges for an unknown id, as before
            }
            const int64_t value = pick_value(in, lower, upper);
            const smyrf_status st = smyrf_config_set(cfg, p, value);
            const bool in_range = valid && value >= lower && value <= upper;
            FUZZ_REQUIRE((st == SMYRF_OK) == in_range, "set accepts exactly the bounds");
            if (st != SMYRF_OK) {
                check_failure(st, "smyrf_config_set");
                // The message names the parameter (or, for an unknown id, says so).
                FUZZ_REQUIRE(std::strstr(smyrf_last_error_message(),
                                         valid ? smyrf_param_name(p) : "not a smyrf_param"),
                             smyrf_last_error_message());
            }
            if (valid) {
                FUZZ_REQUIRE(smyrf_config_get(cfg, p, &after) == SMYRF_OK, "get");
                FUZZ_REQUIRE(after == (st == SMYRF_OK ? value : before), "set / get");
            }
        } else if (op < 230) {
            uint64_t bits = in.u64();
            double scale;
            std::memcpy(&scale, &bits, 8);
            if (op & 1) scale = (double)(bits % 1000) / 100.0;
            double before = 0, after = -1;
            smyrf_config_get_scale(cfg, &before);
            const smyrf_status st = smyrf_config_set_scale(cfg, scale);
            // 0, or a positive value fp32 represents
            const bool ok = scale == 0.0 || (scale >= FLT_TRUE_MIN && scale <= FLT_MAX);
            if (st != SMYRF_OK) check_failure(st, "smyrf_config_set_scale");
            FUZZ_REQUIRE(st == SMYRF_OK || !ok, "set_scale refuses a valid scale");
            FUZZ_REQUIRE(st != SMYRF_OK || ok, "set_scale accepts NaN, inf, < 0 or beyond fp32");
            smyrf_config_get_scale(cfg, &after);
            std::memcpy(&bits, &after, 8);
            FUZZ_REQUIRE(st == SMYRF_OK ? after == scale : std::memcmp(&after, &before, 8) == 0,
                         "scale set / get");
        } else {
            // NULL arguments: refused with a message, nothing crashes, nothing written.
            int64_t v = kKept, lower = kKept, upper = kKept;
            double scale = kKeptScale;
            check_failure(smyrf_config_set(nullptr, SMYRF_PARAM_BATCH, 1), "set(NULL)");
            check_failure(smyrf_config_get(cfg, SMYRF_PARAM_BATCH, nullptr), "get(.., NULL)");
            check_failure(smyrf_config_get(nullptr, SMYRF_PARAM_BATCH, &v), "get(NULL)");
            check_failure(smyrf_config_get_scale(nullptr, &scale), "get_scale(NULL)");
            check_failure(smyrf_plan_get(nullptr, SMYRF_PARAM_BATCH, &v), "plan_get(NULL)");
            check_failure(smyrf_plan_get_scale(nullptr, &scale), "plan_get_scale(NULL)");
            check_failure(smyrf_param_bounds(SMYRF_PARAM_BATCH, nullptr, &upper), "bounds(NULL, ..)");
            check_failure(smyrf_param_bounds(SMYRF_PARAM_BATCH, &lower, nullptr), "bounds(.., NULL)");
            FUZZ_REQUIRE(v == kKept && scale == kKeptScale, "refused get wrote its output");
            FUZZ_REQUIRE(lower == kKept && upper == kKept, "refused bounds wrote an output");
            check_failure(smyrf_plan_create(nullptr, cfg), "plan_create(NULL)");
        }
    }

    // SMYRF plans hold heads x rounds x (d + 2) hash directions; skip the configs whose
    // directions alone exceed 4 MiB (a legitimate std::bad_alloc there is reported by
    // AddressSanitizer as a crash rather than thrown).
    int64_t mode = 0, heads = 0, rounds = 0, dim = 0;
    smyrf_config_get(cfg, SMYRF_PARAM_MODE, &mode);
    smyrf_config_get(cfg, SMYRF_PARAM_HEADS, &heads);
    smyrf_config_get(cfg, SMYRF_PARAM_N_HASHES, &rounds);
    smyrf_config_get(cfg, SMYRF_PARAM_QK_DIM, &dim);
    if (mode == SMYRF_MODE_SMYRF && (double)heads * rounds * (dim + 2) * 4 > 4.0 * (1 << 20)) {
        smyrf_config_destroy(cfg);
        return 0;
    }

    smyrf_plan *const sentinel = (smyrf_plan *)(uintptr_t)0x5a5a;
    smyrf_plan *plan = sentinel;
    const smyrf_status st = smyrf_plan_create(&plan, cfg);
    if (st != SMYRF_OK) {
        check_failure(st, "smyrf_plan_create");
        FUZZ_REQUIRE(plan == sentinel, "plan written on failure");
        smyrf_config_destroy(cfg);
        return 0;
    }
    for (int p = 0; p <= SMYRF_PARAM_EXPAND; p++) {
        int64_t lower, upper, v = 0, set = 0;
        FUZZ_REQUIRE(smyrf_param_bounds((smyrf_param)p, &lower, &upper) == SMYRF_OK, "bounds");
        FUZZ_REQUIRE(smyrf_plan_get(plan, (smyrf_param)p, &v) == SMYRF_OK, "plan_get");
        smyrf_config_get(cfg, (smyrf_param)p, &set);
        // A resolved value is the set one unless the parameter says "0 = derived" (or,
        // for the query cluster, is capped at Q_LEN; THREADS 0 = all hardware threads).
        if (p != SMYRF_PARAM_SINKS && p != SMYRF_PARAM_SEED)
            FUZZ_REQUIRE(v >= 0, "resolved value negative");
        if (set != 0 && p != SMYRF_PARAM_Q_CLUSTER_SIZE && p != SMYRF_PARAM_SINKS && p != SMYRF_PARAM_EXPAND &&
            p != SMYRF_PARAM_BUDGET && p != SMYRF_PARAM_WINDOW && p != SMYRF_PARAM_SUMMARIES &&
            p != SMYRF_PARAM_K_CLUSTER_SIZE && !(mode != SMYRF_MODE_HYBRID && ((p >= SMYRF_PARAM_BUDGET && p <= SMYRF_PARAM_KMEANS_ITERS) ||
                                               p == SMYRF_PARAM_EXPAND)))
            FUZZ_REQUIRE(v == set, smyrf_param_name((smyrf_param)p));
    }
    // Unknown ids: refused, the output kept.
    const int unknown[] = {-1, SMYRF_PARAM_EXPAND + 1};
    for (int p : unknown) {
        int64_t v = kKept;
        check_failure(smyrf_plan_get(plan, (smyrf_param)p, &v), "plan_get(unknown)");
        FUZZ_REQUIRE(v == kKept, "plan_get wrote its value on failure");
    }
    double scale = 0, set_scale = 0;
    FUZZ_REQUIRE(smyrf_plan_get_scale(plan, &scale) == SMYRF_OK, "plan_get_scale");
    smyrf_config_get_scale(cfg, &set_scale);
    FUZZ_REQUIRE(std::isfinite(scale) && scale > 0, "resolved scale");
    FUZZ_REQUIRE(set_scale == 0 || scale == set_scale, "scale kept");
    // The config may change or go: the plan copied what it needs.
    smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, 1);
    smyrf_config_destroy(cfg);
    (void)smyrf_plan_workspace_size(plan);
    const char *backend = smyrf_plan_backend_name(plan);
    FUZZ_REQUIRE(backend && (!std::strcmp(backend, "cpu") || !std::strcmp(backend, "cuda")), "backend name");
    smyrf_plan_destroy(plan);
    return 0;
}
