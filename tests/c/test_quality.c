/* Approximation quality on seeded structured inputs: keys in a few tight topics, queries
 * near them, so that each query's attention is peaked on its topic's keys, the regime
 * SMYRF is for. Values follow the keys' topics, so dense output rows are topic vectors
 * and an error means the query met the wrong keys. Measured (SMYRF_TEST_VERBOSE=1 prints
 * the numbers), thresholds set with margin; see each test. */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 1024
#define D 64
#define TOPICS 16
#define CQ 64 /* 16 clusters of 64 queries: one per topic if the hashing finds them */
#define SEEDS 4

/* Structured inputs: topic centres of per-coordinate sigma 1 (norm ~8, same-topic logit
 * ~8, cross-topic ~N(0, 1)); queries, keys and values are their topic's centre (a value
 * centre for values) plus noise 0.3; each token's topic is random. */
static tc_inputs *topic_inputs(uint64_t seed) {
    const tc_shape s = {1, 1, 0, N, N, D, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, seed, 0);
    tc_rng r = tc_rng_make(seed ^ 0xabcdef);
    float centre[TOPICS][D], value[TOPICS][D];
    for (int t = 0; t < TOPICS; t++) tc_fill_normal(&r, centre[t], D, 1.0);
    for (int t = 0; t < TOPICS; t++) tc_fill_normal(&r, value[t], D, 1.0);
    for (int i = 0; i < N; i++) {
        const int tq = (int)(tc_next(&r) % TOPICS), tk = (int)(tc_next(&r) % TOPICS);
        for (int c = 0; c < D; c++) {
            in->q[i * D + c] = centre[tq][c] + (float)(0.3 * tc_normal(&r));
            in->k[i * D + c] = centre[tk][c] + (float)(0.3 * tc_normal(&r));
            in->v[i * D + c] = value[tk][c] + (float)(0.3 * tc_normal(&r));
        }
    }
    tc_inputs_sync(in);
    return in;
}

/* Relative Frobenius error of SMYRF (R rounds) against float64 dense attention. */
static double smyrf_error(const tc_inputs *in, const double *dense, int64_t R, uint64_t seed) {
    smyrf_plan *plan = tc_smyrf_plan(&in->s, R, CQ, seed);
    float *out = tc_nan_floats(in->no_el);
    tc_run(plan, in, out, NULL);
    const double e = tc_rel_fro(out, dense, in->no_el);
    smyrf_plan_destroy(plan);
    free(out);
    return e;
}

/* The same budget spent on random balanced clusters (what SMYRF must beat): the
 * reference's attention and combine stages over random permutations. */
static double random_cluster_error(const tc_inputs *in, const double *dense, int64_t R,
                                   uint64_t seed) {
    smyrf_ref_problem rp = tc_ref_problem(in);
    tc_rng r = tc_rng_make(seed);
    const int64_t C = N / CQ;
    int32_t qs[N], ks[N];
    double *o = tc_doubles((size_t)(R * N * D)), *lse = tc_doubles((size_t)(R * N));
    double *oc = tc_doubles(CQ * D), lc[CQ];
    for (int64_t round = 0; round < R; round++) {
        for (int i = 0; i < N; i++) qs[i] = ks[i] = i;
        for (int i = N - 1; i > 0; i--) {
            int j = (int)(tc_next(&r) % (uint64_t)(i + 1)), t = qs[i];
            qs[i] = qs[j], qs[j] = t;
            j = (int)(tc_next(&r) % (uint64_t)(i + 1)), t = ks[i];
            ks[i] = ks[j], ks[j] = t;
        }
        for (int64_t c = 0; c < C; c++) {
            smyrf_ref_attention(&rp, 0, 0, qs + c * CQ, CQ, ks + c * CQ, CQ, oc, lc);
            for (int t = 0; t < CQ; t++) {
                const int i = qs[c * CQ + t];
                for (int e = 0; e < D; e++) o[(i * R + round) * D + e] = oc[t * D + e];
                lse[i * R + round] = lc[t];
            }
        }
    }
    float *out = tc_nan_floats(in->no_el);
    double row[D], row_lse;
    for (int i = 0; i < N; i++) {
        smyrf_ref_combine(R, D, o + i * R * D, lse + i * R, row, &row_lse);
        for (int e = 0; e < D; e++) out[i * D + e] = (float)row[e];
    }
    const double err = tc_rel_fro(out, dense, in->no_el);
    free(o), free(lse), free(oc), free(out);
    return err;
}

/* Mean errors over SEEDS inputs for R = 1, 2, 4, 8, measured once for all tests. */
static const int64_t rounds[] = {1, 2, 4, 8};
static double smyrf_mean[4], random_mean[4];

static int measure(void **state) {
    (void)state;
    for (int s = 0; s < SEEDS; s++) {
        tc_inputs *in = topic_inputs(4000 + s);
        smyrf_ref_problem rp = tc_ref_problem(in);
        double *dense = tc_doubles(in->no_el);
        smyrf_ref_dense(&rp, dense, NULL);
        for (int r = 0; r < 4; r++) {
            const double e = smyrf_error(in, dense, rounds[r], 50 + s);
            const double b = random_cluster_error(in, dense, rounds[r], 60 + s);
            smyrf_mean[r] += e / SEEDS, random_mean[r] += b / SEEDS;
        }
        free(dense);
        tc_inputs_destroy(in);
    }
    if (getenv("SMYRF_TEST_VERBOSE"))
        for (int r = 0; r < 4; r++)
            print_message("R %lld: mean relative error smyrf %.4f, random clusters %.4f\n",
                          (long long)rounds[r], smyrf_mean[r], random_mean[r]);
    return 0;
}

/* Measured means (4 seeds): R = 1: 0.196, 2: 0.066, 4: 0.044, 8: 0.032 (single seeds
 * within 0.06-0.08 at R = 2). Thresholds at about 1.5x the mean. */
static void error_below_threshold(void **state) {
    (void)state;
    const double threshold[] = {0.30, 0.10, 0.065, 0.05};
    for (int r = 0; r < 4; r++)
        if (!(smyrf_mean[r] < threshold[r]))
            fail_msg("R = %lld: mean relative error %.4f >= %.3f", (long long)rounds[r],
                     smyrf_mean[r], threshold[r]);
}

/* More rounds, less error: each doubling helps (measured 3x, 1.5x, 1.4x), and 8 rounds
 * are well below 2 (measured 0.49x; asserted 0.7x). */
static void error_decreases_with_rounds(void **state) {
    (void)state;
    for (int r = 1; r < 4; r++)
        if (!(smyrf_mean[r] < 0.9 * smyrf_mean[r - 1]))
            fail_msg("R = %lld: error %.4f not below 0.9 x %.4f of R = %lld", (long long)rounds[r],
                     smyrf_mean[r], smyrf_mean[r - 1], (long long)rounds[r - 1]);
    assert_true(smyrf_mean[3] < 0.7 * smyrf_mean[1]);
}

/* The hashing finds the peaked keys: with the same budget, random balanced clusters do
 * much worse (measured 1.8x at R = 2, 4, 8; asserted 1.35x). A hash that ignored the
 * inputs (or the XBOX+ transform) would sit at the random level. */
static void beats_random_clusters(void **state) {
    (void)state;
    for (int r = 1; r < 4; r++)
        if (!(smyrf_mean[r] * 1.35 < random_mean[r]))
            fail_msg("R = %lld: smyrf %.4f vs random clusters %.4f", (long long)rounds[r],
                     smyrf_mean[r], random_mean[r]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_below_threshold),
        cmocka_unit_test(error_decreases_with_rounds),
        cmocka_unit_test(beats_random_clusters),
    };
    return cmocka_run_group_tests(tests, measure, NULL);
}
