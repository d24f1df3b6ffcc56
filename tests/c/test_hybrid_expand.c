/* HYBRID expansion (SMYRF_PARAM_EXPAND = E; docs/algorithm.md, HYBRID, "Expansion"):
 * the float64 reference against a brute-force evaluation of the definition written here
 * from the reference's k-means labels, E = 0 and the gate against plain HYBRID, the two
 * combine forms, padding and constant values; the CPU library against the reference on
 * the forward suite's non-causal shapes and more, thread counts, budgets and refusals,
 * causal (E joins the window); the backward: the reference against finite differences,
 * the CPU against the reference. */
#include "test_hybrid_support.h"
#include "ref/hybrid_backward.hpp"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HYBRID_RTOL 1e-5 /* the CPU-vs-reference tolerance of test_hybrid.c */

/* ---------------------------------------------------------------- helpers */

static int64_t plan_get(const smyrf_plan *plan, smyrf_param p) {
    int64_t v = 0;
    assert_int_equal(smyrf_plan_get(plan, p, &v), SMYRF_OK);
    return v;
}

/* A HYBRID plan with SMYRF_PARAM_EXPAND = expand on top of th_config. */
static smyrf_plan *expand_plan(const tc_shape *s, const th_params *hp, int64_t expand) {
    smyrf_config *cfg = th_config(s, hp);
    tc_set(cfg, SMYRF_PARAM_EXPAND, expand);
    smyrf_plan *plan = tc_plan(cfg);
    smyrf_config_destroy(cfg);
    assert_int_equal(plan_get(plan, SMYRF_PARAM_EXPAND), expand);
    return plan;
}

/* Reference parameters written directly: budget = w + S + G + E. */
static smyrf_ref_hybrid_params ref_params(int64_t window, int64_t sinks, int64_t groups,
                                          int64_t iters, uint64_t seed, int64_t expand) {
    smyrf_ref_hybrid_params r;
    memset(&r, 0, sizeof r);
    r.window = window, r.sinks = sinks, r.summaries = groups, r.kmeans_iters = iters;
    r.seed = seed, r.budget = window + sinks + groups + expand, r.expand = expand;
    return r;
}

/* The reference with expansion E = e, whatever hp says. */
static void ref_expand(const smyrf_ref_problem *p, const smyrf_ref_hybrid_params *hp, int64_t e,
                       int one_pass, double *out, double *lse) {
    smyrf_ref_hybrid_params r = *hp;
    r.expand = e;
    smyrf_ref_hybrid(p, &r, one_pass, out, lse);
}

static double scale_of(const smyrf_ref_problem *p) {
    return p->scale > 0 ? p->scale : 1.0 / sqrt((double)p->qk_dim);
}

static double dotd(const double *x, const double *y, int64_t n) {
    double s = 0;
    for (int64_t c = 0; c < n; c++) s += x[c] * y[c];
    return s;
}

static int64_t count_valid(const smyrf_ref_problem *p, int64_t b) {
    int64_t n = 0;
    for (int64_t j = 0; j < p->k_len; j++) n += !p->key_mask || p->key_mask[b * p->k_len + j];
    return n;
}

/* ---------------------------------------------------------------- brute force */

/* What the brute force saw, so a test can insist its cases reach every branch. */
typedef struct bf_stats {
    int64_t rows_off_dense, chosen, skipped_then_chosen, rows_partial;
} bf_stats;

typedef struct bf_group {
    int64_t g;
    double t;
} bf_group;

static int by_t_then_g(const void *a, const void *b) {
    const bf_group *x = a, *y = b;
    if (x->t != y->t) return x->t > y->t ? -1 : 1;
    return x->g < y->g ? -1 : x->g > y->g;
}

/* Non-causal HYBRID with expansion for every row, straight from the definition: the
 * gate, window (the w valid keys nearest c_i, ties lower), sinks, summaries of the non-exact members
 * of each k-means group (labels from smyrf_ref_hybrid_groups), the greedy choice, then one
 * softmax over exact keys and remaining summaries. */
static void brute_force(const smyrf_ref_problem *p, const smyrf_ref_hybrid_params *hp,
                        int64_t expand, double *out, double *lse, bf_stats *st) {
    const int64_t Nk = p->k_len, Nq = p->q_len, d = p->qk_dim, dv = p->v_dim;
    const int64_t G_max = hp->summaries, group = p->heads / p->kv_heads;
    const double scale = scale_of(p);
    int32_t *label = tc_alloc((size_t)Nk * 4), *count = tc_alloc((size_t)G_max * 4);
    double *ksum = tc_doubles((size_t)(G_max * d)), *vsum = tc_doubles((size_t)(G_max * dv));
    int64_t *valid = tc_alloc((size_t)Nk * 8), *near = tc_alloc((size_t)Nk * 8);
    uint8_t *exact = tc_alloc((size_t)Nk);
    bf_group *order = tc_alloc((size_t)G_max * sizeof(bf_group));
    uint8_t *chosen = tc_alloc((size_t)G_max);
    double *mean_v = tc_doubles((size_t)(G_max * dv)), *t = tc_doubles((size_t)G_max);
    int64_t *m = tc_alloc((size_t)G_max * 8);
    double *logit = tc_doubles((size_t)(Nk + G_max));
    for (int64_t b = 0; b < p->batch; b++) {
        int64_t nv = 0;
        for (int64_t j = 0; j < Nk; j++)
            if (!p->key_mask || p->key_mask[b * Nk + j]) valid[nv++] = j;
        const int dense = hp->budget >= nv || hp->window >= nv;
        /* the gate: a batch expands only when its groups can fit (nv <= G_eff E); else
         * its E keys join the window */
        const int64_t G_eff = G_max < nv ? G_max : nv;
        const int64_t E = !dense && nv <= G_eff * expand ? expand : 0;
        const int64_t window = hp->window + expand - E;
        for (int64_t h = 0; h < p->heads; h++) {
            const int64_t hk = h / group;
            const int64_t G = smyrf_ref_hybrid_groups(p, hp, b, hk, label, count, ksum, vsum);
            assert_int_equal(G, dense ? 0 : (G_max < nv ? G_max : nv));
            const double *K = p->k + (b * p->kv_heads + hk) * Nk * d;
            const double *V = p->v + (b * p->kv_heads + hk) * Nk * dv;
            for (int64_t i = 0; i < Nq; i++) {
                const double *q = p->q + ((b * p->heads + h) * Nq + i) * d;
                double *o = out + ((b * p->heads + h) * Nq + i) * dv;
                double *l = lse + (b * p->heads + h) * Nq + i;
                memset(exact, 0, (size_t)Nk);
                if (nv == 0) {
                    for (int64_t c = 0; c < dv; c++) o[c] = 0;
                    *l = -INFINITY;
                    continue;
                }
                if (dense) {
                    for (int64_t x = 0; x < nv; x++) exact[valid[x]] = 1;
                } else {
                    st->rows_off_dense++;
                    /* window: repeatedly take the nearest remaining valid key, lower first */
                    const int64_t ci = (2 * i + 1) * Nk / (2 * Nq);
                    memcpy(near, valid, (size_t)nv * 8);
                    for (int64_t taken = 0; taken < window && taken < nv; taken++) {
                        int64_t best = taken;
                        for (int64_t x = taken + 1; x < nv; x++) {
                            const int64_t dx = llabs(near[x] - ci), db = llabs(near[best] - ci);
                            if (dx < db || (dx == db && near[x] < near[best])) best = x;
                        }
                        const int64_t tmp = near[taken];
                        near[taken] = near[best], near[best] = tmp;
                        exact[near[taken]] = 1;
                    }
                    if (hp->sinks >= 1) exact[valid[0]] = 1;
                    if (hp->sinks == 2) exact[valid[nv - 1]] = 1;
                    /* summaries: mean logit and mean value of each group's non-exact members */
                    int64_t n_sum = 0;
                    for (int64_t g = 0; g < G; g++) {
                        double *mk = tc_doubles((size_t)d);
                        m[g] = 0;
                        for (int64_t c = 0; c < dv; c++) mean_v[g * dv + c] = 0;
                        for (int64_t x = 0; x < nv; x++) {
                            const int64_t j = valid[x];
                            if (label[j] != g || exact[j]) continue;
                            m[g]++;
                            for (int64_t c = 0; c < d; c++) mk[c] += K[j * d + c];
                            for (int64_t c = 0; c < dv; c++) mean_v[g * dv + c] += V[j * dv + c];
                        }
                        chosen[g] = 0;
                        if (m[g] > 0) {
                            for (int64_t c = 0; c < d; c++) mk[c] /= (double)m[g];
                            for (int64_t c = 0; c < dv; c++) mean_v[g * dv + c] /= (double)m[g];
                            t[g] = scale * dotd(q, mk, d) + log((double)m[g]);
                            order[n_sum].g = g, order[n_sum].t = t[g], n_sum++;
                        }
                        free(mk);
                    }
                    /* the greedy choice of whole groups */
                    qsort(order, (size_t)n_sum, sizeof *order, by_t_then_g);
                    int64_t used = 0, skipped = 0, n_chosen = 0;
                    for (int64_t x = 0; x < n_sum; x++) {
                        const int64_t g = order[x].g;
                        if (count[g] <= E - used) {
                            chosen[g] = 1, used += count[g], n_chosen++;
                            st->skipped_then_chosen += skipped > 0;
                        } else {
                            skipped++;
                        }
                    }
                    st->chosen += n_chosen;
                    st->rows_partial += n_chosen > 0 && skipped > 0;
                    for (int64_t x = 0; x < nv; x++)
                        if (chosen[label[valid[x]]]) exact[valid[x]] = 1;
                    for (int64_t g = 0; g < G; g++)
                        if (m[g] == 0 || chosen[g]) m[g] = 0; /* no summary term */
                }
                /* one softmax over exact keys and the remaining summaries */
                double mx = -INFINITY;
                for (int64_t j = 0; j < Nk; j++)
                    if (exact[j]) logit[j] = scale * dotd(q, K + j * d, d), mx = fmax(mx, logit[j]);
                for (int64_t g = 0; !dense && g < G; g++)
                    if (m[g] > 0) mx = fmax(mx, t[g]);
                double z = 0;
                for (int64_t c = 0; c < dv; c++) o[c] = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    if (!exact[j]) continue;
                    const double w = exp(logit[j] - mx);
                    z += w;
                    for (int64_t c = 0; c < dv; c++) o[c] += w * V[j * dv + c];
                }
                for (int64_t g = 0; !dense && g < G; g++) {
                    if (m[g] == 0) continue;
                    const double w = exp(t[g] - mx);
                    z += w;
                    for (int64_t c = 0; c < dv; c++) o[c] += w * mean_v[g * dv + c];
                }
                for (int64_t c = 0; c < dv; c++) o[c] /= z;
                *l = mx + log(z);
            }
        }
    }
    free(label), free(count), free(ksum), free(vsum), free(valid), free(near), free(exact);
    free(order), free(chosen), free(mean_v), free(t), free(m), free(logit);
}

static void assert_close_d(const double *got, const double *want, size_t n, double rtol,
                           const char *what, int64_t e) {
    const double big = tc_max_abs(want, n);
    for (size_t x = 0; x < n; x++)
        if (!(fabs(got[x] - want[x]) <= rtol * big) && !(got[x] == want[x]))
            fail_msg("%s, E = %lld: element %zu: %.17g, want %.17g", what, (long long)e, x,
                     got[x], want[x]);
}

/* ---------------------------------------------------------------- reference tests */

typedef struct ref_case {
    const char *name;
    tc_shape s;
    double mask_keep;
    int64_t window, sinks, groups, iters;
    uint64_t seed;
    int64_t expand[4]; /* 0 ends the list */
} ref_case;

/* Tiny problems, off the dense limit (B = w + S + G + E below the valid keys). */
static const ref_case tiny[] = {
    {"square", {1, 1, 0, 40, 0, 4, 0, 0}, 0, 6, 2, 5, 2, 1, {3, 6, 10, 20}},
    {"padding, GQA 2 over 1, Nq < Nk", {2, 2, 1, 30, 60, 4, 3, 0}, 0.75, 4, 1, 6, 2, 2, {4, 9, 20, 0}},
    {"GQA 4 over 2, no sinks", {1, 4, 2, 25, 60, 3, 5, 0}, 0, 5, 0, 8, 3, 3, {5, 12, 25, 40}},
    {"Nq > Nk, padding", {1, 2, 0, 50, 24, 2, 2, 0}, 0.9, 3, 2, 4, 1, 4, {3, 6, 9, 0}},
    {"many small groups", {1, 1, 0, 36, 0, 5, 0, 0}, 0, 4, 2, 12, 2, 5, {2, 5, 11, 0}},
};

static void reference_equals_brute_force(void **state) {
    (void)state;
    bf_stats st = {0, 0, 0, 0};
    for (size_t c = 0; c < sizeof tiny / sizeof tiny[0]; c++) {
        const ref_case *rc = &tiny[c];
        tc_inputs *in = tc_inputs_create(&rc->s, 900 + c, rc->mask_keep);
        const smyrf_ref_problem rp = tc_ref_problem(in);
        for (int x = 0; x < 4 && rc->expand[x]; x++) {
            const int64_t e = rc->expand[x];
            const smyrf_ref_hybrid_params hp =
                ref_params(rc->window, rc->sinks, rc->groups, rc->iters, rc->seed, e);
            double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
            double *got = tc_doubles(in->no_el), *got_lse = tc_doubles(in->nlse);
            brute_force(&rp, &hp, e, want, want_lse, &st);
            for (int one_pass = 0; one_pass < 2; one_pass++) {
                ref_expand(&rp, &hp, e, one_pass, got, got_lse);
                assert_close_d(got, want, in->no_el, 1e-12, rc->name, e);
                for (size_t r = 0; r < in->nlse; r++)
                    if (!(fabs(got_lse[r] - want_lse[r]) <= 1e-12 * (1 + fabs(want_lse[r]))))
                        fail_msg("%s, E = %lld: lse %zu: %.17g, want %.17g", rc->name,
                                 (long long)e, r, got_lse[r], want_lse[r]);
            }
            free(want), free(want_lse), free(got), free(got_lse);
        }
        tc_inputs_destroy(in);
    }
    /* the cases reach every branch of the choice */
    assert_true(st.rows_off_dense > 500);
    assert_true(st.chosen > 100);
    assert_true(st.rows_partial > 100);
    assert_true(st.skipped_then_chosen > 10);
}

/* E = 0 is plain HYBRID bit for bit (both forms, causal too). An E smaller than every
 * group fails the gate (the groups average more than E keys): plain HYBRID with window
 * w + E, bit for bit. */
static void expand_zero_is_plain_and_nothing_fits_widens_the_window(void **state) {
    (void)state;
    int checked = 0;
    const size_t picks[] = {0, 1, 2, 3, 4, 5, 6, 8, 11};
    for (size_t x = 0; x < sizeof picks / sizeof picks[0]; x++) {
        const th_case *c = &th_shapes[picks[x]];
        tc_inputs *in = tc_inputs_create(&c->s, 950 + x, c->mask_keep);
        smyrf_plan *plan = expand_plan(&in->s, &c->hp, 0);
        const smyrf_ref_hybrid_params hp = th_resolved(plan);
        const smyrf_ref_problem rp = tc_ref_problem(in);
        /* the smallest group over every (batch, kv head) */
        int64_t smallest = INT64_MAX;
        if (!c->s.causal) {
            int32_t *label = tc_alloc((size_t)in->s.k_len * 4);
            int32_t *count = tc_alloc((size_t)hp.summaries * 4);
            double *ks = tc_doubles((size_t)(hp.summaries * in->s.qk_dim));
            double *vs = tc_doubles((size_t)(hp.summaries * in->s.v_dim));
            for (int64_t b = 0; b < in->s.batch; b++)
                for (int64_t hk = 0; hk < in->s.kv_heads; hk++) {
                    const int64_t G = smyrf_ref_hybrid_groups(&rp, &hp, b, hk, label, count, ks, vs);
                    for (int64_t g = 0; g < G; g++)
                        if (count[g] < smallest) smallest = count[g];
                }
            free(label), free(count), free(ks), free(vs);
        }
        for (int one_pass = 0; one_pass < 2; one_pass++) {
            double *a = tc_doubles(in->no_el), *al = tc_doubles(in->nlse);
            double *z = tc_doubles(in->no_el), *zl = tc_doubles(in->nlse);
            smyrf_ref_hybrid(&rp, &hp, one_pass, a, al);
            ref_expand(&rp, &hp, 0, one_pass, z, zl);
            tc_assert_same_bits(a, z, in->no_el * 8, "E = 0, out");
            tc_assert_same_bits(al, zl, in->nlse * 8, "E = 0, lse");
            /* E below every group: no batch can pass the gate (its groups average more
             * than E keys), so each is plain HYBRID with window w + E */
            const int64_t e = c->s.causal ? 5 : smallest - 1;
            if (e >= 1 && smallest != INT64_MAX) {
                smyrf_ref_hybrid_params he = hp, wide = hp;
                he.budget += e; /* same w, S, G */
                wide.budget += e, wide.window += e;
                ref_expand(&rp, &he, e, one_pass, z, zl);
                smyrf_ref_hybrid(&rp, &wide, one_pass, a, al);
                tc_assert_same_bits(z, a, in->no_el * 8, "E joins the window, out");
                tc_assert_same_bits(zl, al, in->nlse * 8, "E joins the window, lse");
                checked++;
            }
            free(a), free(al), free(z), free(zl);
        }
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
    assert_true(checked >= 9);
}

/* The one-pass and two-part forms agree with expansion, as without. */
static void one_pass_equals_two_part(void **state) {
    (void)state;
    for (size_t i = 0; i < 8; i++) { /* th_shapes' non-causal ones */
        const th_case *c = &th_shapes[i];
        assert_false(c->s.causal);
        tc_inputs *in = tc_inputs_create(&c->s, 960 + i, c->mask_keep);
        smyrf_plan *plan = expand_plan(&in->s, &c->hp, 0);
        smyrf_ref_hybrid_params hp = th_resolved(plan);
        const smyrf_ref_problem rp = tc_ref_problem(in);
        const int64_t e = 24;
        hp.budget += e;
        double *two = tc_doubles(in->no_el), *one = tc_doubles(in->no_el);
        double *lse2 = tc_doubles(in->nlse), *lse1 = tc_doubles(in->nlse);
        ref_expand(&rp, &hp, e, 0, two, lse2);
        ref_expand(&rp, &hp, e, 1, one, lse1);
        assert_close_d(one, two, in->no_el, 1e-12, c->name, e);
        for (size_t r = 0; r < in->nlse; r++) assert_true(lse1[r] == lse2[r]);
        free(two), free(one), free(lse2), free(lse1);
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
}

/* Padded keys' and values' contents change nothing (NaN there stays out); all values
 * equal give that value. Reference and library. */
static void padding_and_constant_values(void **state) {
    (void)state;
    const tc_shape s = {2, 2, 1, 160, 0, 16, 8, 0};
    const th_params hp = {0, 12, 10, 2, 2, 0, 31};
    const int64_t e = 24;
    tc_inputs *in = tc_inputs_create(&s, 970, 0.6);
    smyrf_ref_problem rp = tc_ref_problem(in);
    for (int64_t b = 0; b < 2; b++) assert_true(count_valid(&rp, b) > 12 + 2 + 10 + e); /* off dense */
    smyrf_plan *plan = expand_plan(&in->s, &hp, e);
    smyrf_ref_hybrid_params rh = th_resolved(plan);
    assert_int_equal(rh.window, 12);
    double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
    double *got = tc_doubles(in->no_el), *got_lse = tc_doubles(in->nlse);
    float *before = tc_nan_floats(in->no_el), *lb = tc_nan_floats(in->nlse);
    float *after = tc_nan_floats(in->no_el), *la = tc_nan_floats(in->nlse);
    ref_expand(&rp, &rh, e, 0, want, want_lse);
    tc_run(plan, in, before, lb);
    tc_fill_padded_keys(in, nanf(""));
    tc_inputs_sync(in);
    ref_expand(&rp, &rh, e, 0, got, got_lse);
    tc_assert_same_bits(want, got, in->no_el * 8, "reference out, padded contents");
    tc_assert_same_bits(want_lse, got_lse, in->nlse * 8, "reference lse, padded contents");
    tc_run(plan, in, after, la);
    tc_assert_same_bits(before, after, in->no_el * 4, "library out, padded contents");
    tc_assert_same_bits(lb, la, in->nlse * 4, "library lse, padded contents");

    /* every valid value row the same vector: the output is that vector */
    for (int64_t b = 0; b < 2; b++)
        for (int64_t j = 0; j < 160; j++)
            for (int64_t x = 0; x < 8; x++) in->v[(b * 160 + j) * 8 + x] = (float)(x - 3.25);
    tc_inputs_sync(in);
    rp = tc_ref_problem(in);
    ref_expand(&rp, &rh, e, 1, got, got_lse);
    tc_run(plan, in, after, la);
    for (size_t r = 0; r < in->nlse; r++)
        for (int64_t x = 0; x < 8; x++) {
            const double v = (double)x - 3.25;
            if (!(fabs(got[r * 8 + x] - v) <= 1e-12)) fail_msg("reference row %zu: %.17g", r, got[r * 8 + x]);
            if (!(fabs(after[r * 8 + x] - v) <= 1e-5)) fail_msg("library row %zu: %.9g", r, after[r * 8 + x]);
        }
    free(want), free(want_lse), free(got), free(got_lse);
    free(before), free(lb), free(after), free(la);
    smyrf_plan_destroy(plan);
    tc_inputs_destroy(in);
}

/* ---------------------------------------------------------------- library against reference */

/* More non-causal cases: head dims 1, 21, 64, many small groups, few large ones. */
static const th_case extra[] = {
    {"dim 1", {1, 2, 0, 180, 0, 1, 1, 0}, 0, {0, 16, 12, 2, 0, 0, 21}},
    {"dim 21, padding, GQA, Nq < Nk", {2, 2, 1, 130, 170, 21, 21, 0}, 0.75, {0, 12, 20, 1, 3, 0, 22}},
    {"dim 64", {1, 2, 0, 256, 0, 64, 64, 0}, 0, {64, 0, 0, -1, 0, 0, 23}},
    {"many small groups", {1, 1, 0, 300, 0, 16, 0, 0}, 0, {0, 20, 60, 2, 2, 0, 24}},
    {"few large groups", {1, 1, 0, 300, 0, 16, 0, 0}, 0.9, {0, 20, 3, 2, 2, 0, 25}},
    {"GQA 3 over 1, Nq > Nk, padding", {1, 3, 1, 210, 120, 16, 8, 0}, 0.8, {0, 10, 8, 2, 2, 0, 26}},
    /* two groups of about 350 keys: an expanded group spans more than one key tile */
    {"groups past a key tile", {1, 1, 0, 700, 0, 16, 0, 0}, 0, {0, 20, 2, 2, 2, 0, 27}},
};

/* The case's parameters with E added and w, S, G kept (budget + E when the budget is set). */
static th_params with_expand(const th_params *hp, const smyrf_ref_hybrid_params *r0, int64_t e) {
    th_params p = *hp;
    if (hp->budget) p.budget = r0->budget + e, p.summaries = r0->summaries;
    return p;
}

/* Whether out and lse are within HYBRID_RTOL of the reference (tc_assert_close's test,
 * without failing at once, so that a run reports every case that differs). */
static int close_to(const float *out, const float *lse, const double *want,
                    const double *want_lse, const tc_inputs *in, double *worst) {
    const double big = tc_max_abs(want, in->no_el);
    int ok = 1;
    *worst = 0;
    for (size_t x = 0; x < in->no_el; x++) {
        const double err = fabs((double)out[x] - want[x]);
        if (!(err <= HYBRID_RTOL * big)) ok = 0;
        if (err > *worst || err != err) *worst = err;
    }
    for (size_t r = 0; r < in->nlse; r++) {
        if (isinf(want_lse[r]) && (double)lse[r] == want_lse[r]) continue;
        if (!(fabs((double)lse[r] - want_lse[r]) <= HYBRID_RTOL * (1 + fabs(want_lse[r])))) ok = 0;
    }
    *worst /= big > 0 ? big : 1;
    return ok;
}

/* Returns how many E values of the case differ from the reference (each printed). */
static int check_case(const th_case *c, uint64_t seed, int threads_too) {
    tc_inputs *in = tc_inputs_create(&c->s, seed, c->mask_keep);
    smyrf_plan *plan0 = expand_plan(&in->s, &c->hp, 0);
    const smyrf_ref_hybrid_params r0 = th_resolved(plan0);
    smyrf_plan_destroy(plan0);
    const smyrf_ref_problem rp = tc_ref_problem(in);
    const int64_t base = r0.window + r0.sinks + r0.summaries;
    const int64_t below_dense = in->s.k_len - base - 1; /* just off the dense limit unpadded */
    const int64_t es[] = {8, 16, 32, 64, below_dense, 100000};
    double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
    float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
    float *out3 = tc_nan_floats(in->no_el), *lse3 = tc_nan_floats(in->nlse);
    int differ = 0;
    for (size_t x = 0; x < sizeof es / sizeof es[0]; x++) {
        const int64_t e = es[x];
        if (e < 1) continue;
        char what[160];
        snprintf(what, sizeof what, "%s, E = %lld", c->name, (long long)e);
        th_params p = with_expand(&c->hp, &r0, e);
        p.threads = 1;
        smyrf_plan *plan = expand_plan(&in->s, &p, e);
        smyrf_ref_hybrid_params r = th_resolved(plan);
        assert_int_equal(r.window, r0.window);
        assert_int_equal(r.summaries, r0.summaries);
        assert_int_equal(r.sinks, r0.sinks);
        assert_int_equal(r.budget, base + e);
        ref_expand(&rp, &r, e, 0, want, want_lse);
        tc_run(plan, in, out, lse);
        double worst;
        if (!close_to(out, lse, want, want_lse, in, &worst)) {
            differ++;
            print_message("DIFFERS: %s: max error %.3g of the largest value; valid keys per "
                          "batch (against G E = %lld):", what, worst,
                          (long long)(r.summaries * e));
            for (int64_t b = 0; b < in->s.batch; b++)
                print_message(" %lld", (long long)count_valid(&rp, b));
            print_message("\n");
        }
        smyrf_plan_destroy(plan);
        if (threads_too) {
            p.threads = 3;
            plan = expand_plan(&in->s, &p, e);
            tc_run(plan, in, out3, lse3);
            tc_assert_same_bits(out, out3, in->no_el * 4, what);
            tc_assert_same_bits(lse, lse3, in->nlse * 4, what);
            smyrf_plan_destroy(plan);
        }
    }
    free(want), free(want_lse), free(out), free(lse), free(out3), free(lse3);
    tc_inputs_destroy(in);
    return differ;
}

static void library_matches_reference_forward_shapes(void **state) {
    (void)state;
    int differ = 0;
    for (size_t i = 0; i < th_shape_count; i++)
        if (!th_shapes[i].s.causal) differ += check_case(&th_shapes[i], 1000 + i, i % 2 == 0);
    if (differ) fail_msg("%d (case, E) runs differ from the reference (listed above)", differ);
}

static void library_matches_reference_more_shapes(void **state) {
    (void)state;
    int differ = 0;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        differ += check_case(&extra[i], 1100 + i, 1);
    if (differ) fail_msg("%d (case, E) runs differ from the reference (listed above)", differ);
}

/* Past the dense limit the library is dense attention, expansion or not. */
static void dense_limit_with_expand(void **state) {
    (void)state;
    const tc_shape s = {2, 2, 1, 70, 90, 16, 8, 0};
    tc_inputs *in = tc_inputs_create(&s, 1200, 0.6);
    const th_params hp = {0, 10, 6, 2, 0, 0, 3};
    smyrf_plan *plan = expand_plan(&in->s, &hp, 80); /* B = 98 > 90 */
    const smyrf_ref_problem rp = tc_ref_problem(in);
    double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
    smyrf_ref_dense(&rp, want, want_lse);
    float *out = tc_nan_floats(in->no_el), *lse = tc_nan_floats(in->nlse);
    tc_run(plan, in, out, lse);
    tc_assert_close(out, want, in->no_el, 8, NULL, 1e-5, 0, "dense limit");
    tc_assert_lse_close(lse, want_lse, in->nlse, NULL, 1e-5, "dense limit");
    smyrf_ref_hybrid_params r = th_resolved(plan);
    double *ref = tc_doubles(in->no_el), *ref_lse = tc_doubles(in->nlse);
    ref_expand(&rp, &r, 80, 0, ref, ref_lse);
    assert_close_d(ref, want, in->no_el, 1e-12, "reference, dense limit", 80);
    free(want), free(want_lse), free(out), free(lse), free(ref), free(ref_lse);
    smyrf_plan_destroy(plan);
    tc_inputs_destroy(in);
}

/* ---------------------------------------------------------------- refusals */

static void refused_at_plan(const tc_shape *s, const th_params *hp, int64_t e,
                            smyrf_status want, const char *n1, const char *n2) {
    smyrf_config *cfg = th_config(s, hp);
    tc_set(cfg, SMYRF_PARAM_EXPAND, e);
    smyrf_plan *plan = NULL;
    assert_int_equal(smyrf_plan_create(&plan, cfg), want);
    assert_null(plan);
    const char *msg = smyrf_last_error_message();
    if (!strstr(msg, n1)) fail_msg("message \"%s\" does not name \"%s\"", msg, n1);
    if (n2 && !strstr(msg, n2)) fail_msg("message \"%s\" does not name \"%s\"", msg, n2);
    smyrf_config_destroy(cfg);
}

static void bad_parameters_are_refused(void **state) {
    (void)state;
    const tc_shape s = {1, 1, 0, 64, 0, 8, 0, 0}, sc = {1, 1, 0, 64, 0, 8, 0, 1};
    const th_params budget20 = {20, 0, 4, 2, 0, 0, 0};
    /* causal with E > 0 runs, its E keys in the window: bitwise the plan with window
     * w + E set and no expansion */
    {
        tc_inputs *in = tc_inputs_create(&sc, 1250, 0);
        smyrf_plan *with = expand_plan(&sc, &budget20, 4);
        const th_params wide = {20, 14, 4, 2, 0, 0, 0};
        smyrf_plan *without = expand_plan(&sc, &wide, 0);
        float *o1 = tc_nan_floats(in->no_el), *l1 = tc_nan_floats(in->nlse);
        float *o2 = tc_nan_floats(in->no_el), *l2 = tc_nan_floats(in->nlse);
        tc_run(with, in, o1, l1);
        tc_run(without, in, o2, l2);
        tc_assert_same_bits(o1, o2, in->no_el * 4, "causal, E joins the window: out");
        tc_assert_same_bits(l1, l2, in->nlse * 4, "causal, E joins the window: lse");
        free(o1), free(l1), free(o2), free(l2);
        smyrf_plan_destroy(with), smyrf_plan_destroy(without);
        tc_inputs_destroy(in);
    }
    /* derived window 20 - 4 - 2 - E: E = 13 leaves 1, E = 14 leaves 0 */
    smyrf_plan *plan = expand_plan(&s, &budget20, 13);
    assert_int_equal(plan_get(plan, SMYRF_PARAM_WINDOW), 1);
    smyrf_plan_destroy(plan);
    refused_at_plan(&s, &budget20, 14, SMYRF_ERR_INVALID_ARGUMENT, "SMYRF_PARAM_BUDGET", "window");
    /* everything set: 10 + 2 + 4 + E against 20 */
    const th_params all = {20, 10, 4, 2, 0, 0, 0};
    smyrf_plan_destroy(expand_plan(&s, &all, 4));
    refused_at_plan(&s, &all, 5, SMYRF_ERR_INVALID_ARGUMENT, "exceeds SMYRF_PARAM_BUDGET", "expand");
    /* budget unset: w + S + G + E */
    const th_params unset = {0, 10, 4, 2, 0, 0, 0};
    plan = expand_plan(&s, &unset, 7);
    assert_int_equal(plan_get(plan, SMYRF_PARAM_BUDGET), 23);
    assert_int_equal(plan_get(plan, SMYRF_PARAM_WINDOW), 10);
    smyrf_plan_destroy(plan);
    smyrf_config *cfg = NULL;
    assert_int_equal(smyrf_config_create(&cfg), SMYRF_OK);
    assert_int_equal(smyrf_config_set(cfg, SMYRF_PARAM_EXPAND, -2), SMYRF_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(smyrf_last_error_message(), "SMYRF_PARAM_EXPAND"));
    smyrf_config_destroy(cfg);
}

/* ---------------------------------------------------------------- backward */

/* The float64 reference gradient with expansion against central finite differences of
 * the reference forward (the choice of groups is locally constant). */
static void reference_backward_matches_finite_differences(void **state) {
    (void)state;
    for (size_t c = 0; c < 3; c++) {
        const ref_case *rc = &tiny[c];
        tc_inputs *in = tc_inputs_create(&rc->s, 1400 + c, rc->mask_keep);
        const smyrf_ref_hybrid_params hp =
            ref_params(rc->window, rc->sinks, rc->groups, rc->iters, rc->seed, rc->expand[1]);
        const smyrf_ref_problem rp = tc_ref_problem(in);
        float *doutf = tc_alloc(in->no_el * 4);
        tc_rng r = tc_rng_make(1450 + c);
        tc_fill_normal(&r, doutf, in->no_el, 1.0);
        double *dout = tc_doubles(in->no_el);
        tc_to_double(doutf, dout, in->no_el);
        free(doutf);
        double *dq = tc_doubles(in->nq_el), *dk = tc_doubles(in->nk_el), *dv = tc_doubles(in->nv_el);
        smyrf_ref_hybrid_backward(&rp, &hp, dout, dq, dk, dv);
        th_check_fd(in, &hp, dout, in->qd, in->nq_el, dq, "dq", rc->name);
        th_check_fd(in, &hp, dout, in->kd, in->nk_el, dk, "dk", rc->name);
        th_check_fd(in, &hp, dout, in->vd, in->nv_el, dv, "dv", rc->name);
        free(dq), free(dk), free(dv), free(dout);
        tc_inputs_destroy(in);
    }
}

/* The CPU backward with expansion against the float64 reference gradient (rtol of the
 * largest gradient, as the HYBRID backward suite), on the forward's non-causal shapes
 * and a few E; bitwise the same on 1 and 3 threads; padded keys get zero gradients. */
/* One case's backward at each E of es against the reference, and on 1 and 3 threads. */
static void check_backward(const th_case *k, uint64_t seed, const int64_t *es, size_t n_es) {
    tc_inputs *in = tc_inputs_create(&k->s, seed, k->mask_keep);
    const smyrf_ref_problem rp = tc_ref_problem(in);
    float *doutf = tc_alloc(in->no_el * 4);
    tc_rng r = tc_rng_make(seed + 50);
    tc_fill_normal(&r, doutf, in->no_el, 1.0);
    double *dout = tc_doubles(in->no_el);
    tc_to_double(doutf, dout, in->no_el);
    smyrf_plan *plan0 = expand_plan(&in->s, &k->hp, 0);
    const smyrf_ref_hybrid_params r0 = th_resolved(plan0);
    smyrf_plan_destroy(plan0);
    for (size_t x = 0; x < n_es; x++) {
        th_params p = with_expand(&k->hp, &r0, es[x]);
        th_grads g[2];
        for (int t = 0; t < 2; t++) {
            p.threads = t ? 3 : 1;
            smyrf_plan *plan = expand_plan(&in->s, &p, es[x]);
            g[t] = th_run_backward(plan, in, doutf);
            if (t == 0) {
                const smyrf_ref_hybrid_params hp = th_resolved(plan);
                double *dq = tc_doubles(in->nq_el), *dk = tc_doubles(in->nk_el);
                double *dv = tc_doubles(in->nv_el);
                smyrf_ref_hybrid_backward(&rp, &hp, dout, dq, dk, dv);
                char what[160];
                snprintf(what, sizeof what, "%s, E = %lld: dq", k->name, (long long)es[x]);
                tc_assert_close(g[t].dq, dq, in->nq_el, (size_t)in->s.qk_dim, NULL, 2e-4, 0, what);
                snprintf(what, sizeof what, "%s, E = %lld: dk", k->name, (long long)es[x]);
                tc_assert_close(g[t].dk, dk, in->nk_el, (size_t)in->s.qk_dim, NULL, 2e-4, 0, what);
                snprintf(what, sizeof what, "%s, E = %lld: dv", k->name, (long long)es[x]);
                tc_assert_close(g[t].dv, dv, in->nv_el, (size_t)in->s.v_dim, NULL, 2e-4, 0, what);
                free(dq), free(dk), free(dv);
            }
            smyrf_plan_destroy(plan);
        }
        tc_assert_same_bits(g[0].dq, g[1].dq, in->nq_el * 4, "dq, threads 1 and 3");
        tc_assert_same_bits(g[0].dk, g[1].dk, in->nk_el * 4, "dk, threads 1 and 3");
        tc_assert_same_bits(g[0].dv, g[1].dv, in->nv_el * 4, "dv, threads 1 and 3");
        for (int t = 0; t < 2; t++) free(g[t].dq), free(g[t].dk), free(g[t].dv);
    }
    free(doutf), free(dout);
    tc_inputs_destroy(in);
}

static void backward_matches_reference(void **state) {
    (void)state;
    const int64_t es[] = {8, 24, 64};
    for (size_t c = 0; c < 8; c++) /* th_shapes' non-causal ones */
        check_backward(&th_shapes[c], 1500 + c, es, 3);
    /* expanded groups longer than a backward key tile: E = 675 fits one of them */
    const int64_t big[] = {675};
    check_backward(&extra[6], 1600, big, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_equals_brute_force),
        cmocka_unit_test(expand_zero_is_plain_and_nothing_fits_widens_the_window),
        cmocka_unit_test(one_pass_equals_two_part),
        cmocka_unit_test(padding_and_constant_values),
        cmocka_unit_test(library_matches_reference_forward_shapes),
        cmocka_unit_test(library_matches_reference_more_shapes),
        cmocka_unit_test(dense_limit_with_expand),
        cmocka_unit_test(bad_parameters_are_refused),
        cmocka_unit_test(reference_backward_matches_finite_differences),
        cmocka_unit_test(backward_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
