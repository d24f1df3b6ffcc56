/* Shared helpers of the CMocka suites: seeded random inputs, plans from a shape, runs,
 * comparisons against the float64 reference (src/ref/ref.h), error norms, f16/bf16.
 * Every helper that can fail fails the current CMocka test with a message. */
#ifndef SMYRF_TESTS_COMMON_H
#define SMYRF_TESTS_COMMON_H

#include <smyrf/smyrf.h>

#include "ref/ref.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#ifdef __cplusplus
extern "C" {
#endif
#include <cmocka.h>
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- seeded randomness (splitmix64: the same numbers on every machine) */
typedef struct tc_rng {
    uint64_t state;
} tc_rng;
tc_rng tc_rng_make(uint64_t seed);
uint64_t tc_next(tc_rng *r);
double tc_uniform(tc_rng *r); /* [0, 1) */
double tc_normal(tc_rng *r);  /* N(0, 1) */
void tc_fill_normal(tc_rng *r, float *x, size_t n, double sigma);

/* ---- a problem: its shape and contiguous BHND float32 inputs with float64 copies */
typedef struct tc_shape {
    int64_t batch, heads, kv_heads, q_len, k_len, qk_dim, v_dim; /* kv_heads, v_dim: 0 = derived */
    int causal;
} tc_shape;

typedef struct tc_inputs {
    tc_shape s;               /* with kv_heads and v_dim resolved */
    size_t nq_el, nk_el, nv_el, no_el, nlse; /* element counts of q, k, v, out, lse */
    float *q, *k, *v;         /* [B,H,Nq,d], [B,Hkv,Nk,d], [B,Hkv,Nk,dv] */
    uint8_t *mask;            /* [B, Nk] or NULL */
    double *qd, *kd, *vd;     /* float64 copies of q, k, v for the reference */
} tc_inputs;

/* N(0, 1) q, k, v. mask_keep in (0, 1): a random key-padding mask keeping about that
 * share of keys (the first key of each batch always kept); 0 or 1: no mask. */
tc_inputs *tc_inputs_create(const tc_shape *s, uint64_t seed, double mask_keep);
void tc_inputs_destroy(tc_inputs *in);
/* Call after changing q, k or v in place: refreshes the float64 copies. */
void tc_inputs_sync(tc_inputs *in);
/* Sets every element of the padded keys' k and v rows (every kv head) to value. */
void tc_fill_padded_keys(tc_inputs *in, float value);
/* The reference's view of the inputs. */
smyrf_ref_problem tc_ref_problem(const tc_inputs *in);

/* ---- plans */
/* A config holding the shape, mode and causal flag (asserts every set succeeds). */
smyrf_config *tc_config(const tc_shape *s, smyrf_mode mode);
void tc_set(smyrf_config *cfg, smyrf_param p, int64_t value); /* asserts OK */
smyrf_plan *tc_plan(const smyrf_config *cfg);                 /* asserts OK */
/* tc_plan, then destroys cfg. */
smyrf_plan *tc_plan_from(smyrf_config *cfg);
/* tc_config(s, SMYRF) with the SMYRF parameters set. */
smyrf_config *tc_smyrf_config(const tc_shape *s, int64_t n_hashes, int64_t q_cluster_size,
                              uint64_t seed);
/* tc_plan_from(tc_smyrf_config(...)). */
smyrf_plan *tc_smyrf_plan(const tc_shape *s, int64_t n_hashes, int64_t q_cluster_size,
                          uint64_t seed);
smyrf_plan *tc_dense_plan(const tc_shape *s);
/* Executes on the inputs (no workspace); asserts OK. out: no_el floats; lse may be NULL. */
void tc_run(const smyrf_plan *plan, const tc_inputs *in, float *out, float *lse);

/* ---- comparisons (each fails the test with the worst element when out of tolerance) */
/* max |got - want| <= rtol * max |want| (+ atol). Rows flagged in skip_rows (length
 * n / row_len, or NULL) are not compared. Returns the max abs error. */
double tc_assert_close(const float *got, const double *want, size_t n, size_t row_len,
                       const uint8_t *skip_rows, double rtol, double atol, const char *what);
/* Same, float against float (e.g. two library runs). */
double tc_assert_close_ff(const float *got, const float *want, size_t n, double rtol,
                          double atol, const char *what);
/* lse: equal infinities, else |got - want| <= tol * (1 + |want|). */
void tc_assert_lse_close(const float *got, const double *want, size_t n,
                         const uint8_t *skip_rows, double tol, const char *what);
/* Bitwise equality of two buffers, reporting the first differing float. */
void tc_assert_same_bits(const void *a, const void *b, size_t bytes, const char *what);
/* Every element finite. */
void tc_assert_all_finite(const float *x, size_t n, const char *what);

/* Relative Frobenius error ||got - want|| / ||want|| over n elements. */
double tc_rel_fro(const float *got, const double *want, size_t n);
double tc_max_abs(const double *x, size_t n);
/* The same over the rows (row_len entries each) not flagged in skip_rows (NULL: none). */
double tc_max_abs_rows(const double *x, size_t n, size_t row_len, const uint8_t *skip_rows);

/* ---- allocation and small utilities */
void *tc_alloc(size_t bytes);     /* calloc that asserts */
float *tc_nan_floats(size_t n);   /* n quiet NaNs */
/* What an output buffer held before a call, which must make no difference to the result:
 * kind % 3 picks quiet NaN, zeros, or N(0, 100) values drawn from seed. */
void tc_fill_prior(float *x, size_t n, int kind, uint64_t seed);
double *tc_doubles(size_t n);     /* zeroed */
void tc_to_double(const float *x, double *y, size_t n);

/* ---- layouts: copies between a contiguous BHND float tensor [B, H, N, D] and a
 * tensor with element strides (batch, head, token) of dtype dt (F32, F16 or BF16) */
void tc_scatter(const float *src, int64_t B, int64_t H, int64_t N, int64_t D, int64_t sb,
                int64_t sh, int64_t sn, smyrf_dtype dt, void *dst);
void tc_gather(const void *src, int64_t B, int64_t H, int64_t N, int64_t D, int64_t sb,
               int64_t sh, int64_t sn, smyrf_dtype dt, float *dst);
/* Rounds every value to dt in place (so that the float copy equals what the library reads). */
void tc_round_to(float *x, size_t n, smyrf_dtype dt);

/* `word` occurs in `text` as a whole identifier (so "q" does not match "seq"). */
int tc_mentions(const char *text, const char *word);

/* The awkward shapes of the core suite's sweep: every length of 1, 31, 33, 143, 587, 1023
 * (around a cluster or budget of 32) with every head dim of 1, 8, 21, 64, each pair in
 * one of four variants (plain; causal; GQA 4 over 2 with padding, *mask_keep, and another
 * v_dim; cross-attention, causal) so that every variant meets every length. */
#define TC_AWKWARD_LENGTHS 6
#define TC_AWKWARD_DIMS 4
tc_shape tc_awkward_shape(size_t length_at, size_t dim_at, double *mask_keep);
/* "<mode> Nq .. Nk .. d .. dv .. H ../.. causal .. mask ..": in's shape, for messages. */
void tc_describe(const tc_inputs *in, const char *mode, char *what, size_t size);

/* ---- half precision (independent of the library's own conversions) */
uint16_t tc_f32_to_f16(float f);
float tc_f16_to_f32(uint16_t h);
uint16_t tc_f32_to_bf16(float f);
float tc_bf16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif

#endif /* SMYRF_TESTS_COMMON_H */
