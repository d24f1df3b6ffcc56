/* The float64 reference pipeline: slow, obvious, the test oracle (never installed).
 *
 * It computes exactly what ALGORITHM.md (docs/algorithm.md) defines, in double precision, with
 * the same hash directions as the library (smyrf::direction_component rounded to
 * float) and the same stable sort and balanced cut, so that SMYRF outputs can be
 * compared cluster for cluster. Every stage (transform, hash, cluster, attention,
 * combine) is exposed on its own so that the library's stages can be compared one by
 * one. Plain C API so that both the C and the C++ suites use it.
 */
#ifndef SMYRF_REF_H
#define SMYRF_REF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One attention call in float64, contiguous BHND. */
typedef struct smyrf_ref_problem {
    int64_t batch, heads, kv_heads, q_len, k_len, qk_dim, v_dim;
    int causal;              /* bottom-right aligned */
    double scale;            /* 0 = 1 / sqrt(qk_dim) */
    const double *q;         /* [B, H, Nq, d] */
    const double *k;         /* [B, Hkv, Nk, d] */
    const double *v;         /* [B, Hkv, Nk, dv] */
    const uint8_t *key_mask; /* [B, Nk], nonzero = valid; NULL = every key valid */
} smyrf_ref_problem;

/* ---- whole pipelines. out [B, H, Nq, dv]; lse [B, H, Nq] or NULL. */
void smyrf_ref_dense(const smyrf_ref_problem *p, double *out, double *lse);

/* SMYRF mode. ambiguous [B, H, Nq] or NULL: set to 1 for the queries whose cluster (in
 * some round) sits next to a cut that a float32 computation of the hashes could place
 * differently (see smyrf_ref_cut_ambiguous); 0 elsewhere. Those rows may legitimately
 * differ from the library's; all others must match it to float32 accuracy. */
void smyrf_ref_smyrf(const smyrf_ref_problem *p, int64_t n_hashes, int64_t q_cluster_size,
                     uint64_t seed, double *out, double *lse, uint8_t *ambiguous);

/* ---- stages, on one (batch b, query head h) problem. */

/* The ascending valid key positions of batch b; returns their count (idx: Nk entries). */
int64_t smyrf_ref_valid_keys(const smyrf_ref_problem *p, int64_t b, int32_t *idx);

/* transform (XBOX+): squared norms of every query row and every key row (q_norm2: Nq,
 * k_norm2: Nk; either may be NULL); returns M2 = max_i |q_i|^2 + max_{valid j} |k_j|^2. */
double smyrf_ref_transform(const smyrf_ref_problem *p, int64_t b, int64_t h, double *q_norm2,
                           double *k_norm2);

/* The library's direction of (seed, head, round): dim2 = qk_dim + 2 components, each
 * smyrf::direction_component rounded to float (exactly what the library hashes with). */
void smyrf_ref_direction(uint64_t seed, int64_t head, int64_t round, int64_t dim2, double *a);

/* hash: hash[i] = a . x'_i for every row i of q (is_query) or k of problem (b, h), with
 * the XBOX+ extension (queries [x, 0, sqrt(M2 - |x|^2)], keys [x, sqrt(M2 - |x|^2), 0],
 * square-root argument clamped at 0). err (or NULL): a bound on how far a float32
 * computation of the same projection (float32 norms, M2, GEMM in any summation order)
 * can land from hash[i]. Padded keys get values too; callers ignore them. */
void smyrf_ref_hash(const smyrf_ref_problem *p, int64_t b, int64_t h, int is_query, double m2,
                    const double *a, double *hash, double *err);

/* cluster: stable sort of count items by hash[item] (ties by input order); items NULL
 * means 0..count-1. */
void smyrf_ref_sort(const double *hash, const int32_t *items, int64_t count, int32_t *sorted);

/* The balanced cut: cluster c of C covers sorted positions [begin(c), begin(c + 1)). */
int64_t smyrf_ref_cluster_begin(int64_t n, int64_t clusters, int64_t c);

/* Whether the cut at sorted position `at` (0 < at < count) could fall elsewhere in a
 * float32 computation: some item left of it could hash above some item right of it
 * once each hash moves by its err. */
int smyrf_ref_cut_ambiguous(const double *hash, const double *err, const int32_t *sorted,
                            int64_t count, int64_t at);

/* attention: softmax attention of queries qi[0..nq) of problem (b, h) over keys
 * kj[0..nk) (causal mask applied). o: [nq, dv] normalised rows; lse: [nq]. A query with
 * no allowed key gets a zero row and lse = -inf. */
void smyrf_ref_attention(const smyrf_ref_problem *p, int64_t b, int64_t h, const int32_t *qi,
                         int64_t nq, const int32_t *kj, int64_t nk, double *o, double *lse);

/* combine: merges `rounds` normalised rows o[r][dv] with log-normalisers lse[r] into out
 * and *lse_out by their log-sum-exp. Returns 0 (out zeros, *lse_out = -inf) when every
 * round has lse = -inf, 1 otherwise. */
int smyrf_ref_combine(int64_t rounds, int64_t dv, const double *o, const double *lse,
                      double *out, double *lse_out);

/* The fallback of a query i that met no allowed key in any round: its latest allowed
 * valid key alone (out = v_j, lse = scale q_i . k_j), else zeros and lse = -inf. */
void smyrf_ref_fallback(const smyrf_ref_problem *p, int64_t b, int64_t h, int64_t i,
                        double *out, double *lse);

/* ---- gradients (docs/algorithm.md, "Backward"): of L = sum(dout * out) with respect to
 * q, k and v, for dout [B, H, Nq, dv]. dq [B, H, Nq, d], dk [B, Hkv, Nk, d] and
 * dv [B, Hkv, Nk, dv] are overwritten (GQA: dk, dv summed over a group's query heads;
 * padded keys and rows with no allowed key get zeros). */

/* Query i of problem (b, h) attending the multiset keys[0..count) of key positions (a
 * position listed twice counts twice; every key assumed allowed), softmax normalised over
 * that multiset. Adds its gradients into dq_row [d] and the whole tensors dk and dv. */
void smyrf_ref_multiset_grad(const smyrf_ref_problem *p, int64_t b, int64_t h, int64_t i,
                             const int32_t *keys, int64_t count, const double *dout_row,
                             double *dq_row, double *dk, double *dv);

/* DENSE mode: each query's multiset is its allowed valid keys. */
void smyrf_ref_dense_grad(const smyrf_ref_problem *p, const double *dout, double *dq,
                          double *dk, double *dv);

/* SMYRF mode, the clusters of smyrf_ref_smyrf: a query's multiset is the allowed keys of
 * its cluster in every round; one that met none has its fallback key alone. Optional
 * outputs (NULL = not wanted): q_unsure [B, H, Nq] flags the dq rows that float32 clusters
 * could change (a cluster of the query next to an ambiguous cut, as in smyrf_ref_smyrf);
 * k_unsure [B, Hkv, Nk] the dk, dv rows (a cluster of the key next to an ambiguous cut, or
 * holding an unsure query, or the key is an unsure query's fallback); fallback [B, H, Nq]
 * the queries that met no allowed key in any round. */
void smyrf_ref_smyrf_grad(const smyrf_ref_problem *p, int64_t n_hashes, int64_t q_cluster_size,
                          uint64_t seed, const double *dout, double *dq, double *dk, double *dv,
                          uint8_t *q_unsure, uint8_t *k_unsure, uint8_t *fallback);

#ifdef __cplusplus
}
#endif

#endif /* SMYRF_REF_H */
