/* Awkward shapes, layouts, strides and dtypes, each against the float64 reference:
 * lengths around the cluster size and odd ones, head dims 1 to 64, q_len != k_len, GQA,
 * causal, BNHD, q/k/v as views of one fused QKV buffer, padded output rows, f16, bf16. */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CQ 32           /* the cluster size the lengths are chosen around */
#define ROUNDS 2
#define F32_RTOL 1e-5
#define LSE_TOL 1e-5
/* half-precision outputs: one rounding of the output (2^-11, 2^-8) on top of float32 */
#define F16_RTOL (0x1.0p-11 + 2e-5)
#define BF16_RTOL (0x1.0p-8 + 2e-5)
#define SENTINEL 1024.0f /* exact in f16 and bf16 */

/* How the library sees the tensors. */
typedef struct view_spec {
    const char *name;
    smyrf_dtype dt;
    smyrf_layout layout;
    int fused_qkv;   /* q, k, v: views of one [B, N, 3, H, D] buffer (explicit strides) */
    int64_t out_pad; /* > 0: out rows of [B, N, H, dv + pad] (explicit strides) */
} view_spec;

static const view_spec plain = {"BHND f32", SMYRF_DTYPE_F32, SMYRF_LAYOUT_BHND, 0, 0};

typedef struct strides {
    int64_t b, h, n;
} strides;

static strides layout_strides(smyrf_layout l, int64_t H, int64_t N, int64_t D) {
    strides s = {H * N * D, N * D, D};
    if (l == SMYRF_LAYOUT_BNHD) s = (strides){N * H * D, D, H * D};
    return s;
}

static void set_strides(smyrf_config *cfg, smyrf_param first, strides s) {
    tc_set(cfg, first, s.b);
    tc_set(cfg, (smyrf_param)(first + 1), s.h);
    tc_set(cfg, (smyrf_param)(first + 2), s.n);
}

/* Runs the library on `in` as `vs` describes and compares with the reference (dense, or
 * SMYRF with ROUNDS and CQ leaving out the rows it flags unsure). */
static void check(const tc_inputs *in, int dense, const view_spec *vs, uint64_t seed,
                  const char *what) {
    const tc_shape *s = &in->s;
    const int64_t B = s->batch, H = s->heads, Hk = s->kv_heads, Nq = s->q_len, Nk = s->k_len;
    const int64_t d = s->qk_dim, dv = s->v_dim;
    const size_t es = vs->dt == SMYRF_DTYPE_F32 ? 4 : 2;
    smyrf_ref_problem rp = tc_ref_problem(in);
    double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
    uint8_t *unsure = (uint8_t *)tc_alloc(in->nlse);
    if (dense) smyrf_ref_dense(&rp, want, want_lse);
    else smyrf_ref_smyrf(&rp, ROUNDS, CQ, seed, want, want_lse, unsure);

    smyrf_config *cfg = tc_config(s, dense ? SMYRF_MODE_DENSE : SMYRF_MODE_SMYRF);
    tc_set(cfg, SMYRF_PARAM_N_HASHES, ROUNDS);
    tc_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, CQ);
    tc_set(cfg, SMYRF_PARAM_SEED, (int64_t)seed);
    tc_set(cfg, SMYRF_PARAM_DTYPE, vs->dt);
    tc_set(cfg, SMYRF_PARAM_LAYOUT, vs->layout);

    strides qs = layout_strides(vs->layout, H, Nq, d), ks = layout_strides(vs->layout, Hk, Nk, d);
    strides vst = layout_strides(vs->layout, Hk, Nk, dv), os = layout_strides(vs->layout, H, Nq, dv);
    size_t q_at = 0, k_at = 0, v_at = 0;
    void *qb, *kb, *vb, *fused = NULL;
    if (vs->fused_qkv) { /* needs Nq = Nk, H = Hk, d = dv */
        const strides f = {Nq * 3 * H * d, d, 3 * H * d};
        qs = ks = vst = f;
        k_at = (size_t)(H * d), v_at = (size_t)(2 * H * d);
        fused = tc_alloc((size_t)(B * Nq * 3 * H * d) * es);
        qb = fused, kb = fused, vb = fused;
        set_strides(cfg, SMYRF_PARAM_Q_STRIDE_BATCH, qs);
        set_strides(cfg, SMYRF_PARAM_K_STRIDE_BATCH, ks);
        set_strides(cfg, SMYRF_PARAM_V_STRIDE_BATCH, vst);
    } else {
        qb = tc_alloc(in->nq_el * es), kb = tc_alloc(in->nk_el * es), vb = tc_alloc(in->nv_el * es);
    }
    size_t out_el = in->no_el;
    if (vs->out_pad) {
        const int64_t row = dv + vs->out_pad;
        os = (strides){Nq * H * row, row, H * row};
        out_el = (size_t)(B * Nq * H * row);
        set_strides(cfg, SMYRF_PARAM_OUT_STRIDE_BATCH, os);
    }
    tc_scatter(in->q, B, H, Nq, d, qs.b, qs.h, qs.n, vs->dt, (char *)qb + q_at * es);
    tc_scatter(in->k, B, Hk, Nk, d, ks.b, ks.h, ks.n, vs->dt, (char *)kb + k_at * es);
    tc_scatter(in->v, B, Hk, Nk, dv, vst.b, vst.h, vst.n, vs->dt, (char *)vb + v_at * es);
    void *out = tc_alloc(out_el * es);
    float *sentinel = (float *)tc_alloc(out_el * sizeof(float));
    for (size_t i = 0; i < out_el; i++) sentinel[i] = SENTINEL;
    tc_scatter(sentinel, 1, 1, 1, (int64_t)out_el, 0, 0, 0, vs->dt, out);

    smyrf_plan *plan = tc_plan(cfg);
    smyrf_config_destroy(cfg);
    float *lse = tc_nan_floats(in->nlse), *got = tc_nan_floats(in->no_el);
    const smyrf_status st = smyrf_execute(plan, (char *)qb + q_at * es, (char *)kb + k_at * es,
                                          (char *)vb + v_at * es, in->mask, out, lse, NULL, 0, NULL);
    if (st != SMYRF_OK) fail_msg("%s: %s", what, smyrf_last_error_message());
    tc_gather(out, B, H, Nq, dv, os.b, os.h, os.n, vs->dt, got);
    const double rtol = vs->dt == SMYRF_DTYPE_F32 ? F32_RTOL : vs->dt == SMYRF_DTYPE_F16 ? F16_RTOL : BF16_RTOL;
    tc_assert_close(got, want, in->no_el, (size_t)dv, unsure, rtol, 0, what);
    tc_assert_lse_close(lse, want_lse, in->nlse, unsure, LSE_TOL, what);
    tc_assert_all_finite(got, in->no_el, what);
    if (vs->out_pad) { /* the padding columns of out are not written */
        float *all = tc_nan_floats(out_el);
        tc_gather(out, 1, 1, 1, (int64_t)out_el, 0, 0, 0, vs->dt, all);
        for (size_t i = 0; i < out_el; i++)
            if ((int64_t)(i % (size_t)(dv + vs->out_pad)) >= dv && all[i] != SENTINEL)
                fail_msg("%s: padding element %zu of out was written (%g)", what, i, (double)all[i]);
        free(all);
    }
    size_t n_unsure = 0;
    for (size_t i = 0; i < in->nlse; i++) n_unsure += unsure[i];
    if (n_unsure * 4 > in->nlse) fail_msg("%s: %zu of %zu rows unsure", what, n_unsure, in->nlse);

    smyrf_plan_destroy(plan);
    if (fused) free(fused);
    else free(qb), free(kb), free(vb);
    free(out), free(sentinel), free(lse), free(got), free(want), free(want_lse), free(unsure);
}

/* Every awkward shape (common.h) in DENSE and SMYRF mode. */
static void awkward_shapes(void **state) {
    (void)state;
    char what[160];
    for (size_t li = 0; li < TC_AWKWARD_LENGTHS; li++)
        for (size_t di = 0; di < TC_AWKWARD_DIMS; di++) {
            double keep;
            const tc_shape s = tc_awkward_shape(li, di, &keep);
            tc_inputs *in = tc_inputs_create(&s, 2000 + li * 4 + di, keep);
            for (int dense = 0; dense < 2; dense++) {
                tc_describe(in, dense ? "dense" : "smyrf", what, sizeof what);
                check(in, dense, &plain, 31 + li, what);
            }
            tc_inputs_destroy(in);
        }
}

/* q_len != k_len both ways, extreme ratios, causal and not. */
static void cross_lengths(void **state) {
    (void)state;
    const int64_t pairs[][2] = {{1, 1023}, {1023, 1}, {CQ + 1, 587}, {587, CQ - 1}, {143, 144}};
    char what[96];
    for (size_t p = 0; p < 5; p++)
        for (int causal = 0; causal < 2; causal++) {
            const tc_shape s = {1, 2, 1, pairs[p][0], pairs[p][1], 16, 0, causal};
            tc_inputs *in = tc_inputs_create(&s, 2100 + p, 0);
            for (int dense = 0; dense < 2; dense++) {
                snprintf(what, sizeof what, "%s Nq %lld Nk %lld causal %d", dense ? "dense" : "smyrf",
                         (long long)pairs[p][0], (long long)pairs[p][1], causal);
                check(in, dense, &plain, 7, what);
            }
            tc_inputs_destroy(in);
        }
}

/* Layouts, strides and dtypes on one shape each: every view must give the reference. */
static void layouts_strides_dtypes(void **state) {
    (void)state;
    const view_spec views[] = {
        {"BNHD f32", SMYRF_DTYPE_F32, SMYRF_LAYOUT_BNHD, 0, 0},
        {"fused QKV f32, padded out rows", SMYRF_DTYPE_F32, SMYRF_LAYOUT_BHND, 1, 3},
        {"BHND f16", SMYRF_DTYPE_F16, SMYRF_LAYOUT_BHND, 0, 0},
        {"BHND bf16", SMYRF_DTYPE_BF16, SMYRF_LAYOUT_BHND, 0, 0},
        {"BNHD f16, fused QKV", SMYRF_DTYPE_F16, SMYRF_LAYOUT_BNHD, 1, 0},
        {"BNHD bf16, padded out rows", SMYRF_DTYPE_BF16, SMYRF_LAYOUT_BNHD, 0, 5},
    };
    char what[160];
    for (size_t v = 0; v < sizeof views / sizeof views[0]; v++)
        for (int causal = 0; causal < 2; causal++) {
            /* GQA (4 heads over 2) wherever q, k, v are separate tensors */
            const tc_shape s = {2, 4, views[v].fused_qkv ? 0 : 2, 143, 143, 21, 0, causal};
            tc_inputs *in = tc_inputs_create(&s, 2200 + v, views[v].fused_qkv ? 0 : 0.8);
            tc_round_to(in->q, in->nq_el, views[v].dt);
            tc_round_to(in->k, in->nk_el, views[v].dt);
            tc_round_to(in->v, in->nv_el, views[v].dt);
            tc_inputs_sync(in);
            for (int dense = 0; dense < 2; dense++) {
                snprintf(what, sizeof what, "%s, %s, causal %d", views[v].name, dense ? "dense" : "smyrf", causal);
                check(in, dense, &views[v], 9, what);
            }
            tc_inputs_destroy(in);
        }
}

/* fp16 and bf16 tensors are staged (converted to fp32 and back) in parallel blocks of
 * rows (cpu/backend.cpp): lengths that span several blocks, strided, in both layouts. */
static void half_precision_long_rows(void **state) {
    (void)state;
    const view_spec views[] = {
        {"BNHD f16, fused QKV", SMYRF_DTYPE_F16, SMYRF_LAYOUT_BNHD, 1, 0},
        {"BHND bf16, padded out rows", SMYRF_DTYPE_BF16, SMYRF_LAYOUT_BHND, 0, 3},
    };
    char what[160];
    for (size_t v = 0; v < sizeof views / sizeof views[0]; v++) {
        const int fused = views[v].fused_qkv;
        const tc_shape s = {1, 2, fused ? 0 : 1, 1100, fused ? 1100 : 1300, 8, 0, 0};
        tc_inputs *in = tc_inputs_create(&s, 2250 + v, fused ? 0 : 0.9);
        tc_round_to(in->q, in->nq_el, views[v].dt);
        tc_round_to(in->k, in->nk_el, views[v].dt);
        tc_round_to(in->v, in->nv_el, views[v].dt);
        tc_inputs_sync(in);
        for (int dense = 0; dense < 2; dense++) {
            snprintf(what, sizeof what, "%s, %s, long rows", views[v].name, dense ? "dense" : "smyrf");
            check(in, dense, &views[v], 11, what);
        }
        tc_inputs_destroy(in);
    }
}

/* GQA with explicit strides on k and v only (a KV cache view with room for more tokens). */
static void gqa_kv_cache_view(void **state) {
    (void)state;
    const tc_shape s = {2, 6, 2, 40, 100, 8, 12, 1};
    tc_inputs *in = tc_inputs_create(&s, 2300, 0);
    smyrf_ref_problem rp = tc_ref_problem(in);
    double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
    smyrf_ref_dense(&rp, want, want_lse);
    /* cache [B, Hk, 128 tokens, D]: only the first Nk = 100 tokens are in use */
    const strides ks = {2 * 128 * 8, 128 * 8, 8}, vs = {2 * 128 * 12, 128 * 12, 12};
    float *kc = tc_nan_floats(2 * 2 * 128 * 8), *vc = tc_nan_floats(2 * 2 * 128 * 12);
    tc_scatter(in->k, 2, 2, 100, 8, ks.b, ks.h, ks.n, SMYRF_DTYPE_F32, kc);
    tc_scatter(in->v, 2, 2, 100, 12, vs.b, vs.h, vs.n, SMYRF_DTYPE_F32, vc);
    smyrf_config *cfg = tc_config(&in->s, SMYRF_MODE_DENSE);
    set_strides(cfg, SMYRF_PARAM_K_STRIDE_BATCH, ks);
    set_strides(cfg, SMYRF_PARAM_V_STRIDE_BATCH, vs);
    smyrf_plan *plan = tc_plan(cfg);
    smyrf_config_destroy(cfg);
    float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
    assert_int_equal(smyrf_execute(plan, in->q, kc, vc, NULL, out, lse, NULL, 0, NULL), SMYRF_OK);
    tc_assert_close(out, want, in->no_el, 12, NULL, F32_RTOL, 0, "KV cache view");
    tc_assert_lse_close(lse, want_lse, in->nlse, NULL, LSE_TOL, "KV cache view");
    smyrf_plan_destroy(plan);
    free(kc), free(vc), free(out), free(lse), free(want), free(want_lse);
    tc_inputs_destroy(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(awkward_shapes),
        cmocka_unit_test(cross_lengths),
        cmocka_unit_test(layouts_strides_dtypes),
        cmocka_unit_test(half_precision_long_rows),
        cmocka_unit_test(gqa_kv_cache_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
