/* HYBRID mode in float64, written straight from ALGORITHM.md ("HYBRID"): the test
 * oracle of the library's HYBRID mode. Plain C (like ref.h) so the C suites use it. */
#ifndef SMYRF_REF_HYBRID_HPP
#define SMYRF_REF_HYBRID_HPP

#include "ref/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The resolved HYBRID parameters (as smyrf_plan_get reports them). */
typedef struct smyrf_ref_hybrid_params {
    int64_t budget, window, summaries, sinks, kmeans_iters;
    int64_t expand;  /* SMYRF_PARAM_EXPAND (docs/algorithm.md, HYBRID, "Expansion") */
    uint64_t seed;
} smyrf_ref_hybrid_params;

/* The whole pipeline. out [B, H, Nq, dv]; lse [B, H, Nq] or NULL. one_pass = 0: one
 * softmax over exact logits and summary logits t_ig applied to v_j and Vbar_ig (the
 * two-part definition); 1: the one-pass numerator sum_j (e^s_ij - u_{i,a_j}) v_j +
 * sum_g u_ig Vsum_g. With expand = E > 0 a non-causal batch off the dense limit whose
 * valid keys are at most G_eff E expands: query i takes its groups with m_ig > 0 by
 * decreasing t_ig (ties: lower g first) and chooses each whose whole size n_g fits in what
 * is left of E; the members of a chosen group become exact keys of i and its summary is
 * dropped. Any other batch (and every causal one) widens its window by E instead;
 * hp->window is the resolved window, B - G - S - E when derived. */
void smyrf_ref_hybrid(const smyrf_ref_problem *p, const smyrf_ref_hybrid_params *hp,
                      int one_pass, double *out, double *lse);

/* smyrf_ref_hybrid, and unsure [B, H, Nq]: 1 for the queries whose expansion choice
 * summary logits within `tie` of each other decide (another order of those logits would
 * choose other groups), 0 elsewhere. A float32 computation may order such logits
 * otherwise, so those rows may legitimately differ from the library's, as SMYRF's rows
 * next to an ambiguous cut do (smyrf_ref_smyrf). */
void smyrf_ref_hybrid_flagged(const smyrf_ref_problem *p, const smyrf_ref_hybrid_params *hp,
                              int one_pass, double tie, double *out, double *lse,
                              uint8_t *unsure);

/* The non-causal k-means groups of (batch b, kv head hk), centres in float64: labels [Nk]
 * (-1 for padded keys), counts [G], ksum [G][d], vsum [G][dv]. Returns
 * G = min(summaries, valid keys), or 0 in the dense limit (nothing written but labels). */
int64_t smyrf_ref_hybrid_groups(const smyrf_ref_problem *p, const smyrf_ref_hybrid_params *hp,
                                int64_t b, int64_t hk, int32_t *labels, int32_t *counts,
                                double *ksum, double *vsum);

#ifdef __cplusplus
}
#endif

#endif
