/* HYBRID mode against the float64 reference (src/ref/hybrid.hpp), the dense limit, and
 * the reference's one-pass combine against its two-part definition. The library runs
 * k-means in float32, so tolerances are float32 ones; the test shapes keep groups small
 * enough that the exact-complement subtraction loses little. */
#include "test_hybrid_support.h"

#include <math.h>
#include <stdlib.h>

#define HYBRID_RTOL 1e-5

static void hybrid_matches_reference(void **state) {
    (void)state;
    for (size_t i = 0; i < th_shape_count; i++) {
        const th_case *c = &th_shapes[i];
        tc_inputs *in = tc_inputs_create(&c->s, 300 + i, c->mask_keep);
        smyrf_plan *plan = th_plan(&in->s, &c->hp);
        th_check_reference(plan, in, HYBRID_RTOL, c->name);
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
}

/* Every awkward shape (common.h) in HYBRID mode, at a budget of 32. */
static void awkward_shapes(void **state) {
    (void)state;
    const th_params hp = {32, 0, 0, -1, 0, 0, 41};
    char what[160];
    for (size_t li = 0; li < TC_AWKWARD_LENGTHS; li++)
        for (size_t di = 0; di < TC_AWKWARD_DIMS; di++) {
            double keep;
            const tc_shape s = tc_awkward_shape(li, di, &keep);
            tc_inputs *in = tc_inputs_create(&s, 2400 + li * 4 + di, keep);
            tc_describe(in, "hybrid", what, sizeof what);
            smyrf_plan *plan = th_plan(&in->s, &hp);
            th_check_reference(plan, in, HYBRID_RTOL, what);
            smyrf_plan_destroy(plan);
            tc_inputs_destroy(in);
        }
}

/* ALGORITHM.md's two forms of step 5 are one function. */
static void one_pass_equals_two_part(void **state) {
    (void)state;
    for (size_t i = 0; i < th_shape_count; i++) {
        const th_case *c = &th_shapes[i];
        tc_inputs *in = tc_inputs_create(&c->s, 400 + i, c->mask_keep);
        smyrf_plan *plan = th_plan(&in->s, &c->hp);
        const smyrf_ref_hybrid_params hp = th_resolved(plan);
        const smyrf_ref_problem rp = tc_ref_problem(in);
        double *two = tc_doubles(in->no_el), *one = tc_doubles(in->no_el);
        double *lse2 = tc_doubles(in->nlse), *lse1 = tc_doubles(in->nlse);
        smyrf_ref_hybrid(&rp, &hp, 0, two, lse2);
        smyrf_ref_hybrid(&rp, &hp, 1, one, lse1);
        const double big = tc_max_abs(two, in->no_el);
        for (size_t e = 0; e < in->no_el; e++)
            if (!(fabs(one[e] - two[e]) <= 1e-12 * big))
                fail_msg("%s: element %zu: one pass %.17g, two parts %.17g", c->name, e, one[e], two[e]);
        for (size_t e = 0; e < in->nlse; e++) assert_true(lse1[e] == lse2[e]);
        free(two), free(one), free(lse2), free(lse1);
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
}

typedef struct dense_limit_case {
    const char *name;
    tc_shape s;
    double mask_keep;
    th_params hp;
} dense_limit_case;

/* Budget (or window) covering every valid key: exactly dense attention. */
static const dense_limit_case limits[] = {
    {"budget = Nk", {1, 2, 0, 100, 0, 16, 0, 0}, 0, {100, 0, 0, -1, 0, 0, 1}},
    {"budget > Nk, causal", {1, 1, 0, 90, 0, 16, 0, 1}, 0, {128, 0, 0, -1, 0, 0, 2}},
    {"budget covers the valid keys only", {2, 2, 0, 80, 200, 16, 0, 0}, 0.3, {128, 0, 0, -1, 0, 0, 3}},
    {"causal, masked, Nq > Nk", {2, 1, 0, 150, 60, 8, 4, 1}, 0.7, {64, 0, 0, -1, 0, 0, 4}},
    {"Nq < Nk, window covers them", {1, 1, 0, 20, 50, 8, 0, 0}, 0, {0, 50, 3, 2, 0, 0, 5}},
};

static void dense_when_budget_covers_every_key(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        const dense_limit_case *c = &limits[i];
        tc_inputs *in = tc_inputs_create(&c->s, 500 + i, c->mask_keep);
        const smyrf_ref_problem rp = tc_ref_problem(in);
        double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
        smyrf_ref_dense(&rp, want, want_lse);
        smyrf_plan *plan = th_plan(&in->s, &c->hp);
        float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
        tc_run(plan, in, out, lse);
        tc_assert_close(out, want, in->no_el, (size_t)in->s.v_dim, NULL, 1e-5, 0, c->name);
        tc_assert_lse_close(lse, want_lse, in->nlse, NULL, 1e-5, c->name);
        th_check_reference(plan, in, 1e-5, c->name); /* the reference agrees */
        smyrf_plan_destroy(plan);
        free(out), free(lse), free(want), free(want_lse);
        tc_inputs_destroy(in);
    }
}

/* Rows with no allowed key (causal, Nq > Nk; a batch with every key padded): zeros and
 * lse = -inf, never NaN, also away from the dense limit. */
static void rows_without_keys_are_zero(void **state) {
    (void)state;
    const tc_shape s = {2, 1, 0, 200, 150, 8, 0, 1};
    tc_inputs *in = tc_inputs_create(&s, 600, 0);
    in->mask = (uint8_t *)tc_alloc((size_t)(2 * 150));
    for (int j = 0; j < 150; j++) in->mask[j] = 1; /* batch 1: every key padded */
    const th_params hp = {16, 0, 0, -1, 0, 0, 1};
    smyrf_plan *plan = th_plan(&in->s, &hp);
    float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
    tc_run(plan, in, out, lse);
    for (int64_t r = 0; r < 400; r++) {
        const int none = r >= 200 || r < 50; /* batch 1, or i + Nk - Nq < 0 */
        if (none) {
            assert_true(isinf(lse[r]) && lse[r] < 0);
            for (int c = 0; c < 8; c++) assert_true(out[r * 8 + c] == 0.0f);
        } else {
            assert_true(isfinite(lse[r]));
        }
    }
    th_check_reference(plan, in, HYBRID_RTOL, "rows without keys");
    smyrf_plan_destroy(plan);
    free(out), free(lse);
    tc_inputs_destroy(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hybrid_matches_reference),
        cmocka_unit_test(awkward_shapes),
        cmocka_unit_test(one_pass_equals_two_part),
        cmocka_unit_test(dense_when_budget_covers_every_key),
        cmocka_unit_test(rows_without_keys_are_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
