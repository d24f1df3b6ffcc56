/* Gradients (smyrf_execute_backward) of SMYRF and DENSE modes on the CPU (HYBRID's have
 * their own suite, test_hybrid_backward.c; half precision covers all three): against the
 * float64 reference gradient over the same key multisets (src/ref), the reference itself
 * against central finite differences, masks, causal, GQA, cross-attention, fallback rows,
 * rows with no allowed key, bitwise determinism across thread counts, layouts, workspaces,
 * half precision and the error paths of the call. */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRAD_RTOL 5e-5        /* float32 against float64, relative to the largest entry */
#define GRAD_ATOL 1e-5        /* where a gradient is ~0 (one-key clusters: dS = O(eps)) */
#define MAX_UNSURE_SHARE 0.3  /* of dq or dk rows: else the comparison would say little */

/* ---------------------------------------------------------------- helpers */

typedef struct grads {
    float *out, *lse, *dq, *dk, *dv;
} grads;

static float *random_dout(const tc_inputs *in, uint64_t seed) {
    float *dout = (float *)tc_alloc(in->no_el * sizeof(float));
    tc_rng r = tc_rng_make(seed);
    tc_fill_normal(&r, dout, in->no_el, 1.0);
    return dout;
}

static void backward_ok(const smyrf_plan *plan, const tc_inputs *in, const float *out,
                        const float *lse, const float *dout, float *dq, float *dk, float *dv) {
    const smyrf_status st = smyrf_execute_backward(plan, in->q, in->k, in->v, in->mask, out, lse,
                                                   dout, dq, dk, dv, NULL, 0, NULL);
    if (st != SMYRF_OK)
        fail_msg("smyrf_execute_backward: %s: %s", smyrf_status_string(st),
                 smyrf_last_error_message());
}

/* Forward, then backward; every output starts as NaN so that a row left unwritten shows. */
static grads run_grads(const smyrf_plan *plan, const tc_inputs *in, const float *dout) {
    grads g;
    g.out = tc_nan_floats(in->no_el);
    g.lse = tc_nan_floats(in->nlse);
    g.dq = tc_nan_floats(in->nq_el);
    g.dk = tc_nan_floats(in->nk_el);
    g.dv = tc_nan_floats(in->nv_el);
    tc_run(plan, in, g.out, g.lse);
    backward_ok(plan, in, g.out, g.lse, dout, g.dq, g.dk, g.dv);
    return g;
}

static void grads_free(grads *g) {
    free(g->out), free(g->lse), free(g->dq), free(g->dk), free(g->dv);
}

typedef struct ref_grads {
    double *dq, *dk, *dv;
    uint8_t *q_unsure, *k_unsure, *fallback;
} ref_grads;

static ref_grads ref_alloc(const tc_inputs *in) {
    ref_grads r;
    r.dq = tc_doubles(in->nq_el);
    r.dk = tc_doubles(in->nk_el);
    r.dv = tc_doubles(in->nv_el);
    r.q_unsure = (uint8_t *)tc_alloc(in->nlse);
    r.k_unsure = (uint8_t *)tc_alloc((size_t)(in->s.batch * in->s.kv_heads * in->s.k_len));
    r.fallback = (uint8_t *)tc_alloc(in->nlse);
    return r;
}

static void ref_free(ref_grads *r) {
    free(r->dq), free(r->dk), free(r->dv), free(r->q_unsure), free(r->k_unsure), free(r->fallback);
}

static double *to_doubles(const float *x, size_t n) {
    double *y = tc_doubles(n);
    tc_to_double(x, y, n);
    return y;
}

static ref_grads ref_dense(const tc_inputs *in, const float *dout, double scale) {
    ref_grads r = ref_alloc(in);
    smyrf_ref_problem rp = tc_ref_problem(in);
    rp.scale = scale;
    double *dd = to_doubles(dout, in->no_el);
    smyrf_ref_dense_grad(&rp, dd, r.dq, r.dk, r.dv);
    free(dd);
    return r;
}

static ref_grads ref_smyrf(const tc_inputs *in, const float *dout, int64_t R, int64_t cq,
                           uint64_t seed) {
    ref_grads r = ref_alloc(in);
    smyrf_ref_problem rp = tc_ref_problem(in);
    double *dd = to_doubles(dout, in->no_el);
    smyrf_ref_smyrf_grad(&rp, R, cq, seed, dd, r.dq, r.dk, r.dv, r.q_unsure, r.k_unsure,
                         r.fallback);
    free(dd);
    return r;
}

static size_t count(const uint8_t *x, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += x[i] != 0;
    return c;
}

/* dq, dk, dv against the reference, skipping the rows it flags (NULL: none). */
static void compare_grads(const grads *g, const ref_grads *r, const tc_inputs *in, int use_unsure,
                          double rtol, const char *what) {
    char w[200];
    const tc_shape *s = &in->s;
    snprintf(w, sizeof w, "%s: dq", what);
    tc_assert_close(g->dq, r->dq, in->nq_el, (size_t)s->qk_dim, use_unsure ? r->q_unsure : NULL,
                    rtol, GRAD_ATOL, w);
    snprintf(w, sizeof w, "%s: dk", what);
    tc_assert_close(g->dk, r->dk, in->nk_el, (size_t)s->qk_dim, use_unsure ? r->k_unsure : NULL,
                    rtol, GRAD_ATOL, w);
    snprintf(w, sizeof w, "%s: dv", what);
    tc_assert_close(g->dv, r->dv, in->nv_el, (size_t)s->v_dim, use_unsure ? r->k_unsure : NULL,
                    rtol, GRAD_ATOL, w);
    tc_assert_all_finite(g->dq, in->nq_el, what);
    tc_assert_all_finite(g->dk, in->nk_el, what);
    tc_assert_all_finite(g->dv, in->nv_el, what);
}

/* Padded keys, and every key of a batch, have zero dk and dv exactly. */
static void assert_padded_keys_zero(const grads *g, const tc_inputs *in, const char *what) {
    const tc_shape *s = &in->s;
    if (!in->mask) return;
    for (int64_t b = 0; b < s->batch; b++)
        for (int64_t hk = 0; hk < s->kv_heads; hk++)
            for (int64_t j = 0; j < s->k_len; j++) {
                if (in->mask[b * s->k_len + j]) continue;
                const size_t row = (size_t)((b * s->kv_heads + hk) * s->k_len + j);
                for (int64_t c = 0; c < s->qk_dim; c++)
                    if (g->dk[row * s->qk_dim + c] != 0.0f)
                        fail_msg("%s: padded key %lld has dk %g", what, (long long)j,
                                 (double)g->dk[row * s->qk_dim + c]);
                for (int64_t c = 0; c < s->v_dim; c++)
                    if (g->dv[row * s->v_dim + c] != 0.0f)
                        fail_msg("%s: padded key %lld has dv %g", what, (long long)j,
                                 (double)g->dv[row * s->v_dim + c]);
            }
}

/* Rows with lse = -inf (no allowed key) have dq = 0 exactly. */
static size_t assert_empty_rows_zero(const grads *g, const tc_inputs *in, const char *what) {
    size_t n = 0;
    for (size_t i = 0; i < in->nlse; i++) {
        if (!isinf(g->lse[i])) continue;
        n++;
        for (int64_t c = 0; c < in->s.qk_dim; c++)
            if (g->dq[i * in->s.qk_dim + c] != 0.0f)
                fail_msg("%s: row %zu has no allowed key but dq %g", what, i,
                         (double)g->dq[i * in->s.qk_dim + c]);
    }
    return n;
}

/* ---------------------------------------------------------------- cases */

typedef struct grad_case {
    const char *name;
    tc_shape s;
    double mask_keep;
} grad_case;

static const grad_case cases[] = {
    {"self-attention", {1, 2, 0, 150, 0, 16, 0, 0}, 0},
    {"padded keys, two batches, dv != d", {2, 1, 0, 130, 0, 16, 24, 0}, 0.7},
    {"GQA, cross-attention", {1, 4, 2, 100, 333, 16, 0, 0}, 0},
    {"causal, several tiles", {1, 1, 0, 300, 0, 16, 0, 1}, 0},
    {"causal, padded, GQA, keys past queries", {2, 2, 1, 150, 260, 8, 0, 1}, 0.8},
    {"causal, queries past keys", {1, 2, 0, 200, 70, 8, 0, 1}, 0},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* DENSE only (SMYRF's clusters would leave too few sure rows): several key tiles. */
static const grad_case dense_cases[] = {
    {"GQA, padded, many key tiles", {1, 4, 2, 140, 1100, 8, 0, 0}, 0.9},
    {"causal, keys past queries, many key tiles", {1, 2, 0, 300, 1200, 8, 0, 1}, 0},
};
#define N_DENSE_CASES (sizeof dense_cases / sizeof dense_cases[0])

/* ---------------------------------------------------------------- DENSE */

static void dense_matches_reference(void **state) {
    (void)state;
    char what[160];
    for (size_t c = 0; c < N_CASES + N_DENSE_CASES; c++) {
        const grad_case *gc = c < N_CASES ? &cases[c] : &dense_cases[c - N_CASES];
        tc_inputs *in = tc_inputs_create(&gc->s, 500 + c, gc->mask_keep);
        float *dout = random_dout(in, 600 + c);
        smyrf_plan *plan = tc_dense_plan(&in->s);
        grads g = run_grads(plan, in, dout);
        ref_grads r = ref_dense(in, dout, 0);
        snprintf(what, sizeof what, "DENSE, %s", gc->name);
        compare_grads(&g, &r, in, 0, GRAD_RTOL, what);
        assert_padded_keys_zero(&g, in, what);
        const size_t empty = assert_empty_rows_zero(&g, in, what);
        if (strstr(gc->name, "queries past keys") && empty == 0)
            fail_msg("%s: expected rows with no allowed key", what);
        grads_free(&g), ref_free(&r), free(dout);
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
}

/* A scale other than 1/sqrt(d). */
static void dense_custom_scale(void **state) {
    (void)state;
    const tc_shape s = {1, 2, 1, 90, 110, 12, 20, 0};
    tc_inputs *in = tc_inputs_create(&s, 41, 0.8);
    float *dout = random_dout(in, 42);
    smyrf_config *cfg = tc_config(&in->s, SMYRF_MODE_DENSE);
    assert_int_equal(smyrf_config_set_scale(cfg, 0.37), SMYRF_OK);
    smyrf_plan *plan = tc_plan(cfg);
    smyrf_config_destroy(cfg);
    grads g = run_grads(plan, in, dout);
    ref_grads r = ref_dense(in, dout, 0.37);
    compare_grads(&g, &r, in, 0, GRAD_RTOL, "DENSE, scale 0.37");
    grads_free(&g), ref_free(&r), free(dout);
    smyrf_plan_destroy(plan);
    tc_inputs_destroy(in);
}

/* ---------------------------------------------------------------- SMYRF */

static const int64_t cluster_sizes[] = {16, 37, 100};
static const int64_t rounds[] = {1, 2, 4};

static void smyrf_matches_reference(void **state) {
    (void)state;
    char what[200];
    for (size_t c = 0; c < N_CASES; c++) {
        tc_inputs *in = tc_inputs_create(&cases[c].s, 700 + c, cases[c].mask_keep);
        float *dout = random_dout(in, 800 + c);
        const size_t nk_rows = (size_t)(in->s.batch * in->s.kv_heads * in->s.k_len);
        for (size_t i = 0; i < 3; i++) {
            const int64_t R = rounds[i], cq = cluster_sizes[(i + c) % 3];
            const uint64_t seed = 900 + c * 7 + i;
            snprintf(what, sizeof what, "SMYRF, %s, R = %lld, cq = %lld", cases[c].name,
                     (long long)R, (long long)cq);
            smyrf_plan *plan = tc_smyrf_plan(&in->s, R, cq, seed);
            grads g = run_grads(plan, in, dout);
            ref_grads r = ref_smyrf(in, dout, R, cq, seed);
            compare_grads(&g, &r, in, 1, GRAD_RTOL, what);
            assert_padded_keys_zero(&g, in, what);
            assert_empty_rows_zero(&g, in, what);
            const size_t uq = count(r.q_unsure, in->nlse), uk = count(r.k_unsure, nk_rows);
            if (getenv("SMYRF_TEST_VERBOSE"))
                print_message("%s: %zu unsure dq rows, %zu unsure dk rows, %zu fallback rows\n",
                              what, uq, uk, count(r.fallback, in->nlse));
            if (uq > MAX_UNSURE_SHARE * in->nlse || uk > MAX_UNSURE_SHARE * nk_rows)
                fail_msg("%s: too many unsure rows (%zu dq, %zu dk)", what, uq, uk);
            grads_free(&g), ref_free(&r);
            smyrf_plan_destroy(plan);
        }
        free(dout);
        tc_inputs_destroy(in);
    }
}

/* One cluster is dense attention over a multiset holding each key R times: the same
 * gradients as DENSE mode. */
static void one_cluster_is_dense(void **state) {
    (void)state;
    char what[160];
    for (size_t c = 0; c < N_CASES; c++) {
        tc_inputs *in = tc_inputs_create(&cases[c].s, 1100 + c, cases[c].mask_keep);
        float *dout = random_dout(in, 1200 + c);
        const int64_t R = 1 + (int64_t)(c % 3);
        smyrf_plan *plan = tc_smyrf_plan(&in->s, R, in->s.q_len, 5);
        grads g = run_grads(plan, in, dout);
        ref_grads r = ref_dense(in, dout, 0);
        snprintf(what, sizeof what, "one cluster, R = %lld, %s", (long long)R, cases[c].name);
        compare_grads(&g, &r, in, 0, GRAD_RTOL, what);
        grads_free(&g), ref_free(&r), free(dout);
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
}

/* Queries that met no allowed key in any round (causal, or fewer valid keys than
 * clusters) attended their fallback key: dv of that key gets dout, dq gets nothing. */
static void fallback_rows(void **state) {
    (void)state;
    static const grad_case fb[] = {
        {"causal, small clusters", {1, 2, 1, 96, 0, 8, 0, 1}, 0},
        {"few valid keys", {2, 1, 0, 100, 0, 8, 0, 0}, 0.08},
        {"causal, few valid keys, keys past queries", {1, 2, 0, 80, 120, 8, 0, 1}, 0.15},
    };
    char what[160];
    for (size_t c = 0; c < sizeof fb / sizeof fb[0]; c++) {
        tc_inputs *in = tc_inputs_create(&fb[c].s, 1300 + c, fb[c].mask_keep);
        float *dout = random_dout(in, 1400 + c);
        for (int64_t R = 1; R <= 2; R++) {
            snprintf(what, sizeof what, "fallback, %s, R = %lld", fb[c].name, (long long)R);
            smyrf_plan *plan = tc_smyrf_plan(&in->s, R, 8, 77 + c);
            grads g = run_grads(plan, in, dout);
            ref_grads r = ref_smyrf(in, dout, R, 8, 77 + c);
            const size_t n_fb = count(r.fallback, in->nlse);
            if (n_fb == 0) fail_msg("%s: no fallback row: the case tests nothing", what);
            if (getenv("SMYRF_TEST_VERBOSE")) print_message("%s: %zu fallback rows\n", what, n_fb);
            compare_grads(&g, &r, in, 1, GRAD_RTOL, what);
            assert_padded_keys_zero(&g, in, what);
            /* A sure fallback row's dq is zero exactly. */
            for (size_t i = 0; i < in->nlse; i++) {
                if (!r.fallback[i] || r.q_unsure[i]) continue;
                for (int64_t e = 0; e < in->s.qk_dim; e++)
                    if (g.dq[i * in->s.qk_dim + e] != 0.0f)
                        fail_msg("%s: fallback row %zu has dq %g", what, i,
                                 (double)g.dq[i * in->s.qk_dim + e]);
            }
            grads_free(&g), ref_free(&r);
            smyrf_plan_destroy(plan);
        }
        free(dout);
        tc_inputs_destroy(in);
    }
}

/* A batch whose keys are all padded: zero out, lse = -inf, and zero gradients. */
static void all_keys_padded(void **state) {
    (void)state;
    const tc_shape s = {2, 2, 1, 70, 90, 8, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 1500, 0.5);
    memset(in->mask + in->s.k_len, 0, (size_t)in->s.k_len); /* batch 1: nothing valid */
    float *dout = random_dout(in, 1501);
    for (int mode = 0; mode < 2; mode++) {
        const char *what = mode ? "all padded, DENSE" : "all padded, SMYRF";
        smyrf_plan *plan = mode ? tc_dense_plan(&in->s) : tc_smyrf_plan(&in->s, 2, 16, 3);
        grads g = run_grads(plan, in, dout);
        const size_t empty = assert_empty_rows_zero(&g, in, what);
        assert_int_equal(empty, (size_t)(in->s.heads * in->s.q_len));
        assert_padded_keys_zero(&g, in, what);
        ref_grads r = mode ? ref_dense(in, dout, 0) : ref_smyrf(in, dout, 2, 16, 3);
        compare_grads(&g, &r, in, !mode, GRAD_RTOL, what);
        grads_free(&g), ref_free(&r);
        smyrf_plan_destroy(plan);
    }
    free(dout);
    tc_inputs_destroy(in);
}

/* ---------------------------------------------------------------- finite differences */

/* L = sum(dout * out) through the float64 reference forward. */
static double ref_loss(const smyrf_ref_problem *rp, int smyrf, int64_t R, int64_t cq,
                       uint64_t seed, const double *dout, double *out, size_t n_out) {
    if (smyrf)
        smyrf_ref_smyrf(rp, R, cq, seed, out, NULL, NULL);
    else
        smyrf_ref_dense(rp, out, NULL);
    double l = 0;
    for (size_t i = 0; i < n_out; i++) l += dout[i] * out[i];
    return l;
}

/* Central differences of every entry of x (q, k or v in float64) against grad. */
static void check_fd(smyrf_ref_problem *rp, double *x, size_t n, const double *grad, int smyrf,
                     int64_t R, int64_t cq, uint64_t seed, const double *dout, double *out,
                     size_t n_out, const char *what) {
    const double eps = 1e-6;
    double big = 0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs(grad[i]));
    for (size_t i = 0; i < n; i++) {
        const double keep = x[i];
        x[i] = keep + eps;
        const double up = ref_loss(rp, smyrf, R, cq, seed, dout, out, n_out);
        x[i] = keep - eps;
        const double down = ref_loss(rp, smyrf, R, cq, seed, dout, out, n_out);
        x[i] = keep;
        const double fd = (up - down) / (2 * eps);
        if (!(fabs(fd - grad[i]) <= 1e-6 * (1 + big)))
            fail_msg("%s: element %zu: finite difference %.12g, gradient %.12g", what, i, fd,
                     grad[i]);
    }
}

static void finite_differences(void **state) {
    (void)state;
    typedef struct fd_case {
        const char *name;
        tc_shape s;
        double mask_keep;
        int smyrf;
        int64_t R, cq;
    } fd_case;
    static const fd_case fds[] = {
        {"DENSE, GQA, cross, padded", {1, 2, 1, 5, 7, 4, 3, 0}, 0.7, 0, 0, 0},
        {"DENSE, causal, keys past queries", {2, 1, 0, 5, 8, 4, 3, 1}, 0, 0, 0, 0},
        {"SMYRF, R = 2", {1, 2, 1, 12, 12, 4, 3, 0}, 0, 1, 2, 4},
        {"SMYRF, causal, R = 2, fallbacks", {1, 1, 0, 12, 12, 4, 0, 1}, 0, 1, 2, 3},
        {"SMYRF, padded, R = 3", {1, 2, 2, 10, 14, 4, 5, 0}, 0.6, 1, 3, 4},
    };
    char what[200];
    for (size_t c = 0; c < sizeof fds / sizeof fds[0]; c++) {
        const fd_case *f = &fds[c];
        tc_inputs *in = tc_inputs_create(&f->s, 1600 + c, f->mask_keep);
        float *dout = random_dout(in, 1700 + c);
        ref_grads r = f->smyrf ? ref_smyrf(in, dout, f->R, f->cq, 11)
                               : ref_dense(in, dout, 0);
        smyrf_ref_problem rp = tc_ref_problem(in);
        double *dd = to_doubles(dout, in->no_el), *out = tc_doubles(in->no_el);
        snprintf(what, sizeof what, "finite differences, %s, dq", f->name);
        check_fd(&rp, in->qd, in->nq_el, r.dq, f->smyrf, f->R, f->cq, 11, dd, out, in->no_el, what);
        snprintf(what, sizeof what, "finite differences, %s, dk", f->name);
        check_fd(&rp, in->kd, in->nk_el, r.dk, f->smyrf, f->R, f->cq, 11, dd, out, in->no_el, what);
        snprintf(what, sizeof what, "finite differences, %s, dv", f->name);
        check_fd(&rp, in->vd, in->nv_el, r.dv, f->smyrf, f->R, f->cq, 11, dd, out, in->no_el, what);
        /* and the library against the (now checked) reference */
        smyrf_plan *plan = f->smyrf ? tc_smyrf_plan(&in->s, f->R, f->cq, 11) : tc_dense_plan(&in->s);
        grads g = run_grads(plan, in, dout);
        snprintf(what, sizeof what, "finite differences, %s, library", f->name);
        compare_grads(&g, &r, in, f->smyrf, GRAD_RTOL, what);
        grads_free(&g), ref_free(&r);
        smyrf_plan_destroy(plan);
        free(dd), free(out), free(dout);
        tc_inputs_destroy(in);
    }
}

/* ---------------------------------------------------------------- determinism */

static smyrf_plan *plan_threads(const tc_shape *s, int smyrf, int64_t threads) {
    smyrf_config *cfg = smyrf ? tc_smyrf_config(s, 3, 24, 99) : tc_config(s, SMYRF_MODE_DENSE);
    tc_set(cfg, SMYRF_PARAM_THREADS, threads);
    return tc_plan_from(cfg);
}

/* dq, dk and dv the same bits as want's. */
static void assert_same_grads(const tc_inputs *in, const float *dq, const float *dk,
                              const float *dv, const grads *want, const char *what) {
    char name[200];
    snprintf(name, sizeof name, "%s: dq", what);
    tc_assert_same_bits(dq, want->dq, in->nq_el * sizeof(float), name);
    snprintf(name, sizeof name, "%s: dk", what);
    tc_assert_same_bits(dk, want->dk, in->nk_el * sizeof(float), name);
    snprintf(name, sizeof name, "%s: dv", what);
    tc_assert_same_bits(dv, want->dv, in->nv_el * sizeof(float), name);
}

/* The same gradients whatever the thread count and whatever dq, dk and dv held before:
 * NaN (run_grads), the previous result, zeros or random values. */
static void bitwise_across_thread_counts(void **state) {
    (void)state;
    static const grad_case det[] = {
        {"GQA, padded, cross", {2, 4, 2, 300, 410, 16, 8, 0}, 0.8},
        {"causal, GQA", {1, 6, 2, 260, 0, 16, 0, 1}, 0},
        /* DENSE: the dq rows summed along a chain of several key tiles */
        {"causal, padded, GQA, many key tiles", {1, 4, 2, 330, 1400, 8, 0, 1}, 0.9},
    };
    static const int64_t threads[] = {2, 3, 5, 8};
    char what[160];
    for (size_t c = 0; c < sizeof det / sizeof det[0]; c++)
        for (int smyrf = 0; smyrf < 2; smyrf++) {
            tc_inputs *in = tc_inputs_create(&det[c].s, 1800 + c, det[c].mask_keep);
            float *dout = random_dout(in, 1900 + c);
            smyrf_plan *plan = plan_threads(&in->s, smyrf, 1);
            grads one = run_grads(plan, in, dout);
            smyrf_plan_destroy(plan);
            for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
                plan = plan_threads(&in->s, smyrf, threads[t]);
                grads g = run_grads(plan, in, dout);
                snprintf(what, sizeof what, "%s, %s, %lld threads", smyrf ? "SMYRF" : "DENSE",
                         det[c].name, (long long)threads[t]);
                assert_same_grads(in, g.dq, g.dk, g.dv, &one, what);
                /* run again on the same plan, over the previous result: the same bits */
                backward_ok(plan, in, g.out, g.lse, dout, g.dq, g.dk, g.dv);
                assert_same_grads(in, g.dq, g.dk, g.dv, &one, "rerun over the result");
                /* and over zeros or random values (kinds 1 and 2 of tc_fill_prior) */
                const int kind = 1 + (int)(t % 2);
                tc_fill_prior(g.dq, in->nq_el, kind, 2000 + t);
                tc_fill_prior(g.dk, in->nk_el, kind, 2100 + t);
                tc_fill_prior(g.dv, in->nv_el, kind, 2200 + t);
                backward_ok(plan, in, g.out, g.lse, dout, g.dq, g.dk, g.dv);
                assert_same_grads(in, g.dq, g.dk, g.dv, &one,
                                  kind == 1 ? "rerun over zeros" : "rerun over random values");
                grads_free(&g);
                smyrf_plan_destroy(plan);
            }
            grads_free(&one), free(dout);
            tc_inputs_destroy(in);
        }
}

/* ---------------------------------------------------------------- layouts */

/* BNHD layout and strided views give the same gradients as contiguous BHND. */
static void layouts_agree(void **state) {
    (void)state;
    const tc_shape s = {2, 4, 2, 120, 150, 16, 8, 0};
    tc_inputs *in = tc_inputs_create(&s, 2000, 0.8);
    float *dout = random_dout(in, 2001);
    const tc_shape *t = &in->s;
    const int64_t B = t->batch, H = t->heads, Hk = t->kv_heads, Nq = t->q_len, Nk = t->k_len;
    const int64_t d = t->qk_dim, dv = t->v_dim;
    for (int smyrf = 0; smyrf < 2; smyrf++) {
        smyrf_plan *plan = smyrf ? tc_smyrf_plan(t, 2, 32, 8) : tc_dense_plan(t);
        grads want = run_grads(plan, in, dout);
        smyrf_plan_destroy(plan);

        smyrf_config *cfg = tc_config(t, smyrf ? SMYRF_MODE_SMYRF : SMYRF_MODE_DENSE);
        if (smyrf) {
            tc_set(cfg, SMYRF_PARAM_N_HASHES, 2);
            tc_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 32);
            tc_set(cfg, SMYRF_PARAM_SEED, 8);
        }
        tc_set(cfg, SMYRF_PARAM_LAYOUT, SMYRF_LAYOUT_BNHD);
        plan = tc_plan(cfg);
        smyrf_config_destroy(cfg);
        float *q = tc_alloc(in->nq_el * 4), *k = tc_alloc(in->nk_el * 4), *v = tc_alloc(in->nv_el * 4);
        float *o = tc_alloc(in->no_el * 4), *dO = tc_alloc(in->no_el * 4), *lse = tc_alloc(in->nlse * 4);
        float *dq = tc_alloc(in->nq_el * 4), *dk = tc_alloc(in->nk_el * 4), *dvv = tc_alloc(in->nv_el * 4);
        tc_scatter(in->q, B, H, Nq, d, Nq * H * d, d, H * d, SMYRF_DTYPE_F32, q);
        tc_scatter(in->k, B, Hk, Nk, d, Nk * Hk * d, d, Hk * d, SMYRF_DTYPE_F32, k);
        tc_scatter(in->v, B, Hk, Nk, dv, Nk * Hk * dv, dv, Hk * dv, SMYRF_DTYPE_F32, v);
        tc_scatter(dout, B, H, Nq, dv, Nq * H * dv, dv, H * dv, SMYRF_DTYPE_F32, dO);
        assert_int_equal(smyrf_execute(plan, q, k, v, in->mask, o, lse, NULL, 0, NULL), SMYRF_OK);
        assert_int_equal(smyrf_execute_backward(plan, q, k, v, in->mask, o, lse, dO, dq, dk, dvv,
                                                NULL, 0, NULL),
                         SMYRF_OK);
        float *g = tc_alloc(in->nk_el * 4 + in->nq_el * 4 + in->nv_el * 4);
        const char *mode = smyrf ? "BNHD, SMYRF" : "BNHD, DENSE";
        tc_gather(dq, B, H, Nq, d, Nq * H * d, d, H * d, SMYRF_DTYPE_F32, g);
        tc_assert_close_ff(g, want.dq, in->nq_el, 1e-6, 0, mode);
        tc_gather(dk, B, Hk, Nk, d, Nk * Hk * d, d, Hk * d, SMYRF_DTYPE_F32, g);
        tc_assert_close_ff(g, want.dk, in->nk_el, 1e-6, 0, mode);
        tc_gather(dvv, B, Hk, Nk, dv, Nk * Hk * dv, dv, Hk * dv, SMYRF_DTYPE_F32, g);
        tc_assert_close_ff(g, want.dv, in->nv_el, 1e-6, 0, mode);
        free(q), free(k), free(v), free(o), free(dO), free(lse), free(dq), free(dk), free(dvv),
            free(g);
        grads_free(&want);
        smyrf_plan_destroy(plan);
    }
    free(dout);
    tc_inputs_destroy(in);
}

/* ---------------------------------------------------------------- half precision */

/* The configuration of each mode under test, in dtype dt. */
static smyrf_plan *half_test_plan(const tc_shape *s, smyrf_mode mode, smyrf_dtype dt) {
    smyrf_config *cfg =
        mode == SMYRF_MODE_SMYRF ? tc_smyrf_config(s, 2, 32, 4) : tc_config(s, mode);
    if (mode == SMYRF_MODE_HYBRID) {
        tc_set(cfg, SMYRF_PARAM_BUDGET, 40);
        tc_set(cfg, SMYRF_PARAM_SEED, 4);
    }
    tc_set(cfg, SMYRF_PARAM_DTYPE, dt);
    return tc_plan_from(cfg);
}

/* f16/bf16 tensors: the float32 gradients of the same (rounded) inputs, in every mode. */
static void half_precision(void **state) {
    (void)state;
    static const smyrf_dtype dts[] = {SMYRF_DTYPE_F16, SMYRF_DTYPE_BF16};
    static const smyrf_mode modes[] = {SMYRF_MODE_DENSE, SMYRF_MODE_SMYRF, SMYRF_MODE_HYBRID};
    static const char *const names[] = {"DENSE", "SMYRF", "HYBRID"};
    for (int c = 0; c < 12; c++) {  /* causal or not, mode, dtype */
        const int causal = c / 6, mi = c / 2 % 3, di = c % 2;
        const tc_shape s = {1, 2, 1, 140, 0, 16, 0, causal};
        const smyrf_dtype dt = dts[di];
        tc_inputs *in = tc_inputs_create(&s, 2100 + di, 0.9);
        float *dout = random_dout(in, 2200 + di);
        tc_round_to(in->q, in->nq_el, dt), tc_round_to(in->k, in->nk_el, dt);
        tc_round_to(in->v, in->nv_el, dt), tc_round_to(dout, in->no_el, dt);
        tc_inputs_sync(in);
        smyrf_plan *p32 = half_test_plan(&in->s, modes[mi], SMYRF_DTYPE_F32);
        grads want = run_grads(p32, in, dout);
        smyrf_plan_destroy(p32);

        smyrf_plan *plan = half_test_plan(&in->s, modes[mi], dt);
        const tc_shape *t = &in->s;
        uint16_t *q = tc_alloc(in->nq_el * 2), *k = tc_alloc(in->nk_el * 2);
        uint16_t *v = tc_alloc(in->nv_el * 2), *dO = tc_alloc(in->no_el * 2);
        uint16_t *o = tc_alloc(in->no_el * 2), *dq = tc_alloc(in->nq_el * 2);
        uint16_t *dk = tc_alloc(in->nk_el * 2), *dvv = tc_alloc(in->nv_el * 2);
        float *lse = tc_alloc(in->nlse * 4), *g = tc_alloc(in->nq_el * 4 + in->nk_el * 4 + in->nv_el * 4);
        const int64_t d = t->qk_dim, dv = t->v_dim;
        tc_scatter(in->q, 1, t->heads, t->q_len, d, t->heads * t->q_len * d, t->q_len * d, d, dt, q);
        tc_scatter(in->k, 1, t->kv_heads, t->k_len, d, t->kv_heads * t->k_len * d, t->k_len * d, d, dt, k);
        tc_scatter(in->v, 1, t->kv_heads, t->k_len, dv, t->kv_heads * t->k_len * dv, t->k_len * dv, dv, dt, v);
        tc_scatter(dout, 1, t->heads, t->q_len, dv, t->heads * t->q_len * dv, t->q_len * dv, dv, dt, dO);
        assert_int_equal(smyrf_execute(plan, q, k, v, in->mask, o, lse, NULL, 0, NULL), SMYRF_OK);
        const smyrf_status st = smyrf_execute_backward(plan, q, k, v, in->mask, o, lse, dO, dq,
                                                       dk, dvv, NULL, 0, NULL);
        if (st != SMYRF_OK)
            fail_msg("half backward: %s: %s", smyrf_status_string(st), smyrf_last_error_message());
        /* out went through the half type: D_i moves by about its rounding */
        const double tol = dt == SMYRF_DTYPE_BF16 ? 1.5e-2 : 2e-3;
        char what[80];
        snprintf(what, sizeof what, "%s%s %s dq", names[mi], causal ? " causal" : "",
                 dt == SMYRF_DTYPE_BF16 ? "bf16" : "f16");
        tc_gather(dq, 1, t->heads, t->q_len, d, t->heads * t->q_len * d, t->q_len * d, d, dt, g);
        tc_assert_close_ff(g, want.dq, in->nq_el, tol, 0, what);
        what[strlen(what) - 1] = 'k';
        tc_gather(dk, 1, t->kv_heads, t->k_len, d, t->kv_heads * t->k_len * d, t->k_len * d, d, dt, g);
        tc_assert_close_ff(g, want.dk, in->nk_el, tol, 0, what);
        what[strlen(what) - 1] = 'v';
        tc_gather(dvv, 1, t->kv_heads, t->k_len, dv, t->kv_heads * t->k_len * dv, t->k_len * dv, dv, dt, g);
        tc_assert_close_ff(g, want.dv, in->nv_el, tol, 0, what);
        free(q), free(k), free(v), free(dO), free(o), free(dq), free(dk), free(dvv), free(lse), free(g);
        grads_free(&want), free(dout);
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
}

/* ---------------------------------------------------------------- workspace, errors */

static void caller_workspace(void **state) {
    (void)state;
    const tc_shape s = {1, 2, 1, 200, 0, 16, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 2300, 0.9);
    float *dout = random_dout(in, 2301);
    for (int smyrf = 0; smyrf < 2; smyrf++) {
        smyrf_plan *plan = smyrf ? tc_smyrf_plan(&in->s, 2, 32, 1) : tc_dense_plan(&in->s);
        grads want = run_grads(plan, in, dout);
        const size_t bytes = smyrf_plan_backward_workspace_size(plan);
        assert_true(bytes > 0);
        char *ws = (char *)malloc(bytes + 1);
        float *dq = tc_nan_floats(in->nq_el), *dk = tc_nan_floats(in->nk_el), *dv = tc_nan_floats(in->nv_el);
        /* misaligned on purpose: the library aligns inside the slack */
        assert_int_equal(smyrf_execute_backward(plan, in->q, in->k, in->v, in->mask, want.out,
                                                want.lse, dout, dq, dk, dv, ws + 1, bytes, NULL),
                         SMYRF_OK);
        tc_assert_same_bits(dq, want.dq, in->nq_el * 4, "workspace dq");
        tc_assert_same_bits(dk, want.dk, in->nk_el * 4, "workspace dk");
        tc_assert_same_bits(dv, want.dv, in->nv_el * 4, "workspace dv");
        /* one byte short: refused, nothing written */
        float *dq2 = tc_nan_floats(in->nq_el);
        const smyrf_status st = smyrf_execute_backward(plan, in->q, in->k, in->v, in->mask,
                                                       want.out, want.lse, dout, dq2, dk, dv,
                                                       ws, bytes - 1, NULL);
        assert_int_equal(st, SMYRF_ERR_INVALID_ARGUMENT);
        assert_true(tc_mentions(smyrf_last_error_message(), "workspace_bytes") ||
                    tc_mentions(smyrf_last_error_message(), "workspace"));
        for (size_t i = 0; i < in->nq_el; i++) assert_true(isnan(dq2[i]));
        free(ws), free(dq), free(dk), free(dv), free(dq2);
        grads_free(&want);
        smyrf_plan_destroy(plan);
    }
    free(dout);
    tc_inputs_destroy(in);
}

static void error_paths(void **state) {
    (void)state;
    const tc_shape s = {1, 2, 1, 64, 80, 8, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 2400, 0);
    float *dout = random_dout(in, 2401);
    smyrf_plan *plan = tc_smyrf_plan(&in->s, 2, 16, 1);
    grads g = run_grads(plan, in, dout);
    float *dq = tc_nan_floats(in->nq_el), *dk = tc_nan_floats(in->nk_el), *dv = tc_nan_floats(in->nv_el);
    const void *q = in->q, *k = in->k, *v = in->v, *o = g.out, *dO = dout;
    const float *lse = g.lse;

#define EXPECT_INVALID(call, arg)                                                          \
    do {                                                                                   \
        const smyrf_status st_ = (call);                                                   \
        if (st_ != SMYRF_ERR_INVALID_ARGUMENT)                                             \
            fail_msg("%s: status %s, want invalid argument", #call, smyrf_status_string(st_)); \
        if (!tc_mentions(smyrf_last_error_message(), arg))                                    \
            fail_msg("%s: message \"%s\" does not name %s", #call,                         \
                     smyrf_last_error_message(), arg);                                     \
        for (size_t i_ = 0; i_ < in->nq_el; i_++)                                          \
            if (!isnan(dq[i_])) fail_msg("%s: dq written", #call);                         \
        for (size_t i_ = 0; i_ < in->nk_el; i_++)                                          \
            if (!isnan(dk[i_])) fail_msg("%s: dk written", #call);                         \
        for (size_t i_ = 0; i_ < in->nv_el; i_++)                                          \
            if (!isnan(dv[i_])) fail_msg("%s: dv written", #call);                         \
    } while (0)

    EXPECT_INVALID(smyrf_execute_backward(NULL, q, k, v, NULL, o, lse, dO, dq, dk, dv, NULL, 0, NULL), "plan");
    EXPECT_INVALID(smyrf_execute_backward(plan, NULL, k, v, NULL, o, lse, dO, dq, dk, dv, NULL, 0, NULL), "q");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, NULL, v, NULL, o, lse, dO, dq, dk, dv, NULL, 0, NULL), "k");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, NULL, NULL, o, lse, dO, dq, dk, dv, NULL, 0, NULL), "v");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, NULL, lse, dO, dq, dk, dv, NULL, 0, NULL), "out");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, NULL, dO, dq, dk, dv, NULL, 0, NULL), "lse");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, NULL, dq, dk, dv, NULL, 0, NULL), "dout");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, NULL, dk, dv, NULL, 0, NULL), "dq");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, NULL, dv, NULL, 0, NULL), "dk");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, dk, NULL, NULL, 0, NULL), "dv");
    /* a workspace size without a workspace, or a workspace of size 0 */
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, dk, dv, NULL, 64, NULL), "workspace");
    /* overlaps: an output over an input, or over another output */
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, (void *)q, dk, dv, NULL, 0, NULL), "dq");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, dk, (void *)o, NULL, 0, NULL), "dv");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, (void *)dO, dv, NULL, 0, NULL), "dk");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, (void *)lse, dv, NULL, 0, NULL), "dk");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, dk, dk + 1, NULL, 0, NULL), "dv");
    assert_non_null(strstr(smyrf_last_error_message(), "outputs must not overlap each other"));
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, dk, dv, dq, 1 << 20, NULL), "workspace");
    /* a tensor off its 4-byte elements' alignment: input, lse or gradient */
    const char *qb = (const char *)q, *lb = (const char *)lse;
    EXPECT_INVALID(smyrf_execute_backward(plan, qb + 1, k, v, NULL, o, lse, dO, dq, dk, dv, NULL, 0, NULL), "q");
    assert_non_null(strstr(smyrf_last_error_message(), "aligned"));
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, (const float *)(lb + 2), dO, dq, dk, dv, NULL, 0, NULL), "lse");
    EXPECT_INVALID(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, (char *)dk + 3, dv, NULL, 0, NULL), "dk");
    /* the positive control */
    assert_int_equal(smyrf_execute_backward(plan, q, k, v, NULL, o, lse, dO, dq, dk, dv, NULL, 0, NULL), SMYRF_OK);
    assert_same_grads(in, dq, dk, dv, &g, "control");
    free(dq), free(dk), free(dv), free(dout);
    grads_free(&g);
    smyrf_plan_destroy(plan);
    tc_inputs_destroy(in);
}

/* A forward may read rows that its strides share (here head h's token i is head h-1's
 * token i + 1: head stride = token stride); dq is written with those strides, so the
 * backward refuses the plan, naming dq, and writes nothing. dk and dv the same through
 * k's and v's strides. */
static void shared_rows_refused(void **state) {
    (void)state;
    enum { H = 2, N = 40, D = 8 };
    const tc_shape s = {1, H, 1, N, N, D, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 2500, 0);
    float *dout = random_dout(in, 2501);
    const struct { smyrf_param batch, head, token; const char *grad; } shared[] = {
        {SMYRF_PARAM_Q_STRIDE_BATCH, SMYRF_PARAM_Q_STRIDE_HEAD, SMYRF_PARAM_Q_STRIDE_TOKEN, "dq"},
        {SMYRF_PARAM_K_STRIDE_BATCH, SMYRF_PARAM_K_STRIDE_HEAD, SMYRF_PARAM_K_STRIDE_TOKEN, "dk"},
        {SMYRF_PARAM_V_STRIDE_BATCH, SMYRF_PARAM_V_STRIDE_HEAD, SMYRF_PARAM_V_STRIDE_TOKEN, "dv"},
    };
    for (size_t c = 0; c < sizeof shared / sizeof shared[0]; c++) {
        tc_shape sc = s;
        if (c > 0) sc.kv_heads = H; /* k and v rows are shared only over 2 heads */
        tc_inputs *x = c > 0 ? tc_inputs_create(&sc, 2502, 0) : in;
        smyrf_config *cfg = tc_config(&x->s, SMYRF_MODE_DENSE);
        tc_set(cfg, shared[c].batch, (int64_t)N * D);
        tc_set(cfg, shared[c].head, D);
        tc_set(cfg, shared[c].token, D);
        smyrf_plan *plan = tc_plan_from(cfg);
        float *out = tc_nan_floats(x->no_el), *lse = tc_nan_floats(x->nlse);
        /* the forward reads the shared rows: fine */
        assert_int_equal(smyrf_execute(plan, x->q, x->k, x->v, NULL, out, lse, NULL, 0, NULL), SMYRF_OK);
        float *dq = tc_nan_floats(x->nq_el), *dk = tc_nan_floats(x->nk_el), *dv = tc_nan_floats(x->nv_el);
        float *d = c > 0 ? random_dout(x, 2503) : dout;
        assert_int_equal(smyrf_execute_backward(plan, x->q, x->k, x->v, NULL, out, lse, d, dq, dk,
                                                dv, NULL, 0, NULL),
                         SMYRF_ERR_INVALID_ARGUMENT);
        if (!tc_mentions(smyrf_last_error_message(), shared[c].grad))
            fail_msg("message \"%s\" does not name %s", smyrf_last_error_message(), shared[c].grad);
        assert_non_null(strstr(smyrf_last_error_message(), "overlap"));
        for (size_t i = 0; i < x->nq_el; i++) assert_true(isnan(dq[i]));
        for (size_t i = 0; i < x->nk_el; i++) assert_true(isnan(dk[i]));
        for (size_t i = 0; i < x->nv_el; i++) assert_true(isnan(dv[i]));
        free(dq), free(dk), free(dv), free(out), free(lse);
        if (c > 0) free(d), tc_inputs_destroy(x);
        smyrf_plan_destroy(plan);
    }
    free(dout);
    tc_inputs_destroy(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dense_matches_reference),
        cmocka_unit_test(dense_custom_scale),
        cmocka_unit_test(smyrf_matches_reference),
        cmocka_unit_test(one_cluster_is_dense),
        cmocka_unit_test(fallback_rows),
        cmocka_unit_test(all_keys_padded),
        cmocka_unit_test(finite_differences),
        cmocka_unit_test(bitwise_across_thread_counts),
        cmocka_unit_test(layouts_agree),
        cmocka_unit_test(half_precision),
        cmocka_unit_test(caller_workspace),
        cmocka_unit_test(shared_rows_refused),
        cmocka_unit_test(error_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
