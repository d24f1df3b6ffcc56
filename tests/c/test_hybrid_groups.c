/* The k-means groups the CPU backend builds (through its test probe) against the float64
 * reference: the same labels, counts, and sums to float32 accuracy. */
#include "test_hybrid_support.h"
#include "cpu/hybrid_probe.hpp"

#include <math.h>
#include <stdlib.h>

typedef struct groups_case {
    const char *name;
    tc_shape s;
    double mask_keep;
    th_params hp;
} groups_case;

static const groups_case cases[] = {
    {"default, 600 keys", {1, 1, 0, 600, 0, 32, 0, 0}, 0, {0, 0, 0, -1, 0, 0, 1}},
    {"padding, one iteration", {2, 2, 0, 300, 0, 16, 8, 0}, 0.5, {40, 0, 0, -1, 1, 0, 2}},
    {"GQA, five iterations", {1, 4, 2, 50, 700, 16, 24, 0}, 0, {64, 0, 0, -1, 5, 0, 3}},
    {"more groups than fit", {1, 1, 0, 100, 0, 8, 0, 0}, 0, {0, 10, 60, 2, 3, 0, 4}},
};

static void groups_match_reference(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const groups_case *gc = &cases[c];
        tc_inputs *in = tc_inputs_create(&gc->s, 800 + c, gc->mask_keep);
        const tc_shape *s = &in->s;
        smyrf_plan *plan = th_plan(s, &gc->hp);
        const smyrf_ref_hybrid_params hp = th_resolved(plan);
        const smyrf_ref_problem rp = tc_ref_problem(in);
        const size_t nk = (size_t)s->k_len, g_max = (size_t)hp.summaries;
        int32_t *labels = tc_alloc(nk * 4), *want_labels = tc_alloc(nk * 4);
        int32_t *counts = tc_alloc(g_max * 4), *want_counts = tc_alloc(g_max * 4);
        float *ksum = tc_alloc(g_max * s->qk_dim * 4), *vsum = tc_alloc(g_max * s->v_dim * 4);
        double *want_k = tc_doubles(g_max * s->qk_dim), *want_v = tc_doubles(g_max * s->v_dim);
        for (int64_t b = 0; b < s->batch; b++)
            for (int64_t hk = 0; hk < s->kv_heads; hk++) {
                const int64_t G = smyrf_hybrid_probe_groups(plan, in->k, in->v, in->mask, b, hk,
                                                            labels, counts, ksum, vsum);
                const int64_t want_g = smyrf_ref_hybrid_groups(&rp, &hp, b, hk, want_labels,
                                                               want_counts, want_k, want_v);
                assert_int_equal(G, want_g);
                assert_true(G > 0);
                for (size_t j = 0; j < nk; j++)
                    if (labels[j] != want_labels[j])
                        fail_msg("%s: key %zu in group %d, want %d", gc->name, j, labels[j], want_labels[j]);
                for (int64_t g = 0; g < G; g++) assert_int_equal(counts[g], want_counts[g]);
                tc_assert_close(ksum, want_k, (size_t)(G * s->qk_dim), 1, NULL, 1e-6, 0, "key sums");
                tc_assert_close(vsum, want_v, (size_t)(G * s->v_dim), 1, NULL, 1e-6, 0, "value sums");
            }
        free(labels), free(want_labels), free(counts), free(want_counts);
        free(ksum), free(vsum), free(want_k), free(want_v);
        smyrf_plan_destroy(plan);
        tc_inputs_destroy(in);
    }
}

/* The seed decides the initial centres: another seed, other groups. */
static void seed_moves_the_groups(void **state) {
    (void)state;
    const tc_shape s = {1, 1, 0, 400, 0, 16, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 850, 0);
    int32_t *a = tc_alloc(400 * 4), *b = tc_alloc(400 * 4), *counts = tc_alloc(26 * 4);
    float *ksum = tc_alloc(26 * 16 * 4), *vsum = tc_alloc(26 * 16 * 4);
    for (uint64_t seed = 1; seed <= 2; seed++) {
        const th_params hp = {0, 0, 0, -1, 0, 0, seed};
        smyrf_plan *plan = th_plan(&in->s, &hp);
        assert_int_equal(smyrf_hybrid_probe_groups(plan, in->k, in->v, NULL, 0, 0,
                                                   seed == 1 ? a : b, counts, ksum, vsum), 26);
        smyrf_plan_destroy(plan);
    }
    int differ = 0;
    for (int j = 0; j < 400; j++) differ += a[j] != b[j];
    assert_true(differ > 0);
    free(a), free(b), free(counts), free(ksum), free(vsum);
    tc_inputs_destroy(in);
}

/* Exact ties in the assignment: keys that are copies of three points, A, -A and the
 * point M midway (equally far from A and -A), so the initial centres repeat points and
 * every key sits at the same distance from several of them. ALGORITHM.md: the first
 * minimum wins; random keys never tie, so groups_match_reference cannot see the rule. */
static void tied_keys_take_the_first_centre(void **state) {
    (void)state;
    const tc_shape s = {1, 1, 0, 60, 90, 4, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 860, 0);
    static const float points[3][4] = {{0.5f, 0, 0, 0}, {-0.5f, 0, 0, 0}, {0, 0.25f, 0, 0}};
    for (int j = 0; j < 90; j++)
        for (int c = 0; c < 4; c++) in->k[j * 4 + c] = points[(j * 7) % 3][c];
    tc_inputs_sync(in);
    const smyrf_ref_problem rp = tc_ref_problem(in);
    int32_t *labels = tc_alloc(90 * 4), *want = tc_alloc(90 * 4), *counts = tc_alloc(6 * 4);
    float *ksum = tc_alloc(6 * 4 * 4), *vsum = tc_alloc(6 * 4 * 4);
    double *want_k = tc_doubles(6 * 4), *want_v = tc_doubles(6 * 4);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        const th_params p = {0, 10, 6, 2, 1 + (int64_t)seed % 3, 0, seed};
        smyrf_plan *plan = th_plan(&in->s, &p);
        const smyrf_ref_hybrid_params hp = th_resolved(plan);
        assert_int_equal(smyrf_hybrid_probe_groups(plan, in->k, in->v, NULL, 0, 0, labels,
                                                   counts, ksum, vsum), 6);
        assert_int_equal(smyrf_ref_hybrid_groups(&rp, &hp, 0, 0, want, counts, want_k, want_v), 6);
        for (int j = 0; j < 90; j++)
            if (labels[j] != want[j])
                fail_msg("seed %llu: key %d in group %d, want %d", (unsigned long long)seed, j,
                         labels[j], want[j]);
        smyrf_plan_destroy(plan);
    }
    free(labels), free(want), free(counts), free(ksum), free(vsum), free(want_k), free(want_v);
    tc_inputs_destroy(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(groups_match_reference),
        cmocka_unit_test(seed_moves_the_groups),
        cmocka_unit_test(tied_keys_take_the_first_centre),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
