/* Bad input: one negative test per status code reachable on this build, each with a
 * positive control at the boundary (out of memory: test_out_of_memory.c). A refused call
 * returns its status, names the argument in smyrf_last_error_message(), writes no output
 * and prints nothing. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_SET */
#include "common.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The call returned `want` and its message names `arg`. */
#define expect_status(call, want, arg)                                                    \
    do {                                                                                  \
        const smyrf_status got_ = (call);                                                 \
        if (got_ != (want))                                                               \
            fail_msg("%s: status %d (%s), want %d; message: %s", #call, (int)got_,        \
                     smyrf_status_string(got_), (int)(want), smyrf_last_error_message()); \
        if ((want) != SMYRF_OK && !tc_mentions(smyrf_last_error_message(), (arg)))           \
            fail_msg("%s: message \"%s\" does not name %s", #call,                        \
                     smyrf_last_error_message(), (arg));                                  \
    } while (0)
#define expect_ok(call) expect_status(call, SMYRF_OK, "")
#define expect_invalid(call, arg) expect_status(call, SMYRF_ERR_INVALID_ARGUMENT, arg)

/* What a getter's outputs hold before a call that must refuse, and still hold after it. */
#define KEPT_I64 ((int64_t)0x5a5a5a5a5a5a5a5aLL)
#define KEPT_SCALE (-7.25)
#define expect_kept_i64(x) assert_true((x) == KEPT_I64)
#define expect_kept_scale(x) assert_true((x) == KEPT_SCALE)

/* A small valid shape and its inputs, for the execute and plan tests. */
static const tc_shape small = {2, 2, 1, 40, 50, 8, 4, 1};

/* ---------------------------------------------------------------- status strings */

static void status_strings(void **state) {
    (void)state;
    const char *seen[7];
    for (int s = 0; s <= SMYRF_ERR_INTERNAL; s++) {
        seen[s] = smyrf_status_string((smyrf_status)s);
        assert_non_null(seen[s]);
        assert_true(strlen(seen[s]) > 0);
        assert_string_not_equal(seen[s], "unknown status");
        for (int t = 0; t < s; t++) assert_string_not_equal(seen[s], seen[t]);
    }
    const int unknown[] = {-1, 7, 1000};
    for (int i = 0; i < 3; i++)
        assert_string_equal(smyrf_status_string((smyrf_status)unknown[i]), "unknown status");
    assert_int_equal(smyrf_version_number(), SMYRF_VERSION_NUMBER);
}

/* ---------------------------------------------------------------- config */

static void config_null_pointers(void **state) {
    (void)state;
    smyrf_config *cfg = NULL;
    int64_t v = KEPT_I64;
    double scale = KEPT_SCALE;
    expect_invalid(smyrf_config_create(NULL), "cfg");
    expect_invalid(smyrf_config_set(NULL, SMYRF_PARAM_Q_LEN, 4), "cfg");
    expect_invalid(smyrf_config_get(NULL, SMYRF_PARAM_Q_LEN, &v), "cfg");
    expect_kept_i64(v);
    expect_invalid(smyrf_config_set_scale(NULL, 1.0), "cfg");
    expect_invalid(smyrf_config_get_scale(NULL, &scale), "cfg");
    expect_kept_scale(scale);
    expect_ok(smyrf_config_create(&cfg));
    expect_invalid(smyrf_config_get(cfg, SMYRF_PARAM_Q_LEN, NULL), "value");
    expect_invalid(smyrf_config_get_scale(cfg, NULL), "scale");
    /* one output NULL: the other is not written either */
    int64_t lo = KEPT_I64, hi = KEPT_I64;
    expect_invalid(smyrf_param_bounds(SMYRF_PARAM_Q_LEN, NULL, &hi), "lower");
    expect_kept_i64(hi);
    expect_invalid(smyrf_param_bounds(SMYRF_PARAM_Q_LEN, &lo, NULL), "upper");
    expect_kept_i64(lo);
    smyrf_config_destroy(cfg);
    smyrf_config_destroy(NULL); /* a no-op */
}

/* Every parameter takes exactly its bounds: the lower and upper bound are accepted, one
 * step outside is refused with the parameter's name, and the config keeps its value. */
static void every_param_at_its_bounds(void **state) {
    (void)state;
    smyrf_config *cfg;
    expect_ok(smyrf_config_create(&cfg));
    for (int p = SMYRF_PARAM_BATCH; p <= SMYRF_PARAM_EXPAND; p++) {
        const smyrf_param prm = (smyrf_param)p;
        const char *name = smyrf_param_name(prm);
        assert_non_null(name);
        assert_memory_equal(name, "SMYRF_PARAM_", 12);
        int64_t lo, hi, before, after;
        expect_ok(smyrf_param_bounds(prm, &lo, &hi));
        assert_true(lo <= hi);
        expect_ok(smyrf_config_set(cfg, prm, lo));
        expect_ok(smyrf_config_get(cfg, prm, &after));
        assert_true(after == lo);
        expect_ok(smyrf_config_set(cfg, prm, hi));
        expect_ok(smyrf_config_get(cfg, prm, &before));
        assert_true(before == hi);
        if (lo > INT64_MIN) expect_invalid(smyrf_config_set(cfg, prm, lo - 1), name);
        if (hi < INT64_MAX) expect_invalid(smyrf_config_set(cfg, prm, hi + 1), name);
        if (lo > INT64_MIN) expect_invalid(smyrf_config_set(cfg, prm, INT64_MIN), name);
        if (hi < INT64_MAX) expect_invalid(smyrf_config_set(cfg, prm, INT64_MAX), name);
        expect_ok(smyrf_config_get(cfg, prm, &after));
        assert_true(after == before); /* refused sets change nothing */
    }
    smyrf_config_destroy(cfg);
}

/* Enum parameters accept their enumerators and nothing past the last. */
static void enum_params_refuse_unknown_values(void **state) {
    (void)state;
    const struct { smyrf_param p; int64_t last; } enums[] = {
        {SMYRF_PARAM_MODE, SMYRF_MODE_HYBRID},    {SMYRF_PARAM_DTYPE, SMYRF_DTYPE_BF16},
        {SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CUDA}, {SMYRF_PARAM_LAYOUT, SMYRF_LAYOUT_BNHD},
        {SMYRF_PARAM_CAUSAL, 1},
    };
    smyrf_config *cfg;
    expect_ok(smyrf_config_create(&cfg));
    for (size_t i = 0; i < sizeof enums / sizeof enums[0]; i++) {
        const char *name = smyrf_param_name(enums[i].p);
        for (int64_t v = 0; v <= enums[i].last; v++) expect_ok(smyrf_config_set(cfg, enums[i].p, v));
        expect_invalid(smyrf_config_set(cfg, enums[i].p, enums[i].last + 1), name);
        expect_invalid(smyrf_config_set(cfg, enums[i].p, -1), name);
    }
    smyrf_config_destroy(cfg);
}

static void unknown_params(void **state) {
    (void)state;
    smyrf_config *cfg = tc_config(&small, SMYRF_MODE_SMYRF);
    smyrf_plan *plan = tc_plan(cfg);
    int64_t v = KEPT_I64, lo = KEPT_I64, hi = KEPT_I64;
    const int unknown[] = {-1, SMYRF_PARAM_EXPAND + 1, 1 << 20};
    for (int i = 0; i < 3; i++) {
        const smyrf_param p = (smyrf_param)unknown[i];
        expect_invalid(smyrf_config_set(cfg, p, 1), "smyrf_param");
        expect_invalid(smyrf_config_get(cfg, p, &v), "smyrf_param");
        expect_kept_i64(v);
        expect_invalid(smyrf_plan_get(plan, p, &v), "smyrf_param");
        expect_kept_i64(v);
        expect_invalid(smyrf_param_bounds(p, &lo, &hi), "smyrf_param");
        expect_kept_i64(lo);
        expect_kept_i64(hi);
        assert_null(smyrf_param_name(p));
    }
    /* the last known parameter is known */
    expect_ok(smyrf_param_bounds(SMYRF_PARAM_EXPAND, &lo, &hi));
    smyrf_plan_destroy(plan);
    smyrf_config_destroy(cfg);
}

/* The kernels multiply in fp32: a scale fp32 cannot hold (it would round to inf, every
 * output NaN, or to 0) is refused; the bounds themselves are accepted. */
static void scale_must_be_finite_and_positive(void **state) {
    (void)state;
    smyrf_config *cfg;
    double got;
    expect_ok(smyrf_config_create(&cfg));
    const double tiny = ldexp(1.0, -149); /* FLT_TRUE_MIN (C11), the least positive fp32 */
    const double bad[] = {-1.0, -1e-300, NAN, INFINITY, -INFINITY, 1e301, 4e38,
                          (double)FLT_MAX * (1 + 1e-15), 1e-300, tiny / 2};
    for (int i = 0; i < 10; i++) expect_invalid(smyrf_config_set_scale(cfg, bad[i]), "scale");
    expect_ok(smyrf_config_get_scale(cfg, &got));
    assert_true(got == 0.0); /* unchanged: the default */
    const double good[] = {tiny, FLT_MAX, 3e38, 1e-30, 0.125, 0.0};
    for (int i = 0; i < 6; i++) {
        expect_ok(smyrf_config_set_scale(cfg, good[i]));
        expect_ok(smyrf_config_get_scale(cfg, &got));
        assert_true(got == good[i]);
    }
    smyrf_config_destroy(cfg);
}

/* ---------------------------------------------------------------- plans */

/* Creates a plan from cfg expecting `want`; on failure the handle stays untouched. */
#define expect_plan(cfg, want, arg) expect_plan_at(cfg, want, arg, __LINE__)
static void expect_plan_at(const smyrf_config *cfg, smyrf_status want, const char *arg, int line) {
    smyrf_plan *plan = (smyrf_plan *)(uintptr_t)0x1234;
    const smyrf_status got = smyrf_plan_create(&plan, cfg);
    if (got != want)
        fail_msg("line %d: smyrf_plan_create: status %d (%s), want %d (%s)%s%s", line, (int)got,
                 smyrf_status_string(got), (int)want, smyrf_status_string(want),
                 got != SMYRF_OK ? "; message: " : "", got != SMYRF_OK ? smyrf_last_error_message() : "");
    expect_status(got, want, arg);
    if (want == SMYRF_OK) {
        assert_non_null(plan);
        smyrf_plan_destroy(plan);
    } else {
        assert_ptr_equal(plan, (smyrf_plan *)(uintptr_t)0x1234);
    }
}

static smyrf_config *small_config(void) { return tc_config(&small, SMYRF_MODE_SMYRF); }

static void plan_null_pointers(void **state) {
    (void)state;
    smyrf_config *cfg = small_config();
    smyrf_plan *plan;
    int64_t v = KEPT_I64;
    double scale = KEPT_SCALE;
    expect_invalid(smyrf_plan_create(NULL, cfg), "plan");
    expect_invalid(smyrf_plan_create(&plan, NULL), "cfg");
    expect_invalid(smyrf_plan_get(NULL, SMYRF_PARAM_Q_LEN, &v), "plan");
    expect_kept_i64(v);
    expect_invalid(smyrf_plan_get_scale(NULL, &scale), "plan");
    expect_kept_scale(scale);
    plan = tc_plan(cfg);
    expect_invalid(smyrf_plan_get(plan, SMYRF_PARAM_Q_LEN, NULL), "value");
    expect_invalid(smyrf_plan_get(plan, (smyrf_param)-1, &v), "smyrf_param");
    expect_kept_i64(v);
    expect_invalid(smyrf_plan_get_scale(plan, NULL), "scale");
    assert_int_equal(smyrf_plan_workspace_size(NULL), 0);
    assert_string_equal(smyrf_plan_backend_name(NULL), "");
    assert_string_equal(smyrf_plan_backend_name(plan), "cpu");
    smyrf_plan_destroy(plan);
    smyrf_plan_destroy(NULL); /* a no-op */
    smyrf_config_destroy(cfg);
}

/* smyrf_plan_get reports resolved values: derived sizes, clamped cluster size, the
 * key cap of the balanced cut, thread count, strides of the layout, and the scale. */
static void plan_reports_resolved_values(void **state) {
    (void)state;
    smyrf_config *cfg;
    expect_ok(smyrf_config_create(&cfg));
    tc_set(cfg, SMYRF_PARAM_Q_LEN, 100);
    tc_set(cfg, SMYRF_PARAM_QK_DIM, 16);
    tc_set(cfg, SMYRF_PARAM_HEADS, 4);
    tc_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 30); /* C = 4: ceil(100 / 4) = 25 keys */
    tc_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU);
    smyrf_plan *plan = tc_plan(cfg);
    const struct { smyrf_param p; int64_t want; } resolved[] = {
        {SMYRF_PARAM_K_LEN, 100}, {SMYRF_PARAM_V_DIM, 16}, {SMYRF_PARAM_KV_HEADS, 4},
        {SMYRF_PARAM_K_CLUSTER_SIZE, 25}, {SMYRF_PARAM_Q_STRIDE_TOKEN, 16},
        {SMYRF_PARAM_Q_STRIDE_HEAD, 1600}, {SMYRF_PARAM_OUT_STRIDE_BATCH, 6400},
    };
    int64_t v;
    for (size_t i = 0; i < sizeof resolved / sizeof resolved[0]; i++) {
        expect_ok(smyrf_plan_get(plan, resolved[i].p, &v));
        if (v != resolved[i].want)
            fail_msg("%s = %lld, want %lld", smyrf_param_name(resolved[i].p), (long long)v,
                     (long long)resolved[i].want);
    }
    /* 0 threads resolves to the CPUs this thread may run on, not the machine's count */
    cpu_set_t all, one;
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    expect_ok(smyrf_plan_get(plan, SMYRF_PARAM_THREADS, &v));
    assert_int_equal(v, CPU_COUNT(&all));
    smyrf_plan_destroy(plan);
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &all)) {
            CPU_SET(cpu, &one);
            break;
        }
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    plan = tc_plan(cfg);
    assert_int_equal(sched_setaffinity(0, sizeof all, &all), 0);
    expect_ok(smyrf_plan_get(plan, SMYRF_PARAM_THREADS, &v));
    assert_int_equal(v, 1);
    double scale;
    expect_ok(smyrf_plan_get_scale(plan, &scale));
    assert_true(scale == 0.25);
    smyrf_plan_destroy(plan);
    /* one cluster: q_cluster_size is clamped to q_len */
    tc_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 1000);
    plan = tc_plan(cfg);
    expect_ok(smyrf_plan_get(plan, SMYRF_PARAM_Q_CLUSTER_SIZE, &v));
    assert_true(v == 100);
    smyrf_plan_destroy(plan);
    smyrf_config_destroy(cfg);
}

/* smyrf_plan_get(plan, p[i]) == want[i] for each i. */
static void expect_read_back(const smyrf_plan *plan, const smyrf_param *p, const int64_t *want,
                             size_t n) {
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        expect_ok(smyrf_plan_get(plan, p[i], &v));
        if (v != want[i])
            fail_msg("%s = %lld, want %lld", smyrf_param_name(p[i]), (long long)v,
                     (long long)want[i]);
    }
}

/* Every parameter set explicitly reads back from the plan as it was set (a case of
 * smyrf_plan_get that answered for the wrong field would show here): the sizes, SMYRF's
 * settings and padded strides in one plan, HYBRID's settings in another. */
static void plan_reports_every_set_value(void **state) {
    (void)state;
    /* q [2, 4, 50, 8] with rows of 10 floats and gaps between heads and batches; k, v
     * [2, 2, 70, 8 / 12] and out [2, 4, 50, 12], each with its own padding */
    const smyrf_param p[] = {
        SMYRF_PARAM_BATCH, SMYRF_PARAM_HEADS, SMYRF_PARAM_KV_HEADS, SMYRF_PARAM_Q_LEN,
        SMYRF_PARAM_K_LEN, SMYRF_PARAM_QK_DIM, SMYRF_PARAM_V_DIM, SMYRF_PARAM_MODE,
        SMYRF_PARAM_N_HASHES, SMYRF_PARAM_Q_CLUSTER_SIZE, SMYRF_PARAM_K_CLUSTER_SIZE,
        SMYRF_PARAM_CAUSAL, SMYRF_PARAM_SEED, SMYRF_PARAM_DTYPE, SMYRF_PARAM_BACKEND,
        SMYRF_PARAM_DEVICE, SMYRF_PARAM_THREADS, SMYRF_PARAM_LAYOUT,
        SMYRF_PARAM_Q_STRIDE_BATCH, SMYRF_PARAM_Q_STRIDE_HEAD, SMYRF_PARAM_Q_STRIDE_TOKEN,
        SMYRF_PARAM_K_STRIDE_BATCH, SMYRF_PARAM_K_STRIDE_HEAD, SMYRF_PARAM_K_STRIDE_TOKEN,
        SMYRF_PARAM_V_STRIDE_BATCH, SMYRF_PARAM_V_STRIDE_HEAD, SMYRF_PARAM_V_STRIDE_TOKEN,
        SMYRF_PARAM_OUT_STRIDE_BATCH, SMYRF_PARAM_OUT_STRIDE_HEAD, SMYRF_PARAM_OUT_STRIDE_TOKEN,
    };
    const int64_t want[] = {
        2, 4, 2, 50, 70, 8, 12, SMYRF_MODE_SMYRF, 3, 10, 20, 1, 1234, SMYRF_DTYPE_F32,
        SMYRF_BACKEND_CPU, 0, 2, SMYRF_LAYOUT_BHND,
        2017, 503, 10, 1130, 565, 8, 2250, 1121, 16, 2500, 612, 12,
    };
    smyrf_config *cfg;
    expect_ok(smyrf_config_create(&cfg));
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) tc_set(cfg, p[i], want[i]);
    smyrf_plan *plan = tc_plan(cfg);
    expect_read_back(plan, p, want, sizeof p / sizeof p[0]);
    smyrf_plan_destroy(plan);
    smyrf_config_destroy(cfg);

    const smyrf_param hp[] = {SMYRF_PARAM_MODE, SMYRF_PARAM_BUDGET, SMYRF_PARAM_WINDOW,
                              SMYRF_PARAM_SUMMARIES, SMYRF_PARAM_SINKS,
                              SMYRF_PARAM_KMEANS_ITERS, SMYRF_PARAM_EXPAND};
    const int64_t hwant[] = {SMYRF_MODE_HYBRID, 40, 20, 8, 1, 3, 11};
    expect_ok(smyrf_config_create(&cfg));
    tc_set(cfg, SMYRF_PARAM_Q_LEN, 300);
    tc_set(cfg, SMYRF_PARAM_QK_DIM, 8);
    tc_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU);
    for (size_t i = 0; i < sizeof hp / sizeof hp[0]; i++) tc_set(cfg, hp[i], hwant[i]);
    plan = tc_plan(cfg);
    expect_read_back(plan, hp, hwant, sizeof hp / sizeof hp[0]);
    smyrf_plan_destroy(plan);
    smyrf_config_destroy(cfg);
}

/* Required sizes: Q_LEN and QK_DIM must be set (0 means unset); 1 is the smallest. */
static void required_sizes(void **state) {
    (void)state;
    const smyrf_param required[] = {SMYRF_PARAM_Q_LEN, SMYRF_PARAM_QK_DIM};
    for (int i = 0; i < 2; i++) {
        smyrf_config *cfg = small_config();
        tc_set(cfg, required[i], 0);
        expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, smyrf_param_name(required[i]));
        tc_set(cfg, required[i], 1);
        expect_plan(cfg, SMYRF_OK, "");
        smyrf_config_destroy(cfg);
    }
}

static void kv_heads_must_divide_heads(void **state) {
    (void)state;
    smyrf_config *cfg = small_config();
    tc_set(cfg, SMYRF_PARAM_HEADS, 6);
    const int64_t bad[] = {4, 5}, good[] = {1, 2, 3, 6, 0};
    for (int i = 0; i < 2; i++) {
        tc_set(cfg, SMYRF_PARAM_KV_HEADS, bad[i]);
        expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "does not divide");
        assert_true(tc_mentions(smyrf_last_error_message(), "SMYRF_PARAM_KV_HEADS"));
    }
    tc_set(cfg, SMYRF_PARAM_KV_HEADS, 12);
    expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "exceeds");
    assert_true(tc_mentions(smyrf_last_error_message(), "SMYRF_PARAM_KV_HEADS"));
    for (int i = 0; i < 5; i++) {
        tc_set(cfg, SMYRF_PARAM_KV_HEADS, good[i]);
        expect_plan(cfg, SMYRF_OK, "");
    }
    smyrf_config_destroy(cfg);
}

/* k_cluster_size caps the keys per cluster; the balanced cut needs ceil(Nk / C). */
static void k_cluster_size_cap(void **state) {
    (void)state;
    smyrf_config *cfg = small_config();
    tc_set(cfg, SMYRF_PARAM_Q_LEN, 100);
    tc_set(cfg, SMYRF_PARAM_K_LEN, 101);
    tc_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 10); /* C = 10: ceil(101 / 10) = 11 keys */
    tc_set(cfg, SMYRF_PARAM_K_CLUSTER_SIZE, 10);
    expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "SMYRF_PARAM_K_CLUSTER_SIZE");
    tc_set(cfg, SMYRF_PARAM_K_CLUSTER_SIZE, 11);
    expect_plan(cfg, SMYRF_OK, "");
    smyrf_config_destroy(cfg);
}

/* Size products that overflow 64 bits (elements times element size) are refused; the
 * largest product that fits is accepted (the plan allocates nothing that large). */
static void size_products_overflow(void **state) {
    (void)state;
    smyrf_config *cfg = small_config();
    tc_set(cfg, SMYRF_PARAM_KV_HEADS, 0);
    tc_set(cfg, SMYRF_PARAM_K_LEN, 0);
    tc_set(cfg, SMYRF_PARAM_V_DIM, 0);
    tc_set(cfg, SMYRF_PARAM_BATCH, INT32_MAX);
    tc_set(cfg, SMYRF_PARAM_HEADS, 65536);
    tc_set(cfg, SMYRF_PARAM_QK_DIM, 1);
    /* (2^31 - 1) 2^16 2^14 elements of 4 bytes: just below 2^63 */
    tc_set(cfg, SMYRF_PARAM_Q_LEN, 1 << 14);
    expect_plan(cfg, SMYRF_OK, "");
    tc_set(cfg, SMYRF_PARAM_Q_LEN, (1 << 14) + 1);
    expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "q");
    tc_set(cfg, SMYRF_PARAM_Q_LEN, INT32_MAX);
    tc_set(cfg, SMYRF_PARAM_QK_DIM, 65536);
    expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "q");
    smyrf_config_destroy(cfg);
}

/* The workspace size never wraps around: a bigger problem never reports a smaller
 * workspace (or its plan is refused). One cluster needs a cq x ck score block, which for
 * Nq = Nk = 2^31 - 1 is 2^64 bytes. */
static void workspace_size_does_not_wrap(void **state) {
    (void)state;
    size_t last = 0;
    const int64_t lens[] = {1 << 16, 1 << 20, 1 << 24, INT32_MAX};
    for (int i = 0; i < 4; i++) {
        smyrf_config *cfg;
        expect_ok(smyrf_config_create(&cfg));
        tc_set(cfg, SMYRF_PARAM_Q_LEN, lens[i]);
        tc_set(cfg, SMYRF_PARAM_QK_DIM, 1);
        tc_set(cfg, SMYRF_PARAM_THREADS, 1);
        tc_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, INT32_MAX); /* one cluster */
        tc_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU);
        smyrf_plan *plan = NULL;
        const smyrf_status st = smyrf_plan_create(&plan, cfg);
        smyrf_config_destroy(cfg);
        if (st != SMYRF_OK) { /* refusing is fine: as invalid or out of memory */
            assert_true(st == SMYRF_ERR_INVALID_ARGUMENT || st == SMYRF_ERR_OUT_OF_MEMORY);
            break;
        }
        const size_t ws = smyrf_plan_workspace_size(plan);
        smyrf_plan_destroy(plan);
        if (ws < last)
            fail_msg("Nq = Nk = %lld, one cluster: workspace %zu bytes, below the %zu of a "
                     "smaller problem (the size wrapped around)", (long long)lens[i], ws, last);
        last = ws;
    }
}

static void strides_all_or_none(void **state) {
    (void)state;
    const int64_t B = small.batch, H = small.heads, N = small.q_len, D = small.qk_dim;
    const smyrf_param first[] = {SMYRF_PARAM_Q_STRIDE_BATCH, SMYRF_PARAM_K_STRIDE_BATCH,
                                 SMYRF_PARAM_V_STRIDE_BATCH, SMYRF_PARAM_OUT_STRIDE_BATCH};
    (void)B;
    for (int t = 0; t < 4; t++)
        for (int missing = 0; missing < 3; missing++) {
            smyrf_config *cfg = small_config();
            tc_set(cfg, SMYRF_PARAM_HEADS, H), tc_set(cfg, SMYRF_PARAM_KV_HEADS, H);
            tc_set(cfg, SMYRF_PARAM_K_LEN, N), tc_set(cfg, SMYRF_PARAM_V_DIM, D);
            const int64_t s[3] = {H * N * D * 2, N * D * 2, D * 2}; /* every other row */
            for (int i = 0; i < 3; i++)
                if (i != missing) tc_set(cfg, (smyrf_param)(first[t] + i), s[i]);
            expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, smyrf_param_name((smyrf_param)(first[t] + missing)));
            tc_set(cfg, (smyrf_param)(first[t] + missing), s[missing]);
            expect_plan(cfg, SMYRF_OK, "");
            smyrf_config_destroy(cfg);
        }
}

static void stride_limits(void **state) {
    (void)state;
    const int64_t H = small.heads, N = small.q_len, D = small.qk_dim;
    smyrf_config *cfg = small_config();
    /* a token stride below the row length would overlap rows */
    tc_set(cfg, SMYRF_PARAM_Q_STRIDE_BATCH, H * N * D);
    tc_set(cfg, SMYRF_PARAM_Q_STRIDE_HEAD, N * D);
    tc_set(cfg, SMYRF_PARAM_Q_STRIDE_TOKEN, D - 1);
    expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "SMYRF_PARAM_Q_STRIDE_TOKEN");
    tc_set(cfg, SMYRF_PARAM_Q_STRIDE_TOKEN, D);
    expect_plan(cfg, SMYRF_OK, "");
    /* strides whose extent overflows, in elements (batch 2: 1 x INT64_MAX + ...) or in
     * bytes (1 x INT64_MAX / 2 elements of 4 bytes: the byte extent passes 2^64) */
    tc_set(cfg, SMYRF_PARAM_Q_STRIDE_BATCH, INT64_MAX);
    expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "q");
    tc_set(cfg, SMYRF_PARAM_Q_STRIDE_BATCH, INT64_MAX / 2);
    expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "q");
    tc_set(cfg, SMYRF_PARAM_Q_STRIDE_BATCH, INT64_MAX / 8); /* 2^62 bytes: fits */
    expect_plan(cfg, SMYRF_OK, "");
    smyrf_config_destroy(cfg);

    /* out rows overlapping each other (head stride below a row) */
    cfg = small_config();
    const int64_t dv = small.v_dim;
    tc_set(cfg, SMYRF_PARAM_OUT_STRIDE_BATCH, N * H * dv);
    tc_set(cfg, SMYRF_PARAM_OUT_STRIDE_TOKEN, H * dv);
    tc_set(cfg, SMYRF_PARAM_OUT_STRIDE_HEAD, dv - 1);
    expect_plan(cfg, SMYRF_ERR_INVALID_ARGUMENT, "out");
    tc_set(cfg, SMYRF_PARAM_OUT_STRIDE_HEAD, dv);
    expect_plan(cfg, SMYRF_OK, "");
    smyrf_config_destroy(cfg);
}

/* CUDA: unavailable on a CPU-only build or without a device; where a device exists the
 * plan must really be a CUDA plan. */
static void cuda_backend(void **state) {
    (void)state;
    smyrf_config *cfg = small_config();
    tc_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CUDA);
    smyrf_plan *plan = NULL;
    const smyrf_status st = smyrf_plan_create(&plan, cfg);
    if (st == SMYRF_OK) {
        assert_string_equal(smyrf_plan_backend_name(plan), "cuda");
        smyrf_plan_destroy(plan);
    } else {
        assert_int_equal(st, SMYRF_ERR_BACKEND_UNAVAILABLE);
        assert_null(plan);
        assert_true(strstr(smyrf_last_error_message(), "CUDA") || strstr(smyrf_last_error_message(), "cuda"));
    }
    tc_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU);
    expect_plan(cfg, SMYRF_OK, "");
    tc_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_AUTO); /* always finds a backend */
    expect_plan(cfg, SMYRF_OK, "");
    smyrf_config_destroy(cfg);
}

/* The CPU backend plans every mode: HYBRID with its defaults is no refusal. */
static void hybrid_plans_on_the_cpu(void **state) {
    (void)state;
    smyrf_config *cfg = small_config();
    tc_set(cfg, SMYRF_PARAM_MODE, SMYRF_MODE_HYBRID);
    tc_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU);
    expect_plan(cfg, SMYRF_OK, "");
    smyrf_config_destroy(cfg);
}

/* ---------------------------------------------------------------- execute */

typedef struct exec_fixture {
    tc_inputs *in;
    smyrf_plan *plan;
    float *out, *lse;        /* filled with a pattern */
    float *out0, *lse0;      /* copies of the pattern */
} exec_fixture;

static exec_fixture fixture(void) {
    exec_fixture f;
    f.in = tc_inputs_create(&small, 3000, 0.7);
    f.plan = tc_smyrf_plan(&f.in->s, 2, 8, 1);
    f.out = (float *)tc_alloc(f.in->no_el * 4), f.out0 = (float *)tc_alloc(f.in->no_el * 4);
    f.lse = (float *)tc_alloc(f.in->nlse * 4), f.lse0 = (float *)tc_alloc(f.in->nlse * 4);
    memset(f.out, 0x5a, f.in->no_el * 4), memset(f.out0, 0x5a, f.in->no_el * 4);
    memset(f.lse, 0x5a, f.in->nlse * 4), memset(f.lse0, 0x5a, f.in->nlse * 4);
    return f;
}

static void untouched(const exec_fixture *f) {
    tc_assert_same_bits(f->out, f->out0, f->in->no_el * 4, "out after a refused call");
    tc_assert_same_bits(f->lse, f->lse0, f->in->nlse * 4, "lse after a refused call");
}

static void release(exec_fixture *f) {
    smyrf_plan_destroy(f->plan);
    free(f->out), free(f->out0), free(f->lse), free(f->lse0);
    tc_inputs_destroy(f->in);
}

static void execute_null_pointers(void **state) {
    (void)state;
    exec_fixture f = fixture();
    const tc_inputs *in = f.in;
    expect_invalid(smyrf_execute(NULL, in->q, in->k, in->v, in->mask, f.out, f.lse, NULL, 0, NULL), "plan");
    expect_invalid(smyrf_execute(f.plan, NULL, in->k, in->v, in->mask, f.out, f.lse, NULL, 0, NULL), "q");
    expect_invalid(smyrf_execute(f.plan, in->q, NULL, in->v, in->mask, f.out, f.lse, NULL, 0, NULL), "k");
    expect_invalid(smyrf_execute(f.plan, in->q, in->k, NULL, in->mask, f.out, f.lse, NULL, 0, NULL), "v");
    expect_invalid(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, NULL, f.lse, NULL, 0, NULL), "out");
    untouched(&f);
    /* positive control: the optional ones (mask, lse, workspace, stream) may be NULL */
    expect_ok(smyrf_execute(f.plan, in->q, in->k, in->v, NULL, f.out, NULL, NULL, 0, NULL));
    release(&f);
}

static void workspace_too_small(void **state) {
    (void)state;
    exec_fixture f = fixture();
    const tc_inputs *in = f.in;
    const size_t need = smyrf_plan_workspace_size(f.plan);
    assert_true(need > 0);
    char *ws = (char *)tc_alloc(need + 1);
    expect_invalid(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, f.out, f.lse, ws, need - 1, NULL), "workspace_bytes");
    expect_invalid(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, f.out, f.lse, ws, 0, NULL), "workspace_bytes");
    expect_invalid(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, f.out, f.lse, NULL, need, NULL), "workspace");
    untouched(&f);
    /* exactly the size asked for, at an odd address, works and equals the own-workspace run */
    expect_ok(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, f.out, f.lse, ws + 1, need, NULL));
    expect_ok(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, f.out0, f.lse0, NULL, 0, NULL));
    untouched(&f); /* (same bits) */
    free(ws);
    release(&f);
}

/* Tensors off their elements' alignment are refused, naming the tensor; the workspace
 * and the key mask may sit anywhere (workspace_too_small runs one at an odd address). */
static void tensors_must_be_aligned(void **state) {
    (void)state;
    exec_fixture f = fixture();
    const tc_inputs *in = f.in;
    const size_t nq = in->nq_el * 4, no = in->no_el * 4, nl = in->nlse * 4;
    char *q = (char *)tc_alloc(nq + 4), *out = (char *)tc_alloc(no + 4), *lse = (char *)tc_alloc(nl + 4);
    uint8_t *m = (uint8_t *)tc_alloc((size_t)(small.batch * small.k_len) + 1);
    memcpy(q + 2, in->q, nq), memcpy(m + 1, in->mask, (size_t)(small.batch * small.k_len));
    memset(out + 1, 0x5a, no), memset(lse + 1, 0x5a, nl);
    expect_invalid(smyrf_execute(f.plan, q + 2, in->k, in->v, in->mask, f.out, f.lse, NULL, 0, NULL), "q");
    assert_non_null(strstr(smyrf_last_error_message(), "aligned to its 4-byte elements"));
    expect_invalid(smyrf_execute(f.plan, in->q, (char *)in->k + 1, in->v, in->mask, f.out, f.lse, NULL, 0, NULL), "k");
    expect_invalid(smyrf_execute(f.plan, in->q, in->k, (char *)in->v + 3, in->mask, f.out, f.lse, NULL, 0, NULL), "v");
    expect_invalid(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, out + 1, f.lse, NULL, 0, NULL), "out");
    expect_invalid(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, f.out, (float *)(lse + 1), NULL, 0, NULL), "lse");
    untouched(&f);
    for (size_t i = 0; i < no; i++) assert_int_equal((unsigned char)out[1 + i], 0x5a);
    /* positive control: aligned tensors with a mask at an odd address, same bits */
    expect_ok(smyrf_execute(f.plan, in->q, in->k, in->v, m + 1, f.out, f.lse, NULL, 0, NULL));
    expect_ok(smyrf_execute(f.plan, in->q, in->k, in->v, in->mask, f.out0, f.lse0, NULL, 0, NULL));
    untouched(&f); /* (same bits) */
    /* fp16: 2-byte elements, so a 2-byte offset is aligned and a 1-byte one is not */
    smyrf_config *cfg = tc_config(&in->s, SMYRF_MODE_DENSE);
    tc_set(cfg, SMYRF_PARAM_DTYPE, SMYRF_DTYPE_F16);
    smyrf_plan *half = tc_plan_from(cfg);
    memset(q, 0, nq + 4);
    expect_ok(smyrf_execute(half, q + 2, q + 2, q + 2, NULL, out + 2, NULL, NULL, 0, NULL));
    expect_invalid(smyrf_execute(half, q + 1, q + 2, q + 2, NULL, out + 2, NULL, NULL, 0, NULL), "q");
    assert_non_null(strstr(smyrf_last_error_message(), "aligned to its 2-byte elements"));
    smyrf_plan_destroy(half);
    free(q), free(out), free(lse), free(m);
    release(&f);
}

/* A workspace_bytes that runs past the end of the address space would make the
 * workspace's span wrap around and overlap nothing: refused, and q (the workspace here)
 * is not written. */
static void workspace_bytes_must_fit_the_address_space(void **state) {
    (void)state;
    exec_fixture f = fixture();
    const tc_inputs *in = f.in;
    float *q = (float *)tc_alloc(in->nq_el * 4);
    memcpy(q, in->q, in->nq_el * 4);
    expect_invalid(smyrf_execute(f.plan, q, in->k, in->v, in->mask, f.out, f.lse, q, SIZE_MAX, NULL),
                   "workspace_bytes");
    assert_non_null(strstr(smyrf_last_error_message(), "address space"));
    untouched(&f);
    tc_assert_same_bits(q, in->q, in->nq_el * 4, "q after a refused call");
    /* the same workspace with its real size is caught as overlapping q */
    expect_invalid(smyrf_execute(f.plan, q, in->k, in->v, in->mask, f.out, f.lse, q,
                                 smyrf_plan_workspace_size(f.plan), NULL),
                   "workspace");
    free(q);
    release(&f);
}

/* out, lse and the workspace must not overlap the inputs or each other. Buffers are
 * carved out of one arena so that both overlapping and just-touching views exist. */
static void outputs_must_not_overlap(void **state) {
    (void)state;
    exec_fixture f = fixture();
    const tc_inputs *in = f.in;
    const size_t nq = in->nq_el * 4, nk = in->nk_el * 4, nv = in->nv_el * 4, no = in->no_el * 4;
    const size_t nl = in->nlse * 4, nm = (size_t)(small.batch * small.k_len);
    const size_t need = smyrf_plan_workspace_size(f.plan);
    /* [q][k][v][mask][out][lse][workspace], each right after the previous */
    const size_t total = nq + nk + nv + nm + no + nl + need + 64;
    char *arena = (char *)tc_alloc(total);
    char *q = arena, *k = q + nq, *v = k + nk, *m = v + nv, *out = m + nm, *lse = out + no, *ws = lse + nl;
    memcpy(q, in->q, nq), memcpy(k, in->k, nk), memcpy(v, in->v, nv), memcpy(m, in->mask, nm);
#define RUN(Q, K, V, M, O, L, W) \
    smyrf_execute(f.plan, (Q), (K), (V), (const uint8_t *)(M), (float *)(O), (float *)(L), (W), need, NULL)
    /* touching but not overlapping: accepted */
    expect_ok(RUN(q, k, v, m, out, lse, ws));
    memset(out, 0x5a, no), memset(lse, 0x5a, nl);
    memcpy(f.out0, out, no), memcpy(f.lse0, lse, nl);
    /* out one byte into each input, and the other way round */
    expect_invalid(RUN(q, k, v, m, k - 4, lse, ws), "out");
    expect_invalid(RUN(q, k, v, m, v - 4, lse, ws), "out");
    expect_invalid(RUN(q, k, v, m, m - 4, lse, ws), "out");
    expect_invalid(RUN(q, k, v, m, q, lse, ws), "out");
    expect_invalid(RUN(q, k, v, m, out, q, ws), "lse");
    expect_invalid(RUN(q, k, v, m, out, out + no - 4, ws), "lse");
    expect_invalid(RUN(q, k, v, m, out, lse, out), "workspace");
    expect_invalid(RUN(q, k, v, m, out, lse, v), "workspace");
    expect_invalid(RUN(q, k, v, m, out, lse, lse + nl - 8), "workspace");
#undef RUN
    /* out and lse (the refused calls' targets) hold their pattern still */
    tc_assert_same_bits(out, f.out0, no, "out after refused overlapping calls");
    tc_assert_same_bits(lse, f.lse0, nl, "lse after refused overlapping calls");
    /* and the inputs that were passed as outputs were not written either */
    tc_assert_same_bits(q, in->q, nq, "q after refused overlapping calls");
    tc_assert_same_bits(k, in->k, nk, "k after refused overlapping calls");
    tc_assert_same_bits(v, in->v, nv, "v after refused overlapping calls");
    assert_memory_equal(m, in->mask, nm);
    free(arena);
    release(&f);
}

/* ---------------------------------------------------------------- messages */

/* The last error is per thread: another thread's failure does not replace ours. */
static void *fail_in_thread(void *arg) {
    (void)arg;
    smyrf_config *cfg;
    smyrf_config_create(&cfg);
    smyrf_config_set(cfg, SMYRF_PARAM_THREADS, -5);
    smyrf_config_destroy(cfg);
    return NULL;
}

static void last_error_is_per_thread(void **state) {
    (void)state;
    expect_invalid(smyrf_config_create(NULL), "cfg");
    char mine[256];
    snprintf(mine, sizeof mine, "%s", smyrf_last_error_message());
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
    pthread_join(t, NULL);
    assert_string_equal(smyrf_last_error_message(), mine);
}

/* Refused calls print nothing on stdout or stderr. */
static void refusals_print_nothing(void **state) {
    (void)state;
    fflush(stdout), fflush(stderr);
    FILE *sink = tmpfile();
    assert_non_null(sink);
    const int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(sink), 1), dup2(fileno(sink), 2);

    smyrf_config *cfg = small_config();
    smyrf_plan *plan = NULL;
    smyrf_config_set(cfg, (smyrf_param)99, 1);
    smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, -3);
    smyrf_config_set_scale(cfg, NAN);
    smyrf_config_set(cfg, SMYRF_PARAM_HEADS, 6);
    smyrf_config_set(cfg, SMYRF_PARAM_KV_HEADS, 4);
    const smyrf_status st = smyrf_plan_create(&plan, cfg);
    smyrf_execute(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL);
    smyrf_config_destroy(cfg);

    fflush(stdout), fflush(stderr);
    dup2(saved_out, 1), dup2(saved_err, 2);
    close(saved_out), close(saved_err);
    assert_int_equal(st, SMYRF_ERR_INVALID_ARGUMENT);
    fseek(sink, 0, SEEK_END);
    assert_int_equal(ftell(sink), 0);
    fclose(sink);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_strings),
        cmocka_unit_test(config_null_pointers),
        cmocka_unit_test(every_param_at_its_bounds),
        cmocka_unit_test(enum_params_refuse_unknown_values),
        cmocka_unit_test(unknown_params),
        cmocka_unit_test(scale_must_be_finite_and_positive),
        cmocka_unit_test(plan_null_pointers),
        cmocka_unit_test(plan_reports_resolved_values),
        cmocka_unit_test(plan_reports_every_set_value),
        cmocka_unit_test(required_sizes),
        cmocka_unit_test(kv_heads_must_divide_heads),
        cmocka_unit_test(k_cluster_size_cap),
        cmocka_unit_test(size_products_overflow),
        cmocka_unit_test(workspace_size_does_not_wrap),
        cmocka_unit_test(strides_all_or_none),
        cmocka_unit_test(stride_limits),
        cmocka_unit_test(cuda_backend),
        cmocka_unit_test(hybrid_plans_on_the_cpu),
        cmocka_unit_test(execute_null_pointers),
        cmocka_unit_test(workspace_too_small),
        cmocka_unit_test(tensors_must_be_aligned),
        cmocka_unit_test(workspace_bytes_must_fit_the_address_space),
        cmocka_unit_test(outputs_must_not_overlap),
        cmocka_unit_test(last_error_is_per_thread),
        cmocka_unit_test(refusals_print_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
