/* DENSE mode against the float64 reference: exact attention, so only float32 rounding
 * separates them (tolerance 1e-5 of the largest output, lse 1e-5 relative). */
#include "common.h"

#include <math.h>
#include <stdlib.h>

#define DENSE_RTOL 1e-5
#define LSE_TOL 1e-5

typedef struct dense_case {
    const char *name;
    tc_shape s;
    double mask_keep;
} dense_case;

/* Each shape stresses one tiling edge: query tiles of 64, key tiles, causal limits. */
static const dense_case cases[] = {
    {"one query one key", {1, 1, 0, 1, 1, 8, 0, 0}, 0},
    {"square 100", {1, 1, 0, 100, 0, 16, 0, 0}, 0},
    {"two batches, heads, padding", {2, 3, 0, 70, 0, 32, 24, 0}, 0.7},
    {"GQA 4 over 2", {1, 4, 2, 65, 130, 16, 0, 0}, 0},
    {"long keys, few queries", {1, 1, 0, 3, 1500, 8, 0, 0}, 0},
    {"more queries than keys", {1, 2, 1, 300, 17, 12, 5, 0}, 0.8},
    {"causal square", {1, 2, 0, 257, 0, 16, 0, 1}, 0},
    {"causal, keys past the queries", {2, 1, 0, 40, 300, 16, 0, 1}, 0.6},
    {"causal, queries past the keys", {1, 1, 0, 300, 40, 16, 0, 1}, 0},
    {"causal, padded, GQA", {2, 4, 1, 129, 129, 64, 32, 1}, 0.5},
    {"head dim 1", {1, 1, 0, 77, 0, 1, 1, 0}, 0},
};

/* The plan's out and lse on `in` against the float64 DENSE reference of rp; frees the
 * plan and the inputs. */
static void expect_reference(tc_inputs *in, const smyrf_ref_problem *rp, smyrf_plan *plan,
                             double rtol, const char *what) {
    double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
    smyrf_ref_dense(rp, want, want_lse);
    float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
    tc_run(plan, in, out, lse);
    tc_assert_close(out, want, in->no_el, (size_t)in->s.v_dim, NULL, rtol, 0, what);
    tc_assert_lse_close(lse, want_lse, in->nlse, NULL, LSE_TOL, what);
    smyrf_plan_destroy(plan);
    free(out), free(lse), free(want), free(want_lse);
    tc_inputs_destroy(in);
}

static void run_case(const dense_case *c, uint64_t seed) {
    tc_inputs *in = tc_inputs_create(&c->s, seed, c->mask_keep);
    const smyrf_ref_problem rp = tc_ref_problem(in);
    expect_reference(in, &rp, tc_dense_plan(&in->s), DENSE_RTOL, c->name);
}

static void dense_matches_reference(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], 100 + i);
}

/* Large logits (scale 8x) test the max subtraction: a naive exp would overflow. */
static void dense_survives_large_logits(void **state) {
    (void)state;
    const tc_shape s = {1, 1, 0, 90, 200, 16, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 7, 0);
    for (size_t i = 0; i < in->nq_el; i++) in->q[i] *= 30.0f; /* logits up to ~1e3 */
    tc_inputs_sync(in);
    const smyrf_ref_problem rp = tc_ref_problem(in);
    /* logits of size ~1e3 carry absolute float32 error ~1e-4 into the weights */
    expect_reference(in, &rp, tc_dense_plan(&in->s), 1e-3, "large logits");
}

/* A custom scale reaches the softmax, and lse, exactly as the reference applies it. */
static void dense_honours_scale(void **state) {
    (void)state;
    const tc_shape s = {1, 2, 0, 50, 60, 8, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 8, 0);
    smyrf_ref_problem rp = tc_ref_problem(in);
    rp.scale = 0.9;
    smyrf_config *cfg = tc_config(&in->s, SMYRF_MODE_DENSE);
    assert_int_equal(smyrf_config_set_scale(cfg, 0.9), SMYRF_OK);
    smyrf_plan *plan = tc_plan(cfg);
    smyrf_config_destroy(cfg);
    expect_reference(in, &rp, plan, DENSE_RTOL, "scale 0.9");
}

/* A query's DENSE result does not depend on the other queries of its call, bit for bit:
 * calls with the last 1 to 5 queries of a 40-query call (a decoder's steps; up to 4 rows
 * take the kernel's few-queries product, keys in the vector lanes; under GQA the small
 * calls put a group's heads in one tile, the 40-query ones do not) give exactly those
 * rows of the 40-query call, lse too. The last queries, so that causal calls keep their
 * bottom-right aligned limits. The small calls read q in place through strides. */
static void dense_few_queries_are_bitwise_the_same(void **state) {
    (void)state;
    static const struct {
        tc_shape s;
        double mask_keep;
    } few_cases[] = {
        {{1, 1, 0, 40, 37, 21, 0, 0}, 0},     /* d past a vector, keys not a multiple of one */
        {{2, 4, 2, 40, 300, 64, 24, 1}, 0.7}, /* GQA, causal, masked, dv != d, 2 key tiles */
        {{1, 8, 2, 40, 70, 16, 0, 1}, 0},     /* groups of 4 heads: 4 to 20 rows a tile */
        {{1, 2, 0, 40, 5, 8, 0, 0}, 0},       /* d under one AVX-512 vector */
        {{1, 1, 0, 40, 1, 1, 0, 1}, 0},
    };
    for (size_t c = 0; c < sizeof few_cases / sizeof few_cases[0]; c++) {
        tc_inputs *in = tc_inputs_create(&few_cases[c].s, 300 + c, few_cases[c].mask_keep);
        const tc_shape *s = &in->s;
        const int64_t nq = s->q_len, d = s->qk_dim, dv = s->v_dim, bh = s->batch * s->heads;
        smyrf_plan *plan = tc_dense_plan(s);
        float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
        tc_run(plan, in, out, lse);
        smyrf_plan_destroy(plan);
        for (int64_t n = 1; n <= 5; n++) {
            tc_shape few = *s;
            few.q_len = n;
            smyrf_config *cfg = tc_config(&few, SMYRF_MODE_DENSE);
            tc_set(cfg, SMYRF_PARAM_Q_STRIDE_BATCH, s->heads * nq * d);
            tc_set(cfg, SMYRF_PARAM_Q_STRIDE_HEAD, nq * d);
            tc_set(cfg, SMYRF_PARAM_Q_STRIDE_TOKEN, d);
            smyrf_plan *small = tc_plan_from(cfg);
            float *got = tc_nan_floats((size_t)(bh * n * dv)), *got_lse = tc_nan_floats((size_t)(bh * n));
            assert_int_equal(smyrf_execute(small, in->q + (nq - n) * d, in->k, in->v, in->mask,
                                           got, got_lse, NULL, 0, NULL),
                             SMYRF_OK);
            for (int64_t p = 0; p < bh; p++) {
                tc_assert_same_bits(got + p * n * dv, out + (p * nq + nq - n) * dv,
                                    (size_t)(n * dv) * sizeof(float), "few queries: out");
                tc_assert_same_bits(got_lse + p * n, lse + p * nq + nq - n,
                                    (size_t)n * sizeof(float), "few queries: lse");
            }
            smyrf_plan_destroy(small);
            free(got), free(got_lse);
        }
        free(out), free(lse);
        tc_inputs_destroy(in);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dense_matches_reference),
        cmocka_unit_test(dense_survives_large_logits),
        cmocka_unit_test(dense_honours_scale),
        cmocka_unit_test(dense_few_queries_are_bitwise_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
