/* HYBRID properties that need no reference: causality, padding invariance, bitwise
 * reproducibility over thread counts, and the refusal of impossible parameters. */
#include "test_hybrid_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void run(const smyrf_plan *plan, const tc_inputs *in, float **out, float **lse) {
    *out = tc_nan_floats(in->no_el);
    *lse = tc_nan_floats(in->nlse);
    tc_run(plan, in, *out, *lse);
}

/* Changing keys and values after a query's limit changes none of its output. */
static void causal_ignores_future_keys(void **state) {
    (void)state;
    const tc_shape s = {1, 2, 1, 150, 300, 16, 0, 1};
    const th_params hp = {32, 0, 0, -1, 0, 0, 1};
    tc_inputs *in = tc_inputs_create(&s, 700, 0.8);
    smyrf_plan *plan = th_plan(&in->s, &hp);
    float *before, *lse_before, *after, *lse_after;
    run(plan, in, &before, &lse_before);
    const int64_t cut = 90, first_future = cut + 300 - 150 + 1; /* queries <= cut keep */
    tc_rng r = tc_rng_make(701);
    for (int64_t j = first_future; j < 300; j++) {
        tc_fill_normal(&r, in->k + j * 16, 16, 3.0);
        tc_fill_normal(&r, in->v + j * 16, 16, 3.0);
    }
    run(plan, in, &after, &lse_after);
    for (int64_t h = 0; h < 2; h++) {
        const size_t row0 = (size_t)(h * 150);
        tc_assert_same_bits(before + row0 * 16, after + row0 * 16, (size_t)(cut + 1) * 16 * 4, "out");
        tc_assert_same_bits(lse_before + row0, lse_after + row0, (size_t)(cut + 1) * 4, "lse");
    }
    smyrf_plan_destroy(plan);
    free(before), free(lse_before), free(after), free(lse_after);
    tc_inputs_destroy(in);
}

/* NaN in every padded key, value and padded position's query: valid rows unchanged. */
static void padded_content_changes_nothing(void **state) {
    (void)state;
    const tc_shape shapes[] = {{2, 2, 1, 200, 0, 16, 8, 0}, {2, 2, 1, 200, 0, 16, 8, 1}};
    for (int c = 0; c < 2; c++) {
        const th_params hp = {24, 0, 0, -1, 3, 0, 5};
        tc_inputs *in = tc_inputs_create(&shapes[c], 710 + c, 0.6);
        smyrf_plan *plan = th_plan(&in->s, &hp);
        float *before, *lse_before, *after, *lse_after;
        run(plan, in, &before, &lse_before);
        const float nan = nanf("");
        tc_fill_padded_keys(in, nan);
        for (int64_t b = 0; b < 2; b++)  /* and the queries at padded positions */
            for (int64_t j = 0; j < 200; j++) {
                if (in->mask[b * 200 + j]) continue;
                for (int64_t h = 0; h < 2; h++)
                    for (int64_t x = 0; x < 16; x++) in->q[((b * 2 + h) * 200 + j) * 16 + x] = nan;
            }
        run(plan, in, &after, &lse_after);
        for (int64_t b = 0; b < 2; b++)
            for (int64_t h = 0; h < 2; h++)
                for (int64_t i = 0; i < 200; i++) {
                    if (!in->mask[b * 200 + i]) continue; /* a padded query's own row */
                    const size_t row = (size_t)((b * 2 + h) * 200 + i);
                    tc_assert_same_bits(before + row * 8, after + row * 8, 8 * 4, "out");
                    tc_assert_same_bits(lse_before + row, lse_after + row, 4, "lse");
                }
        smyrf_plan_destroy(plan);
        free(before), free(lse_before), free(after), free(lse_after);
        tc_inputs_destroy(in);
    }
}

/* 1, 2, 3 and 7 threads give the same bits, non-causal and causal. */
static void same_bits_for_every_thread_count(void **state) {
    (void)state;
    const tc_shape shapes[] = {{2, 4, 2, 333, 500, 24, 16, 0}, {1, 3, 0, 400, 0, 16, 0, 1}};
    const int64_t threads[] = {1, 2, 3, 7};
    for (int c = 0; c < 2; c++) {
        tc_inputs *in = tc_inputs_create(&shapes[c], 720 + c, 0.9);
        float *first = NULL, *first_lse = NULL;
        for (int t = 0; t < 4; t++) {
            const th_params hp = {48, 0, 0, -1, 3, threads[t], 99};
            smyrf_plan *plan = th_plan(&in->s, &hp);
            float *out, *lse;
            run(plan, in, &out, &lse);
            if (!first) {
                first = out, first_lse = lse;
            } else {
                tc_assert_same_bits(first, out, in->no_el * 4, "out over thread counts");
                tc_assert_same_bits(first_lse, lse, in->nlse * 4, "lse over thread counts");
                free(out), free(lse);
            }
            smyrf_plan_destroy(plan);
        }
        free(first), free(first_lse);
        tc_inputs_destroy(in);
    }
}

/* BNHD layout and f16 inputs reach the same pipeline: on inputs already rounded to f16,
 * BNHD gives the same bits as BHND, and f16 the same values up to f16 output rounding. */
static void layouts_and_half_precision(void **state) {
    (void)state;
    const tc_shape s = {2, 2, 1, 150, 0, 16, 8, 0};
    const th_params hp = {24, 0, 0, -1, 0, 0, 3};
    tc_inputs *in = tc_inputs_create(&s, 730, 0.8);
    for (size_t e = 0; e < in->nq_el; e++) in->q[e] = tc_f16_to_f32(tc_f32_to_f16(in->q[e]));
    for (size_t e = 0; e < in->nk_el; e++) in->k[e] = tc_f16_to_f32(tc_f32_to_f16(in->k[e]));
    for (size_t e = 0; e < in->nv_el; e++) in->v[e] = tc_f16_to_f32(tc_f32_to_f16(in->v[e]));
    tc_inputs_sync(in);
    smyrf_plan *plan = th_plan(&in->s, &hp);
    float *want, *want_lse;
    run(plan, in, &want, &want_lse);
    smyrf_plan_destroy(plan);

    /* [B, H, N, D] -> [B, N, H, D] of each tensor, and back for out */
    const int64_t heads[4] = {2, 1, 1, 2}, dims[4] = {16, 16, 8, 8};
    float *src[4] = {in->q, in->k, in->v, NULL};
    float *t[4];
    uint16_t *h16[3];
    for (int x = 0; x < 4; x++) {
        const size_t n = (size_t)(2 * heads[x] * 150 * dims[x]);
        t[x] = tc_alloc(n * 4);
        if (x < 3) h16[x] = tc_alloc(n * 2);
        if (!src[x]) continue;
        for (int64_t b = 0; b < 2; b++)
            for (int64_t h = 0; h < heads[x]; h++)
                for (int64_t i = 0; i < 150; i++)
                    for (int64_t c = 0; c < dims[x]; c++) {
                        const float e = src[x][((b * heads[x] + h) * 150 + i) * dims[x] + c];
                        t[x][((b * 150 + i) * heads[x] + h) * dims[x] + c] = e;
                        h16[x][((b * heads[x] + h) * 150 + i) * dims[x] + c] = tc_f32_to_f16(e);
                    }
    }
    smyrf_config *cfg = th_config(&in->s, &hp);
    tc_set(cfg, SMYRF_PARAM_LAYOUT, SMYRF_LAYOUT_BNHD);
    plan = tc_plan(cfg);
    float *lse = tc_nan_floats(in->nlse);
    assert_int_equal(smyrf_execute(plan, t[0], t[1], t[2], in->mask, t[3], lse, NULL, 0, NULL), SMYRF_OK);
    for (int64_t b = 0; b < 2; b++)
        for (int64_t h = 0; h < 2; h++)
            for (int64_t i = 0; i < 150; i++)
                tc_assert_same_bits(want + ((b * 2 + h) * 150 + i) * 8,
                                    t[3] + ((b * 150 + i) * 2 + h) * 8, 32, "BNHD out");
    tc_assert_same_bits(want_lse, lse, in->nlse * 4, "BNHD lse");
    smyrf_plan_destroy(plan);

    tc_set(cfg, SMYRF_PARAM_LAYOUT, SMYRF_LAYOUT_BHND);
    tc_set(cfg, SMYRF_PARAM_DTYPE, SMYRF_DTYPE_F16);
    plan = tc_plan(cfg);
    uint16_t *out16 = tc_alloc(in->no_el * 2);
    assert_int_equal(smyrf_execute(plan, h16[0], h16[1], h16[2], in->mask, out16, lse, NULL, 0, NULL), SMYRF_OK);
    float *out = tc_alloc(in->no_el * 4);
    for (size_t e = 0; e < in->no_el; e++) out[e] = tc_f16_to_f32(out16[e]);
    tc_assert_close_ff(out, want, in->no_el, 2e-3, 0, "f16 out");
    tc_assert_close_ff(lse, want_lse, in->nlse, 1e-5, 0, "f16 lse");
    smyrf_plan_destroy(plan);
    smyrf_config_destroy(cfg);
    for (int x = 0; x < 4; x++) free(t[x]);
    for (int x = 0; x < 3; x++) free(h16[x]);
    free(out16), free(out), free(lse), free(want), free(want_lse);
    tc_inputs_destroy(in);
}

static void refused(const th_params *hp, const char *needle) {
    const tc_shape s = {1, 1, 0, 64, 0, 8, 0, 0};
    smyrf_config *cfg = th_config(&s, hp);
    smyrf_plan *plan = NULL;
    assert_int_equal(smyrf_plan_create(&plan, cfg), SMYRF_ERR_INVALID_ARGUMENT);
    assert_null(plan);
    const char *msg = smyrf_last_error_message();
    if (!strstr(msg, needle)) fail_msg("message \"%s\" does not name \"%s\"", msg, needle);
    smyrf_config_destroy(cfg);
}

static void bad_parameters_are_refused(void **state) {
    (void)state;
    const th_params no_window = {5, 0, 3, 2, 0, 0, 0};  /* w = 5 - 3 - 2 = 0 */
    refused(&no_window, "window");
    const th_params over = {20, 18, 4, -1, 0, 0, 0};    /* 18 + 2 + 4 > 20 */
    refused(&over, "exceeds SMYRF_PARAM_BUDGET");
    /* a budget derived from the window and summaries that the parameter cannot hold */
    const th_params huge = {0, INT32_MAX, INT32_MAX, -1, 0, 0, 0};
    refused(&huge, "above SMYRF_PARAM_BUDGET's bound");
    smyrf_config *cfg = NULL;
    assert_int_equal(smyrf_config_create(&cfg), SMYRF_OK);
    assert_int_equal(smyrf_config_set(cfg, SMYRF_PARAM_SINKS, 3), SMYRF_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(smyrf_last_error_message(), "SMYRF_PARAM_SINKS"));
    assert_int_equal(smyrf_config_set(cfg, SMYRF_PARAM_SINKS, -2), SMYRF_ERR_INVALID_ARGUMENT);
    assert_int_equal(smyrf_config_set(cfg, SMYRF_PARAM_WINDOW, -1), SMYRF_ERR_INVALID_ARGUMENT);
    assert_int_equal(smyrf_config_set(cfg, SMYRF_PARAM_KMEANS_ITERS, -1), SMYRF_ERR_INVALID_ARGUMENT);
    smyrf_config_destroy(cfg);
}

/* Derived values follow ALGORITHM.md: G = max(1, round(B / 5)), S = 2, and
 * docs/algorithm.md: E = round(B / 3) leaving w >= 1, w = B - G - S - E; with the window
 * set, E = 0. */
static void defaults_derive_from_the_budget(void **state) {
    (void)state;
    const tc_shape s = {1, 1, 0, 64, 0, 8, 0, 0};
    const int64_t budgets[] = {0, 32, 64, 128, 13, 4};
    const int64_t want_g[] = {26, 6, 13, 26, 3, 1}, want_e[] = {43, 11, 21, 43, 4, 0};
    for (int c = 0; c < 6; c++) {
        const th_params hp = {budgets[c], 0, 0, -1, 0, 0, 0};
        smyrf_plan *plan = th_plan(&s, &hp);
        const smyrf_ref_hybrid_params r = th_resolved(plan);
        const int64_t b = budgets[c] ? budgets[c] : 128;
        assert_int_equal(r.budget, b);
        assert_int_equal(r.summaries, want_g[c]);
        assert_int_equal(r.sinks, 2);
        assert_int_equal(r.expand, want_e[c]);
        assert_int_equal(r.window, b - want_g[c] - 2 - want_e[c]);
        assert_int_equal(r.kmeans_iters, 2);
        smyrf_plan_destroy(plan);
    }
    const th_params set = {0, 30, 8, -1, 0, 0, 0};
    smyrf_plan *plan = th_plan(&s, &set);
    const smyrf_ref_hybrid_params r = th_resolved(plan);
    assert_int_equal(r.expand, 0);
    assert_int_equal(r.budget, 30 + 2 + 8);
    smyrf_plan_destroy(plan);
    /* The window alone: summaries as for 128, and the budget is what the parts add up to,
     * not 128 (which refused a window of 200, and ran 60 keys dense with a window of 5) */
    const int64_t windows[] = {5, 200};
    for (int c = 0; c < 2; c++) {
        const th_params alone = {0, windows[c], 0, -1, 0, 0, 0};
        plan = th_plan(&s, &alone);
        const smyrf_ref_hybrid_params a = th_resolved(plan);
        assert_int_equal(a.summaries, 26);
        assert_int_equal(a.expand, 0);
        assert_int_equal(a.budget, windows[c] + 2 + 26);
        smyrf_plan_destroy(plan);
    }
}

/* The dense limit follows the keys a query gets: a window of 5 alone (33 keys per query)
 * is not dense on 60 keys, as it was when the unset budget stayed 128. */
static void window_alone_is_not_dense(void **state) {
    (void)state;
    const tc_shape s = {1, 1, 0, 60, 0, 8, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 720, 0);
    const th_params hp = {0, 5, 0, -1, 0, 0, 0};
    smyrf_plan *plan = th_plan(&in->s, &hp);
    smyrf_plan *dense = tc_plan_from(tc_config(&in->s, SMYRF_MODE_DENSE));
    float *out, *lse, *want, *want_lse;
    run(plan, in, &out, &lse);
    run(dense, in, &want, &want_lse);
    double *dense_out = tc_doubles(in->no_el);
    tc_to_double(want, dense_out, in->no_el);
    const double diff = tc_rel_fro(out, dense_out, in->no_el);
    if (!(diff > 1e-3)) fail_msg("window 5 alone on 60 keys gave dense attention (%g)", diff);
    smyrf_plan_destroy(plan);
    smyrf_plan_destroy(dense);
    free(out), free(lse), free(want), free(want_lse), free(dense_out);
    tc_inputs_destroy(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(causal_ignores_future_keys),
        cmocka_unit_test(padded_content_changes_nothing),
        cmocka_unit_test(same_bits_for_every_thread_count),
        cmocka_unit_test(layouts_and_half_precision),
        cmocka_unit_test(bad_parameters_are_refused),
        cmocka_unit_test(defaults_derive_from_the_budget),
        cmocka_unit_test(window_alone_is_not_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
