/* Test hook, not part of the API (hidden in the shared library; tests link the static
 * one): the groups the CPU backend builds for one (batch b, kv head hk) pair of a
 * non-causal HYBRID plan, so that the suites can compare them with the float64 reference.
 * Plain C so that the C suites call it. */
#ifndef SMYRF_CPU_HYBRID_PROBE_HPP
#define SMYRF_CPU_HYBRID_PROBE_HPP

#include <smyrf/smyrf.h>

#ifdef __cplusplus
extern "C" {
#endif

/* k, v: float32 in the plan's layout and strides; key_mask as for smyrf_execute.
 * labels [Nk]: the k-means group of each key (-1 for padded keys); counts [G] members,
 * ksum [G][d], vsum [G][dv] member sums, G = min(summaries, valid keys). Returns G; 0 when
 * the pair is in the dense limit (no groups); -1 when the plan is not a non-causal
 * float32 HYBRID plan on the CPU. */
int64_t smyrf_hybrid_probe_groups(const smyrf_plan *plan, const float *k, const float *v,
                                  const uint8_t *key_mask, int64_t b, int64_t hk,
                                  int32_t *labels, int32_t *counts, float *ksum, float *vsum);

#ifdef __cplusplus
}
#endif

#endif
