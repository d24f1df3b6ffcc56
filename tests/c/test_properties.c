/* The properties ALGORITHM.md promises, checked on the library alone (no reference
 * needed): padding invariance, constants, convex hull, lse bounds, reproducibility
 * across runs, thread counts and concurrent callers, inputs left alone, outputs fully
 * written, rows with no allowed key, and no NaN ever in causal mode. */
#include "common.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The plans the properties run: SMYRF with several clusters, DENSE, and HYBRID with and
 * without its expansion (budget 48: it expands below 160 valid keys, never in causal). */
enum { K_SMYRF, K_DENSE, K_HYBRID, K_HYBRID_NO_EXPAND, N_KINDS };
static const char *const kind_names[N_KINDS] = {"smyrf", "dense", "hybrid", "hybrid, expand 0"};
static smyrf_plan *plan_of(const tc_shape *s, int kind, int64_t threads) {
    smyrf_config *cfg = kind == K_SMYRF ? tc_smyrf_config(s, 3, 24, 77)
                        : tc_config(s, kind == K_DENSE ? SMYRF_MODE_DENSE : SMYRF_MODE_HYBRID);
    if (kind >= K_HYBRID) tc_set(cfg, SMYRF_PARAM_BUDGET, 48);
    if (kind == K_HYBRID_NO_EXPAND) tc_set(cfg, SMYRF_PARAM_EXPAND, 0);
    tc_set(cfg, SMYRF_PARAM_THREADS, threads);
    return tc_plan_from(cfg);
}

/* The two modes most properties here hold for (HYBRID has its own suites). */
static smyrf_plan *plan_for(const tc_shape *s, int dense, int64_t threads) {
    return plan_of(s, dense ? K_DENSE : K_SMYRF, threads);
}

static const tc_shape shapes[] = {
    {2, 3, 0, 150, 0, 16, 8, 0},
    {2, 4, 2, 97, 211, 8, 0, 1},
    {1, 2, 1, 211, 97, 21, 0, 1},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* Padded keys and values may hold anything, NaN and Inf included: no output changes. */
static void padding_changes_nothing(void **state) {
    (void)state;
    const float junk[] = {NAN, INFINITY, -INFINITY, 3e38f};
    for (size_t c = 0; c < N_SHAPES; c++)
        for (int dense = 0; dense < 2; dense++) {
            tc_inputs *in = tc_inputs_create(&shapes[c], 400 + c, 0.5);
            smyrf_plan *plan = plan_for(&in->s, dense, 0);
            float *out0 = tc_nan_floats(in->no_el), *lse0 = tc_nan_floats(in->nlse);
            float *out1 = tc_nan_floats(in->no_el), *lse1 = tc_nan_floats(in->nlse);
            tc_run(plan, in, out0, lse0);
            const int64_t B = in->s.batch, Hk = in->s.kv_heads, Nk = in->s.k_len;
            for (int t = 0; t < 4; t++) {
                for (int64_t b = 0; b < B; b++)
                    for (int64_t h = 0; h < Hk; h++)
                        for (int64_t j = 0; j < Nk; j++) {
                            if (in->mask[b * Nk + j]) continue;
                            const size_t row = (size_t)((b * Hk + h) * Nk + j);
                            for (int64_t e = 0; e < in->s.qk_dim; e++) in->k[row * in->s.qk_dim + e] = junk[t];
                            for (int64_t e = 0; e < in->s.v_dim; e++) in->v[row * in->s.v_dim + e] = junk[(t + 1) % 4];
                        }
                tc_run(plan, in, out1, lse1);
                tc_assert_same_bits(out1, out0, in->no_el * sizeof(float), "out with junk padding");
                tc_assert_same_bits(lse1, lse0, in->nlse * sizeof(float), "lse with junk padding");
            }
            smyrf_plan_destroy(plan);
            free(out0), free(out1), free(lse0), free(lse1);
            tc_inputs_destroy(in);
        }
}

/* Causal DENSE and HYBRID: the first `cut + 1` queries' outputs and lse keep their bits
 * when every key and value they may not see changes. SMYRF does not promise this: its
 * hashing runs over all valid keys, future ones included (docs/guarantees.md). */
static void causal_ignores_future_keys(void **state) {
    (void)state;
    const int kinds[] = {K_DENSE, K_HYBRID, K_HYBRID_NO_EXPAND};
    for (size_t c = 1; c < N_SHAPES; c++) /* the causal shapes */
        for (size_t kind = 0; kind < 3; kind++) {
            tc_inputs *in = tc_inputs_create(&shapes[c], 480 + c, 0.7);
            const tc_shape *s = &in->s;
            smyrf_plan *plan = plan_of(s, kinds[kind], 2);
            float *out0 = tc_nan_floats(in->no_el), *lse0 = tc_nan_floats(in->nlse);
            float *out1 = tc_nan_floats(in->no_el), *lse1 = tc_nan_floats(in->nlse);
            tc_run(plan, in, out0, lse0);
            /* (with q_len > k_len the first queries see no key at all: zeros, -inf) */
            const int64_t cut = s->q_len * 2 / 3, last_seen = cut + s->k_len - s->q_len,
                          first_future = last_seen < 0 ? 0 : last_seen + 1;
            tc_rng r = tc_rng_make(490 + c);
            for (int64_t bh = 0; bh < s->batch * s->kv_heads; bh++)
                for (int64_t j = first_future; j < s->k_len; j++) {
                    tc_fill_normal(&r, in->k + (bh * s->k_len + j) * s->qk_dim, (size_t)s->qk_dim, 4.0);
                    tc_fill_normal(&r, in->v + (bh * s->k_len + j) * s->v_dim, (size_t)s->v_dim, 4.0);
                }
            tc_run(plan, in, out1, lse1);
            for (int64_t bh = 0; bh < s->batch * s->heads; bh++) {
                const size_t row0 = (size_t)(bh * s->q_len), rows = (size_t)(cut + 1);
                tc_assert_same_bits(out1 + row0 * s->v_dim, out0 + row0 * s->v_dim,
                                    rows * s->v_dim * sizeof(float), kind_names[kinds[kind]]);
                tc_assert_same_bits(lse1 + row0, lse0 + row0, rows * sizeof(float),
                                    kind_names[kinds[kind]]);
            }
            smyrf_plan_destroy(plan);
            free(out0), free(out1), free(lse0), free(lse1);
            tc_inputs_destroy(in);
        }
}

/* DENSE and HYBRID (expanding where a shape allows): a query row reaches its own output
 * row and nothing else, whatever it holds (a padded position's query included). SMYRF
 * promises no such thing: every query takes part in its problem's hashing
 * (docs/guarantees.md, "What an output row depends on"). */
static void query_rows_are_independent(void **state) {
    (void)state;
    const float junk[] = {NAN, INFINITY, 1e4f, -3.0f};
    for (size_t c = 0; c < N_SHAPES; c++)
        for (int hybrid = 0; hybrid < 2; hybrid++) {
            tc_inputs *in = tc_inputs_create(&shapes[c], 450 + c, 0.5);
            smyrf_config *cfg = tc_config(&in->s, hybrid ? SMYRF_MODE_HYBRID : SMYRF_MODE_DENSE);
            if (hybrid) tc_set(cfg, SMYRF_PARAM_BUDGET, 48);  /* expands below 160 keys */
            tc_set(cfg, SMYRF_PARAM_THREADS, 2);
            smyrf_plan *plan = tc_plan_from(cfg);
            const int64_t H = in->s.heads, Nq = in->s.q_len, d = in->s.qk_dim, dv = in->s.v_dim;
            float *out0 = tc_nan_floats(in->no_el), *lse0 = tc_nan_floats(in->nlse);
            float *out1 = tc_nan_floats(in->no_el), *lse1 = tc_nan_floats(in->nlse);
            tc_run(plan, in, out0, lse0);
            for (int t = 0; t < 4; t++) {
                const int64_t row = (int64_t)((size_t)(t + 1) * 7919 % in->nlse);  /* (b, h, i) */
                for (int64_t e = 0; e < d; e++) in->q[row * d + e] = e % 2 ? junk[t] : -junk[t];
                tc_run(plan, in, out1, lse1);
                for (int64_t r = 0; r < (int64_t)in->nlse; r++) {
                    if (r == row) continue;
                    if (memcmp(out1 + r * dv, out0 + r * dv, (size_t)dv * sizeof(float)) ||
                        memcmp(lse1 + r, lse0 + r, sizeof(float)))
                        fail_msg("shape %zu, %s: changing query row %lld (b %lld, h %lld, i %lld) "
                                 "changed row %lld", c, hybrid ? "HYBRID" : "DENSE",
                                 (long long)row, (long long)(row / (H * Nq)),
                                 (long long)(row / Nq % H), (long long)(row % Nq), (long long)r);
                }
                /* the control: the changed row itself moved (where it has an allowed key) */
                if (isfinite(lse0[row]))
                    assert_true(memcmp(out1 + row * dv, out0 + row * dv, (size_t)dv * sizeof(float)) ||
                                memcmp(lse1 + row, lse0 + row, sizeof(float)));
                memcpy(out0, out1, in->no_el * sizeof(float));
                memcpy(lse0, lse1, in->nlse * sizeof(float));
            }
            smyrf_plan_destroy(plan);
            free(out0), free(out1), free(lse0), free(lse1);
            tc_inputs_destroy(in);
        }
}

/* Output rows are convex combinations of value rows: all values equal to one vector
 * give that vector; random values keep every output inside their coordinate range. */
static void outputs_are_convex_combinations(void **state) {
    (void)state;
    for (size_t c = 0; c < N_SHAPES; c++)
        for (int dense = 0; dense < 2; dense++) {
            tc_inputs *in = tc_inputs_create(&shapes[c], 500 + c, 0.7);
            smyrf_plan *plan = plan_for(&in->s, dense, 0);
            float *out = tc_nan_floats(in->no_el);
            const int64_t dv = in->s.v_dim;
            tc_run(plan, in, out, NULL);
            float lo = INFINITY, hi = -INFINITY; /* over every value, a loose hull */
            for (size_t i = 0; i < in->nv_el; i++) lo = fminf(lo, in->v[i]), hi = fmaxf(hi, in->v[i]);
            for (size_t i = 0; i < in->no_el; i++)
                if (!(out[i] >= lo - 1e-5f && out[i] <= hi + 1e-5f))
                    fail_msg("out[%zu] = %g outside [%g, %g]", i, (double)out[i], (double)lo, (double)hi);

            double *want = tc_doubles(in->no_el);
            for (size_t i = 0; i < in->nv_el; i++) in->v[i] = (float)(0.25 * (double)(i % dv) - 1.5);
            for (size_t i = 0; i < in->no_el; i++) {
                /* key 0 is never padded: only causal rows before it have no key (zeros) */
                const int64_t row_pos = (int64_t)(i / (size_t)dv) % in->s.q_len;
                const int none = in->s.causal && row_pos + in->s.k_len - in->s.q_len < 0;
                want[i] = none ? 0.0 : 0.25 * (double)(i % dv) - 1.5;
            }
            tc_run(plan, in, out, NULL);
            tc_assert_close(out, want, in->no_el, (size_t)dv, NULL, 2e-6, 0, "constant values");
            smyrf_plan_destroy(plan);
            free(out), free(want);
            tc_inputs_destroy(in);
        }
}

/* lse is consistent with what the rows attended: DENSE's lse normalises the softmax of
 * every allowed key; SMYRF's R rounds see subsets of those keys, so its lse is at most
 * dense lse + log R (and exactly that with one cluster, in test_smyrf). */
static void lse_is_consistent(void **state) {
    (void)state;
    for (size_t c = 0; c < N_SHAPES; c++) {
        tc_inputs *in = tc_inputs_create(&shapes[c], 600 + c, 0.7);
        smyrf_ref_problem rp = tc_ref_problem(in);
        double *ref_out = tc_doubles(in->no_el), *ref_lse = tc_doubles(in->nlse);
        smyrf_ref_dense(&rp, ref_out, ref_lse);
        float *out = tc_nan_floats(in->no_el), *dlse = tc_nan_floats(in->nlse), *slse = tc_nan_floats(in->nlse);
        smyrf_plan *dense = plan_for(&in->s, 1, 0), *smyrf = plan_for(&in->s, 0, 0);
        tc_run(dense, in, out, dlse);
        tc_run(smyrf, in, out, slse);
        tc_assert_lse_close(dlse, ref_lse, in->nlse, NULL, 1e-5, "dense lse");
        for (size_t i = 0; i < in->nlse; i++) {
            if (isinf(ref_lse[i])) {
                assert_true(isinf(slse[i]) && slse[i] < 0);
                continue;
            }
            if (!(slse[i] <= ref_lse[i] + log(3.0) + 1e-4 * (1 + fabs(ref_lse[i]))))
                fail_msg("row %zu: smyrf lse %g above dense %g + log 3", i, (double)slse[i], ref_lse[i]);
        }
        smyrf_plan_destroy(dense), smyrf_plan_destroy(smyrf);
        free(out), free(dlse), free(slse), free(ref_out), free(ref_lse);
        tc_inputs_destroy(in);
    }
}

/* Bitwise the same run after run, and for THREADS = 1, 2, 3, 4 and 0 (all). */
static void reproducible_across_runs_and_threads(void **state) {
    (void)state;
    const int64_t threads[] = {1, 2, 3, 4, 0};
    for (size_t c = 0; c < N_SHAPES; c++)
        for (int dense = 0; dense < 2; dense++) {
            tc_inputs *in = tc_inputs_create(&shapes[c], 700 + c, 0.8);
            float *out0 = tc_nan_floats(in->no_el), *lse0 = tc_nan_floats(in->nlse);
            float *out1 = tc_nan_floats(in->no_el), *lse1 = tc_nan_floats(in->nlse);
            for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
                smyrf_plan *plan = plan_for(&in->s, dense, threads[t]);
                for (int rep = 0; rep < 2; rep++) {
                    float *o = (t == 0 && rep == 0) ? out0 : out1, *l = (t == 0 && rep == 0) ? lse0 : lse1;
                    tc_run(plan, in, o, l);
                    if (o == out0) continue;
                    char what[96];
                    snprintf(what, sizeof what, "%s, shape %zu, threads %lld, run %d",
                             dense ? "dense" : "smyrf", c, (long long)threads[t], rep);
                    tc_assert_same_bits(out1, out0, in->no_el * sizeof(float), what);
                    tc_assert_same_bits(lse1, lse0, in->nlse * sizeof(float), what);
                }
                smyrf_plan_destroy(plan);
            }
            free(out0), free(out1), free(lse0), free(lse1);
            tc_inputs_destroy(in);
        }
}

/* Execute reads q, k, v and the mask and writes nothing else but out, lse, workspace
 * (padded keys' rows included), in every mode. */
static void inputs_unchanged(void **state) {
    (void)state;
    for (int kind = 0; kind < N_KINDS * 2; kind++) {
        tc_inputs *in = tc_inputs_create(&shapes[kind / N_KINDS], 800, 0.6);
        float *q = (float *)tc_alloc(in->nq_el * 4), *k = (float *)tc_alloc(in->nk_el * 4), *v = (float *)tc_alloc(in->nv_el * 4);
        uint8_t *mask = (uint8_t *)tc_alloc((size_t)(in->s.batch * in->s.k_len));
        memcpy(q, in->q, in->nq_el * 4), memcpy(k, in->k, in->nk_el * 4), memcpy(v, in->v, in->nv_el * 4);
        memcpy(mask, in->mask, (size_t)(in->s.batch * in->s.k_len));
        smyrf_plan *plan = plan_of(&in->s, kind % N_KINDS, 0);
        float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
        tc_run(plan, in, out, lse);
        char what[64];
        snprintf(what, sizeof what, "q, k, v (%s, shape %d)", kind_names[kind % N_KINDS], kind / N_KINDS);
        tc_assert_same_bits(in->q, q, in->nq_el * 4, what);
        tc_assert_same_bits(in->k, k, in->nk_el * 4, what);
        tc_assert_same_bits(in->v, v, in->nv_el * 4, what);
        assert_memory_equal(in->mask, mask, (size_t)(in->s.batch * in->s.k_len));
        smyrf_plan_destroy(plan);
        free(q), free(k), free(v), free(mask), free(out), free(lse);
        tc_inputs_destroy(in);
    }
}

/* out and lse are written completely: their previous content (NaN, zeros, junk) and a
 * caller's workspace full of NaN (at an odd address) make no difference. */
static void previous_contents_make_no_difference(void **state) {
    (void)state;
    for (size_t c = 0; c < N_SHAPES; c++)
        for (int kind = 0; kind < N_KINDS; kind++) {
            tc_inputs *in = tc_inputs_create(&shapes[c], 900 + c, 0.7);
            smyrf_plan *plan = plan_of(&in->s, kind, 0);
            float *out0 = tc_nan_floats(in->no_el), *lse0 = tc_nan_floats(in->nlse);
            float *out1 = (float *)tc_alloc(in->no_el * 4), *lse1 = (float *)tc_alloc(in->nlse * 4);
            char what[80];
            tc_run(plan, in, out0, lse0);
            tc_run(plan, in, out1, lse1); /* zeros */
            snprintf(what, sizeof what, "prefilled with zeros vs NaN (%s, shape %zu)", kind_names[kind], c);
            tc_assert_same_bits(out1, out0, in->no_el * 4, what);
            tc_assert_same_bits(lse1, lse0, in->nlse * 4, what);

            const size_t ws = smyrf_plan_workspace_size(plan);
            float *work = tc_nan_floats(ws / 4 + 2);
            memset(out1, 0x7f, in->no_el * 4), memset(lse1, 0xff, in->nlse * 4);
            assert_int_equal(smyrf_execute(plan, in->q, in->k, in->v, in->mask, out1, lse1,
                                           (char *)work + 1, ws, NULL), SMYRF_OK);
            snprintf(what, sizeof what, "with a NaN workspace (%s, shape %zu)", kind_names[kind], c);
            tc_assert_same_bits(out1, out0, in->no_el * 4, what);
            tc_assert_same_bits(lse1, lse0, in->nlse * 4, what);
            smyrf_plan_destroy(plan);
            free(out0), free(out1), free(lse0), free(lse1), free(work);
            tc_inputs_destroy(in);
        }
}

/* A batch whose keys are all padded, and causal queries before the first key, have no
 * allowed key: zeros and lse = -inf. Every other row is finite. */
static void rows_without_allowed_keys(void **state) {
    (void)state;
    const tc_shape s = {3, 2, 0, 90, 60, 8, 0, 1};
    for (int causal = 0; causal < 2; causal++)
        for (int dense = 0; dense < 2; dense++) {
            tc_shape t = s;
            t.causal = causal;
            tc_inputs *in = tc_inputs_create(&t, 1000, 0.5);
            memset(in->mask + 60, 0, 60); /* batch 1: every key padded */
            smyrf_plan *plan = plan_for(&in->s, dense, 0);
            float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
            tc_run(plan, in, out, lse);
            for (int64_t b = 0; b < 3; b++)
                for (int64_t h = 0; h < 2; h++)
                    for (int64_t i = 0; i < 90; i++) {
                        const size_t row = (size_t)((b * 2 + h) * 90 + i);
                        /* batch 0 and 2 keep key 0 valid: query i allows it when i >= 30 */
                        const int none = b == 1 || (causal && i < 30);
                        for (int e = 0; e < 8; e++) {
                            const float x = out[row * 8 + e];
                            if (none ? x != 0.0f : !isfinite(x))
                                fail_msg("%s causal %d b %lld i %lld: out %g", dense ? "dense" : "smyrf",
                                         causal, (long long)b, (long long)i, (double)x);
                        }
                        if (none ? !(isinf(lse[row]) && lse[row] < 0) : !isfinite(lse[row]))
                            fail_msg("%s causal %d b %lld i %lld: lse %g", dense ? "dense" : "smyrf",
                                     causal, (long long)b, (long long)i, (double)lse[row]);
                    }
            smyrf_plan_destroy(plan);
            free(out), free(lse);
            tc_inputs_destroy(in);
        }
}

/* Causal SMYRF never writes a NaN row: small clusters, padding and both Nq < Nk and
 * Nq > Nk make many queries meet no allowed key in any round (the fallback case). */
static void causal_never_nan(void **state) {
    (void)state;
    const int64_t lens[][2] = {{1, 1}, {5, 200}, {200, 5}, {143, 143}, {300, 310}};
    const int64_t cqs[] = {1, 2, 7, 64};
    for (size_t l = 0; l < 5; l++)
        for (size_t c = 0; c < 4; c++) {
            const tc_shape s = {2, 2, 1, lens[l][0], lens[l][1], 8, 0, 1};
            tc_inputs *in = tc_inputs_create(&s, 1100 + l * 4 + c, 0.3);
            smyrf_plan *plan = tc_smyrf_plan(&in->s, 1 + (int64_t)c % 3, cqs[c], c);
            float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
            tc_run(plan, in, out, lse);
            tc_assert_all_finite(out, in->no_el, "causal smyrf out");
            for (size_t i = 0; i < in->nlse; i++) assert_false(isnan(lse[i]));
            smyrf_plan_destroy(plan);
            free(out), free(lse);
            tc_inputs_destroy(in);
        }
}

/* One plan, four threads executing it at once on their own buffers: each result is
 * bitwise the serial one (the header's thread-safety promise). */
typedef struct concurrent_job {
    const smyrf_plan *plan;
    const tc_inputs *in;
    float *out;
    smyrf_status status;
} concurrent_job;

static void *concurrent_run(void *arg) {
    concurrent_job *job = (concurrent_job *)arg;
    for (int rep = 0; rep < 3 && job->status == SMYRF_OK; rep++)
        job->status = smyrf_execute(job->plan, job->in->q, job->in->k, job->in->v, job->in->mask,
                                    job->out, NULL, NULL, 0, NULL);
    return NULL;
}

static void concurrent_executes_agree(void **state) {
    (void)state;
    for (int dense = 0; dense < 2; dense++) {
        tc_inputs *in = tc_inputs_create(&shapes[0], 1200, 0.8);
        smyrf_plan *plan = plan_for(&in->s, dense, 2);
        float *want = tc_nan_floats(in->no_el);
        tc_run(plan, in, want, NULL);
        concurrent_job jobs[4];
        pthread_t tid[4];
        for (int t = 0; t < 4; t++) {
            jobs[t] = (concurrent_job){plan, in, tc_nan_floats(in->no_el), SMYRF_OK};
            assert_int_equal(pthread_create(&tid[t], NULL, concurrent_run, &jobs[t]), 0);
        }
        for (int t = 0; t < 4; t++) pthread_join(tid[t], NULL);
        for (int t = 0; t < 4; t++) {
            assert_int_equal(jobs[t].status, SMYRF_OK);
            tc_assert_same_bits(jobs[t].out, want, in->no_el * 4, "concurrent execute");
            free(jobs[t].out);
        }
        smyrf_plan_destroy(plan);
        free(want);
        tc_inputs_destroy(in);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(padding_changes_nothing),
        cmocka_unit_test(query_rows_are_independent),
        cmocka_unit_test(causal_ignores_future_keys),
        cmocka_unit_test(outputs_are_convex_combinations),
        cmocka_unit_test(lse_is_consistent),
        cmocka_unit_test(reproducible_across_runs_and_threads),
        cmocka_unit_test(inputs_unchanged),
        cmocka_unit_test(previous_contents_make_no_difference),
        cmocka_unit_test(rows_without_allowed_keys),
        cmocka_unit_test(causal_never_nan),
        cmocka_unit_test(concurrent_executes_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
