/* HYBRID backward (smyrf_execute_backward): the float64 reference gradient
 * (src/ref/hybrid_backward.hpp) against central finite differences of the float64
 * reference forward, the CPU backward against the reference gradient (k-means groups,
 * causal blocks, masks, GQA, Nq != Nk, the dense limit), zero gradients of padded keys and
 * of rows without keys, the dense limit against DENSE's backward where that exists, and
 * bitwise determinism over thread counts. */
#include "ref/hybrid_backward.hpp"
#include "test_hybrid_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Tiny problems for finite differences. */
static const th_case tiny[] = {
    {"k-means", {1, 1, 0, 10, 0, 4, 3, 0}, 0, {0, 3, 3, 2, 2, 0, 1}},
    {"k-means, padded, GQA, Nq < Nk", {2, 2, 1, 7, 13, 4, 3, 0}, 0.7, {0, 3, 3, 2, 2, 0, 2}},
    {"k-means, Nq > Nk, one sink, window of one", {1, 1, 0, 11, 8, 4, 3, 0}, 0, {0, 1, 3, 1, 1, 0, 3}},
    {"causal blocks", {1, 1, 0, 12, 0, 4, 3, 1}, 0, {0, 3, 4, 1, 0, 0, 4}},
    {"causal, padded, GQA, Nq < Nk", {1, 2, 1, 6, 14, 4, 3, 1}, 0.8, {0, 2, 3, 1, 0, 0, 5}},
    {"causal, Nq > Nk, no sinks", {1, 1, 0, 14, 9, 4, 3, 1}, 0, {0, 2, 3, 0, 0, 0, 6}},
    {"dense limit", {1, 1, 0, 6, 0, 4, 3, 0}, 0, {8, 0, 0, -1, 0, 0, 7}},
    {"dense limit, causal, padded", {1, 1, 0, 7, 0, 4, 3, 1}, 0.6, {8, 0, 0, -1, 0, 0, 8}},
};

/* The CPU suite: the forward suite's shapes (th_shapes) and two dense limits. */
static const th_case dense_limits[] = {
    {"dense limit", {1, 2, 0, 100, 0, 16, 0, 0}, 0, {100, 0, 0, -1, 0, 0, 14}},
    {"dense limit, causal, padded, GQA", {2, 2, 1, 80, 90, 16, 8, 1}, 0.5, {96, 0, 0, -1, 0, 0, 15}},
};

/* Tiles of many rows: a few tasks fill the backward's wave of slots, so their gradients
 * reach dk and dv over several waves. */
static const th_case waves[] = {
    {"several waves of slots", {1, 2, 1, 1000, 1300, 64, 64, 0}, 0.9, {960, 0, 0, -1, 0, 0, 16}},
    {"several waves of slots, causal", {1, 2, 1, 1000, 1000, 64, 64, 1}, 0, {960, 0, 0, -1, 0, 0, 17}},
};

#define NCASES(x) (sizeof x / sizeof x[0])

static float *random_dout(const tc_inputs *in, uint64_t seed) {
    tc_rng r = tc_rng_make(seed);
    float *g = (float *)tc_alloc(in->no_el * sizeof(float));
    tc_fill_normal(&r, g, in->no_el, 1.0);
    return g;
}

static void free_grads(th_grads g) { free(g.dq), free(g.dk), free(g.dv); }

/* The float64 reference gradient equals central finite differences of the float64
 * reference forward (two-part form). */
static void reference_matches_finite_differences(void **state) {
    (void)state;
    for (size_t c = 0; c < NCASES(tiny); c++) {
        const th_case *k = &tiny[c];
        tc_inputs *in = tc_inputs_create(&k->s, 900 + c, k->mask_keep);
        smyrf_plan *plan = th_plan(&in->s, &k->hp);
        const smyrf_ref_hybrid_params hp = th_resolved(plan);
        float *doutf = random_dout(in, 50 + c);
        double *dout = tc_doubles(in->no_el);
        tc_to_double(doutf, dout, in->no_el);
        double *dq = tc_doubles(in->nq_el), *dk = tc_doubles(in->nk_el), *dv = tc_doubles(in->nv_el);
        const smyrf_ref_problem rp = tc_ref_problem(in);
        smyrf_ref_hybrid_backward(&rp, &hp, dout, dq, dk, dv);
        th_check_fd(in, &hp, dout, in->qd, in->nq_el, dq, "dq", k->name);
        th_check_fd(in, &hp, dout, in->kd, in->nk_el, dk, "dk", k->name);
        th_check_fd(in, &hp, dout, in->vd, in->nv_el, dv, "dv", k->name);
        free(dq), free(dk), free(dv), free(dout), free(doutf);
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
}

/* Padded keys have zero gradient; query rows without an allowed key too. */
static void check_zeros(const tc_inputs *in, th_grads g, const char *name) {
    const tc_shape *s = &in->s;
    if (in->mask)
        for (int64_t b = 0; b < s->batch; b++)
            for (int64_t j = 0; j < s->k_len; j++) {
                if (in->mask[b * s->k_len + j]) continue;
                for (int64_t h = 0; h < s->kv_heads; h++) {
                    const size_t rk = (size_t)((b * s->kv_heads + h) * s->k_len + j);
                    for (int64_t x = 0; x < s->qk_dim; x++)
                        if (g.dk[rk * s->qk_dim + x] != 0.0f) fail_msg("%s: padded key %lld has dk", name, (long long)j);
                    for (int64_t x = 0; x < s->v_dim; x++)
                        if (g.dv[rk * s->v_dim + x] != 0.0f) fail_msg("%s: padded key %lld has dv", name, (long long)j);
                }
            }
    if (s->causal && s->q_len > s->k_len)
        for (int64_t b = 0; b < s->batch; b++)
            for (int64_t h = 0; h < s->heads; h++)
                for (int64_t i = 0; i < s->q_len - s->k_len; i++)
                    for (int64_t x = 0; x < s->qk_dim; x++)
                        if (g.dq[((size_t)((b * s->heads + h) * s->q_len + i)) * s->qk_dim + x] != 0.0f)
                            fail_msg("%s: query %lld has no key but a gradient", name, (long long)i);
}

static void compare_with_reference(const th_case *k, uint64_t seed, double rtol) {
    tc_inputs *in = tc_inputs_create(&k->s, seed, k->mask_keep);
    smyrf_plan *plan = th_plan(&in->s, &k->hp);
    const smyrf_ref_hybrid_params hp = th_resolved(plan);
    float *doutf = random_dout(in, seed + 1);
    double *dout = tc_doubles(in->no_el);
    tc_to_double(doutf, dout, in->no_el);
    double *dq = tc_doubles(in->nq_el), *dk = tc_doubles(in->nk_el), *dv = tc_doubles(in->nv_el);
    const smyrf_ref_problem rp = tc_ref_problem(in);
    smyrf_ref_hybrid_backward(&rp, &hp, dout, dq, dk, dv);
    th_grads g = th_run_backward(plan, in, doutf);
    char what[160];
    snprintf(what, sizeof what, "%s: dq", k->name);
    tc_assert_close(g.dq, dq, in->nq_el, (size_t)in->s.qk_dim, NULL, rtol, 0, what);
    snprintf(what, sizeof what, "%s: dk", k->name);
    tc_assert_close(g.dk, dk, in->nk_el, (size_t)in->s.qk_dim, NULL, rtol, 0, what);
    snprintf(what, sizeof what, "%s: dv", k->name);
    tc_assert_close(g.dv, dv, in->nv_el, (size_t)in->s.v_dim, NULL, rtol, 0, what);
    check_zeros(in, g, k->name);
    free_grads(g);
    free(dq), free(dk), free(dv), free(dout), free(doutf);
    smyrf_plan_destroy(plan);
    tc_inputs_destroy(in);
}

/* The CPU backward against the float64 reference gradient. */
static void cpu_matches_reference(void **state) {
    (void)state;
    for (size_t c = 0; c < NCASES(tiny); c++) compare_with_reference(&tiny[c], 700 + c, 1e-4);
    for (size_t c = 0; c < th_shape_count; c++) compare_with_reference(&th_shapes[c], 500 + c, 2e-4);
    for (size_t c = 0; c < NCASES(dense_limits); c++)
        compare_with_reference(&dense_limits[c], 500 + th_shape_count + c, 2e-4);
    for (size_t c = 0; c < NCASES(waves); c++) compare_with_reference(&waves[c], 600 + c, 2e-4);
}

/* In the dense limit HYBRID's gradients are DENSE's. */
static void dense_limit_equals_dense_backward(void **state) {
    (void)state;
    for (size_t c = 0; c < NCASES(dense_limits); c++) {
        const th_case *k = &dense_limits[c];
        tc_inputs *in = tc_inputs_create(&k->s, 800 + th_shape_count + c, k->mask_keep);
        smyrf_plan *hybrid = th_plan(&in->s, &k->hp);
        smyrf_plan *dense = tc_dense_plan(&in->s);
        float *dout = random_dout(in, 77);
        float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
        tc_run(dense, in, out, lse);
        th_grads want = {tc_nan_floats(in->nq_el), tc_nan_floats(in->nk_el), tc_nan_floats(in->nv_el)};
        assert_int_equal(smyrf_execute_backward(dense, in->q, in->k, in->v, in->mask, out, lse,
                                                dout, want.dq, want.dk, want.dv, NULL, 0, NULL),
                         SMYRF_OK);
        th_grads got = th_run_backward(hybrid, in, dout);
        tc_assert_close_ff(got.dq, want.dq, in->nq_el, 1e-5, 1e-6, k->name);
        tc_assert_close_ff(got.dk, want.dk, in->nk_el, 1e-5, 1e-6, k->name);
        tc_assert_close_ff(got.dv, want.dv, in->nv_el, 1e-5, 1e-6, k->name);
        free_grads(got);
        free_grads(want);
        free(out), free(lse), free(dout);
        smyrf_plan_destroy(hybrid), smyrf_plan_destroy(dense);
        tc_inputs_destroy(in);
    }
}

/* Same inputs, any thread count: the same bits. */
static void deterministic_over_threads(void **state) {
    (void)state;
    const th_case det[] = {
        {"k-means, GQA, Nq != Nk, padded", {2, 4, 2, 700, 900, 32, 16, 0}, 0.8, {64, 0, 0, -1, 0, 0, 21}},
        {"causal blocks, GQA, padded", {2, 2, 1, 600, 600, 32, 32, 1}, 0.9, {64, 0, 0, -1, 0, 0, 22}},
        {"causal, more keys", {1, 2, 2, 300, 1000, 16, 16, 1}, 0, {48, 0, 0, -1, 0, 0, 23}},
        waves[0],
        waves[1],
    };
    static const int64_t threads[] = {2, 3, 8};
    for (size_t c = 0; c < NCASES(det); c++) {
        tc_inputs *in = tc_inputs_create(&det[c].s, 1000 + c, det[c].mask_keep);
        th_params hp = det[c].hp;
        hp.threads = 1;
        smyrf_plan *plan = th_plan(&in->s, &hp);
        float *dout = random_dout(in, 5);
        th_grads one = th_run_backward(plan, in, dout);
        smyrf_plan_destroy(plan);
        for (size_t t = 0; t < NCASES(threads); t++) {
            hp.threads = threads[t];
            plan = th_plan(&in->s, &hp);
            th_grads g = th_run_backward(plan, in, dout);
            tc_assert_same_bits(one.dq, g.dq, in->nq_el * sizeof(float), det[c].name);
            tc_assert_same_bits(one.dk, g.dk, in->nk_el * sizeof(float), det[c].name);
            tc_assert_same_bits(one.dv, g.dv, in->nv_el * sizeof(float), det[c].name);
            free_grads(g);
            smyrf_plan_destroy(plan);
        }
        free_grads(one);
        free(dout);
        tc_inputs_destroy(in);
    }
}

/* A caller's workspace of the advertised size works as well as none. */
static void workspace_of_the_advertised_size(void **state) {
    (void)state;
    const th_case *k = &th_shapes[2];
    tc_inputs *in = tc_inputs_create(&k->s, 31, k->mask_keep);
    smyrf_plan *plan = th_plan(&in->s, &k->hp);
    float *dout = random_dout(in, 6);
    th_grads want = th_run_backward(plan, in, dout);
    float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
    tc_run(plan, in, out, lse);
    const size_t bytes = smyrf_plan_backward_workspace_size(plan);
    void *ws = tc_alloc(bytes);
    th_grads g = {tc_nan_floats(in->nq_el), tc_nan_floats(in->nk_el), tc_nan_floats(in->nv_el)};
    assert_int_equal(smyrf_execute_backward(plan, in->q, in->k, in->v, in->mask, out, lse, dout,
                                            g.dq, g.dk, g.dv, ws, bytes, NULL),
                     SMYRF_OK);
    tc_assert_same_bits(want.dq, g.dq, in->nq_el * sizeof(float), "dq");
    tc_assert_same_bits(want.dk, g.dk, in->nk_el * sizeof(float), "dk");
    tc_assert_same_bits(want.dv, g.dv, in->nv_el * sizeof(float), "dv");
    free_grads(g), free_grads(want);
    free(ws), free(out), free(lse), free(dout);
    smyrf_plan_destroy(plan);
    tc_inputs_destroy(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_matches_finite_differences),
        cmocka_unit_test(cpu_matches_reference),
        cmocka_unit_test(dense_limit_equals_dense_backward),
        cmocka_unit_test(deterministic_over_threads),
        cmocka_unit_test(workspace_of_the_advertised_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
