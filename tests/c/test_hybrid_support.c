#include "test_hybrid_support.h"

#include <math.h>
#include <stdlib.h>

smyrf_config *th_config(const tc_shape *s, const th_params *hp) {
    smyrf_config *cfg = tc_config(s, SMYRF_MODE_HYBRID);
    if (hp->budget) tc_set(cfg, SMYRF_PARAM_BUDGET, hp->budget);
    if (hp->window) tc_set(cfg, SMYRF_PARAM_WINDOW, hp->window);
    if (hp->summaries) tc_set(cfg, SMYRF_PARAM_SUMMARIES, hp->summaries);
    tc_set(cfg, SMYRF_PARAM_SINKS, hp->sinks);
    if (hp->kmeans_iters) tc_set(cfg, SMYRF_PARAM_KMEANS_ITERS, hp->kmeans_iters);
    if (hp->threads) tc_set(cfg, SMYRF_PARAM_THREADS, hp->threads);
    tc_set(cfg, SMYRF_PARAM_SEED, (int64_t)hp->seed);
    return cfg;
}

smyrf_plan *th_plan(const tc_shape *s, const th_params *hp) {
    smyrf_config *cfg = th_config(s, hp);
    smyrf_plan *plan = tc_plan(cfg);
    smyrf_config_destroy(cfg);
    return plan;
}

static int64_t get(const smyrf_plan *plan, smyrf_param p) {
    int64_t v = 0;
    assert_int_equal(smyrf_plan_get(plan, p, &v), SMYRF_OK);
    return v;
}

smyrf_ref_hybrid_params th_resolved(const smyrf_plan *plan) {
    smyrf_ref_hybrid_params r;
    r.budget = get(plan, SMYRF_PARAM_BUDGET);
    r.window = get(plan, SMYRF_PARAM_WINDOW);
    r.summaries = get(plan, SMYRF_PARAM_SUMMARIES);
    r.sinks = get(plan, SMYRF_PARAM_SINKS);
    r.kmeans_iters = get(plan, SMYRF_PARAM_KMEANS_ITERS);
    r.expand = get(plan, SMYRF_PARAM_EXPAND);
    r.seed = (uint64_t)get(plan, SMYRF_PARAM_SEED);
    return r;
}

void th_check_reference(const smyrf_plan *plan, const tc_inputs *in, double rtol,
                        const char *what) {
    const smyrf_ref_problem rp = tc_ref_problem(in);
    const smyrf_ref_hybrid_params hp = th_resolved(plan);
    double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
    smyrf_ref_hybrid(&rp, &hp, 0, want, want_lse);
    float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
    tc_run(plan, in, out, lse);
    tc_assert_close(out, want, in->no_el, (size_t)in->s.v_dim, NULL, rtol, 0, what);
    tc_assert_lse_close(lse, want_lse, in->nlse, NULL, rtol, what);
    free(out), free(lse), free(want), free(want_lse);
}

const th_case th_shapes[] = {
    {"square, default split of 32", {1, 1, 0, 300, 0, 16, 0, 0}, 0, {32, 0, 0, -1, 0, 0, 1}},
    {"two batches, heads, padding", {2, 3, 0, 150, 0, 16, 8, 0}, 0.7, {24, 0, 0, -1, 0, 0, 2}},
    {"GQA 4 over 2, more keys", {1, 4, 2, 70, 260, 16, 0, 0}, 0, {40, 0, 0, -1, 3, 0, 3}},
    {"few queries, long keys", {1, 1, 0, 5, 700, 8, 0, 0}, 0, {20, 0, 0, -1, 0, 0, 4}},
    {"more queries than keys", {1, 2, 1, 400, 90, 12, 5, 0}, 0.8, {16, 0, 0, -1, 0, 0, 5}},
    {"no sinks, one iteration", {1, 1, 0, 200, 0, 16, 0, 0}, 0, {0, 20, 5, 0, 1, 0, 6}},
    {"one sink, many groups", {1, 1, 0, 200, 0, 16, 0, 0}, 0.9, {0, 9, 30, 1, 4, 0, 7}},
    {"window of one", {1, 1, 0, 120, 0, 8, 0, 0}, 0, {0, 1, 4, 2, 2, 0, 8}},
    {"causal square", {1, 2, 0, 257, 0, 16, 0, 1}, 0, {32, 0, 0, -1, 0, 0, 9}},
    {"causal, keys past the queries", {2, 1, 0, 60, 300, 16, 0, 1}, 0.6, {24, 0, 0, -1, 0, 0, 10}},
    {"causal, queries past the keys", {1, 1, 0, 300, 80, 16, 0, 1}, 0, {20, 0, 0, -1, 0, 0, 11}},
    {"causal, padded, GQA, no sinks", {2, 4, 1, 129, 129, 32, 16, 1}, 0.5, {0, 10, 7, 0, 0, 0, 12}},
    {"causal, one sink, blocks of one", {1, 1, 0, 90, 0, 8, 0, 1}, 0, {0, 8, 90, 1, 0, 0, 13}},
};
const size_t th_shape_count = sizeof th_shapes / sizeof th_shapes[0];

th_grads th_run_backward(const smyrf_plan *plan, const tc_inputs *in, const float *dout) {
    float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
    tc_run(plan, in, out, lse);
    th_grads g = {tc_nan_floats(in->nq_el), tc_nan_floats(in->nk_el), tc_nan_floats(in->nv_el)};
    const smyrf_status st = smyrf_execute_backward(plan, in->q, in->k, in->v, in->mask, out, lse,
                                                   dout, g.dq, g.dk, g.dv, NULL, 0, NULL);
    if (st != SMYRF_OK)
        fail_msg("smyrf_execute_backward: %s: %s", smyrf_status_string(st), smyrf_last_error_message());
    free(out), free(lse);
    return g;
}

static double ref_loss(const tc_inputs *in, const smyrf_ref_hybrid_params *hp, const double *dout) {
    const smyrf_ref_problem rp = tc_ref_problem(in);
    double *out = tc_doubles(in->no_el);
    smyrf_ref_hybrid(&rp, hp, 0, out, NULL);
    double l = 0;
    for (size_t e = 0; e < in->no_el; e++) l += dout[e] * out[e];
    free(out);
    return l;
}

void th_check_fd(const tc_inputs *in, const smyrf_ref_hybrid_params *hp, const double *dout,
                 double *x, size_t n, const double *grad, const char *what, const char *name) {
    const double h = 1e-5;
    const double big = tc_max_abs(grad, n);
    for (size_t e = 0; e < n; e++) {
        const double keep = x[e];
        x[e] = keep + h;
        const double up = ref_loss(in, hp, dout);
        x[e] = keep - h;
        const double down = ref_loss(in, hp, dout);
        x[e] = keep;
        const double fd = (up - down) / (2 * h);
        if (!(fabs(fd - grad[e]) <= 1e-7 * (1 + big)))
            fail_msg("%s: %s[%zu]: reference gradient %.12g, finite difference %.12g", name, what, e,
                     grad[e], fd);
    }
}
