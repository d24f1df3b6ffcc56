#include "common.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- randomness */

tc_rng tc_rng_make(uint64_t seed) {
    tc_rng r = {seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL};
    return r;
}

uint64_t tc_next(tc_rng *r) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double tc_uniform(tc_rng *r) { return (double)(tc_next(r) >> 11) * 0x1.0p-53; }

double tc_normal(tc_rng *r) {
    const double u1 = 1.0 - tc_uniform(r), u2 = tc_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void tc_fill_normal(tc_rng *r, float *x, size_t n, double sigma) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(sigma * tc_normal(r));
}

/* ---------------------------------------------------------------- allocation */

void *tc_alloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    assert_non_null(p);
    return p;
}

float *tc_nan_floats(size_t n) {
    float *x = (float *)tc_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

void tc_fill_prior(float *x, size_t n, int kind, uint64_t seed) {
    tc_rng r = tc_rng_make(seed);
    switch (kind % 3) {
    case 0: for (size_t i = 0; i < n; i++) x[i] = NAN; break;
    case 1: memset(x, 0, n * sizeof(float)); break;
    default: tc_fill_normal(&r, x, n, 100.0); break;
    }
}

double *tc_doubles(size_t n) { return (double *)tc_alloc(n * sizeof(double)); }

void tc_to_double(const float *x, double *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i];
}

/* ---------------------------------------------------------------- inputs */

tc_inputs *tc_inputs_create(const tc_shape *s, uint64_t seed, double mask_keep) {
    tc_inputs *in = (tc_inputs *)tc_alloc(sizeof *in);
    in->s = *s;
    if (!in->s.kv_heads) in->s.kv_heads = s->heads;
    if (!in->s.v_dim) in->s.v_dim = s->qk_dim;
    if (!in->s.k_len) in->s.k_len = s->q_len;
    const tc_shape *t = &in->s;
    in->nq_el = (size_t)(t->batch * t->heads * t->q_len * t->qk_dim);
    in->nk_el = (size_t)(t->batch * t->kv_heads * t->k_len * t->qk_dim);
    in->nv_el = (size_t)(t->batch * t->kv_heads * t->k_len * t->v_dim);
    in->no_el = (size_t)(t->batch * t->heads * t->q_len * t->v_dim);
    in->nlse = (size_t)(t->batch * t->heads * t->q_len);
    in->q = (float *)tc_alloc(in->nq_el * sizeof(float));
    in->k = (float *)tc_alloc(in->nk_el * sizeof(float));
    in->v = (float *)tc_alloc(in->nv_el * sizeof(float));
    tc_rng r = tc_rng_make(seed);
    tc_fill_normal(&r, in->q, in->nq_el, 1.0);
    tc_fill_normal(&r, in->k, in->nk_el, 1.0);
    tc_fill_normal(&r, in->v, in->nv_el, 1.0);
    if (mask_keep > 0 && mask_keep < 1) {
        in->mask = (uint8_t *)tc_alloc((size_t)(t->batch * t->k_len));
        for (int64_t b = 0; b < t->batch; b++)
            for (int64_t j = 0; j < t->k_len; j++)
                in->mask[b * t->k_len + j] = (uint8_t)(j == 0 || tc_uniform(&r) < mask_keep);
    }
    in->qd = tc_doubles(in->nq_el);
    in->kd = tc_doubles(in->nk_el);
    in->vd = tc_doubles(in->nv_el);
    tc_inputs_sync(in);
    return in;
}

void tc_inputs_sync(tc_inputs *in) {
    tc_to_double(in->q, in->qd, in->nq_el);
    tc_to_double(in->k, in->kd, in->nk_el);
    tc_to_double(in->v, in->vd, in->nv_el);
}

void tc_fill_padded_keys(tc_inputs *in, float value) {
    const tc_shape *s = &in->s;
    if (!in->mask) return;
    for (int64_t b = 0; b < s->batch; b++)
        for (int64_t j = 0; j < s->k_len; j++) {
            if (in->mask[b * s->k_len + j]) continue;
            for (int64_t h = 0; h < s->kv_heads; h++) {
                const size_t row = (size_t)((b * s->kv_heads + h) * s->k_len + j);
                for (int64_t x = 0; x < s->qk_dim; x++) in->k[row * s->qk_dim + x] = value;
                for (int64_t x = 0; x < s->v_dim; x++) in->v[row * s->v_dim + x] = value;
            }
        }
}

void tc_inputs_destroy(tc_inputs *in) {
    if (!in) return;
    free(in->q), free(in->k), free(in->v), free(in->mask);
    free(in->qd), free(in->kd), free(in->vd);
    free(in);
}

smyrf_ref_problem tc_ref_problem(const tc_inputs *in) {
    const tc_shape *t = &in->s;
    smyrf_ref_problem p;
    memset(&p, 0, sizeof p);
    p.batch = t->batch, p.heads = t->heads, p.kv_heads = t->kv_heads;
    p.q_len = t->q_len, p.k_len = t->k_len, p.qk_dim = t->qk_dim, p.v_dim = t->v_dim;
    p.causal = t->causal;
    p.q = in->qd, p.k = in->kd, p.v = in->vd;
    p.key_mask = in->mask;
    return p;
}

/* ---------------------------------------------------------------- plans */

void tc_set(smyrf_config *cfg, smyrf_param p, int64_t value) {
    const smyrf_status st = smyrf_config_set(cfg, p, value);
    if (st != SMYRF_OK)
        fail_msg("smyrf_config_set(%s, %lld): %s: %s", smyrf_param_name(p), (long long)value,
                 smyrf_status_string(st), smyrf_last_error_message());
}

smyrf_config *tc_config(const tc_shape *s, smyrf_mode mode) {
    smyrf_config *cfg = NULL;
    assert_int_equal(smyrf_config_create(&cfg), SMYRF_OK);
    tc_set(cfg, SMYRF_PARAM_BATCH, s->batch);
    tc_set(cfg, SMYRF_PARAM_HEADS, s->heads);
    tc_set(cfg, SMYRF_PARAM_KV_HEADS, s->kv_heads);
    tc_set(cfg, SMYRF_PARAM_Q_LEN, s->q_len);
    tc_set(cfg, SMYRF_PARAM_K_LEN, s->k_len);
    tc_set(cfg, SMYRF_PARAM_QK_DIM, s->qk_dim);
    tc_set(cfg, SMYRF_PARAM_V_DIM, s->v_dim);
    tc_set(cfg, SMYRF_PARAM_MODE, mode);
    tc_set(cfg, SMYRF_PARAM_CAUSAL, s->causal);
    tc_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU);
    return cfg;
}

smyrf_plan *tc_plan(const smyrf_config *cfg) {
    smyrf_plan *plan = NULL;
    const smyrf_status st = smyrf_plan_create(&plan, cfg);
    if (st != SMYRF_OK)
        fail_msg("smyrf_plan_create: %s: %s", smyrf_status_string(st), smyrf_last_error_message());
    return plan;
}

smyrf_plan *tc_plan_from(smyrf_config *cfg) {
    smyrf_plan *plan = tc_plan(cfg);
    smyrf_config_destroy(cfg);
    return plan;
}

smyrf_config *tc_smyrf_config(const tc_shape *s, int64_t n_hashes, int64_t q_cluster_size,
                              uint64_t seed) {
    smyrf_config *cfg = tc_config(s, SMYRF_MODE_SMYRF);
    tc_set(cfg, SMYRF_PARAM_N_HASHES, n_hashes);
    tc_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, q_cluster_size);
    tc_set(cfg, SMYRF_PARAM_SEED, (int64_t)seed);
    return cfg;
}

smyrf_plan *tc_smyrf_plan(const tc_shape *s, int64_t n_hashes, int64_t q_cluster_size,
                          uint64_t seed) {
    return tc_plan_from(tc_smyrf_config(s, n_hashes, q_cluster_size, seed));
}

smyrf_plan *tc_dense_plan(const tc_shape *s) {
    return tc_plan_from(tc_config(s, SMYRF_MODE_DENSE));
}

void tc_run(const smyrf_plan *plan, const tc_inputs *in, float *out, float *lse) {
    const smyrf_status st =
        smyrf_execute(plan, in->q, in->k, in->v, in->mask, out, lse, NULL, 0, NULL);
    if (st != SMYRF_OK)
        fail_msg("smyrf_execute: %s: %s", smyrf_status_string(st), smyrf_last_error_message());
}

/* ---------------------------------------------------------------- comparisons */

double tc_max_abs_rows(const double *x, size_t n, size_t row_len, const uint8_t *skip_rows) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (!(skip_rows && skip_rows[i / row_len]) && fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

double tc_max_abs(const double *x, size_t n) { return tc_max_abs_rows(x, n, 1, NULL); }

double tc_assert_close(const float *got, const double *want, size_t n, size_t row_len,
                       const uint8_t *skip_rows, double rtol, double atol, const char *what) {
    const double big = tc_max_abs_rows(want, n, row_len, skip_rows);
    double worst = -1;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_rows && skip_rows[i / row_len]) continue;
        const double e = fabs((double)got[i] - want[i]);
        if (!(e <= worst)) worst = e, at = i; /* NaN counts as worst */
    }
    if (worst < 0) return 0;
    const double tol = rtol * big + atol;
    if (getenv("SMYRF_TEST_VERBOSE")) /* to measure margins when setting tolerances */
        print_message("%s: max error %.3g (%.3g of max), tolerance %.3g\n", what, worst,
                      big > 0 ? worst / big : 0.0, tol);
    if (!(worst <= tol))
        fail_msg("%s: element %zu (row %zu) is %.9g, want %.9g: error %.3g > %.3g "
                 "(rtol %.1e of max %.4g)",
                 what, at, at / row_len, (double)got[at], want[at], worst, tol, rtol, big);
    return worst;
}

double tc_assert_close_ff(const float *got, const float *want, size_t n, double rtol,
                          double atol, const char *what) {
    double *w = tc_doubles(n);
    tc_to_double(want, w, n);
    const double e = tc_assert_close(got, w, n, 1, NULL, rtol, atol, what);
    free(w);
    return e;
}

void tc_assert_lse_close(const float *got, const double *want, size_t n,
                         const uint8_t *skip_rows, double tol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (skip_rows && skip_rows[i]) continue;
        if (isinf(want[i]) || isinf(got[i])) {
            if ((double)got[i] != want[i])
                fail_msg("%s: lse[%zu] = %g, want %g", what, i, (double)got[i], want[i]);
            continue;
        }
        if (!(fabs((double)got[i] - want[i]) <= tol * (1 + fabs(want[i]))))
            fail_msg("%s: lse[%zu] = %.9g, want %.9g (tol %.1e)", what, i, (double)got[i],
                     want[i], tol);
    }
}

void tc_assert_same_bits(const void *a, const void *b, size_t bytes, const char *what) {
    if (memcmp(a, b, bytes) == 0) return;
    const float *fa = (const float *)a, *fb = (const float *)b;
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        if (memcmp(fa + i, fb + i, sizeof(float)) != 0)
            fail_msg("%s: not bitwise equal, first at float %zu: %.9g vs %.9g", what, i,
                     (double)fa[i], (double)fb[i]);
    fail_msg("%s: not bitwise equal", what);
}

void tc_assert_all_finite(const float *x, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) fail_msg("%s: element %zu is %g", what, i, (double)x[i]);
}

double tc_rel_fro(const float *got, const double *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = (double)got[i] - want[i];
        num += e * e;
        den += want[i] * want[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* ---------------------------------------------------------------- layouts */

static void store(void *dst, size_t at, float x, smyrf_dtype dt) {
    if (dt == SMYRF_DTYPE_F32) ((float *)dst)[at] = x;
    else ((uint16_t *)dst)[at] = dt == SMYRF_DTYPE_F16 ? tc_f32_to_f16(x) : tc_f32_to_bf16(x);
}

static float load(const void *src, size_t at, smyrf_dtype dt) {
    if (dt == SMYRF_DTYPE_F32) return ((const float *)src)[at];
    const uint16_t h = ((const uint16_t *)src)[at];
    return dt == SMYRF_DTYPE_F16 ? tc_f16_to_f32(h) : tc_bf16_to_f32(h);
}

void tc_scatter(const float *src, int64_t B, int64_t H, int64_t N, int64_t D, int64_t sb,
                int64_t sh, int64_t sn, smyrf_dtype dt, void *dst) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t e = 0; e < D; e++)
                    store(dst, (size_t)(b * sb + h * sh + n * sn + e),
                          src[((b * H + h) * N + n) * D + e], dt);
}

void tc_gather(const void *src, int64_t B, int64_t H, int64_t N, int64_t D, int64_t sb,
               int64_t sh, int64_t sn, smyrf_dtype dt, float *dst) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t e = 0; e < D; e++)
                    dst[((b * H + h) * N + n) * D + e] =
                        load(src, (size_t)(b * sb + h * sh + n * sn + e), dt);
}

void tc_round_to(float *x, size_t n, smyrf_dtype dt) {
    for (size_t i = 0; i < n; i++) {
        if (dt == SMYRF_DTYPE_F16) x[i] = tc_f16_to_f32(tc_f32_to_f16(x[i]));
        if (dt == SMYRF_DTYPE_BF16) x[i] = tc_bf16_to_f32(tc_f32_to_bf16(x[i]));
    }
}

/* ---------------------------------------------------------------- half precision */

uint16_t tc_f32_to_f16(float f) {
    const uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isnan(f)) return 0x7e00;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;
    if (a < 0x1.0p-14) return sign | (uint16_t)nearbyint(a * 0x1.0p24); /* subnormal */
    int e;
    frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
    e -= 1;       /* a = (1 + f) 2^e */
    double mant = nearbyint((ldexp(a, -e) - 1.0) * 1024.0);
    if (mant == 1024.0) mant = 0, e++;
    return sign | (uint16_t)(((e + 15) << 10) | (int)mant);
}

float tc_f16_to_f32(uint16_t h) {
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0x1f) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp(m, -24);
    else v = ldexp(1024 + m, e - 25);
    return (float)((h & 0x8000) ? -v : v);
}

uint16_t tc_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float tc_bf16_to_f32(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int tc_mentions(const char *text, const char *word) {
    const size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        const int left_ok = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        const int right_ok = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (left_ok && right_ok) return 1;
    }
    return 0;
}

tc_shape tc_awkward_shape(size_t length_at, size_t dim_at, double *mask_keep) {
    static const int64_t lengths[TC_AWKWARD_LENGTHS] = {1, 31, 33, 143, 587, 1023};
    static const int64_t dims[TC_AWKWARD_DIMS] = {1, 8, 21, 64};
    const size_t li = length_at, di = dim_at;
    tc_shape s = {1, 1, 0, lengths[li], lengths[li], dims[di], 0, 0};
    *mask_keep = 0;
    switch ((li + di) % 4) {
    case 1: s.causal = 1; break;
    case 2:
        s.heads = 4, s.kv_heads = 2, s.v_dim = dims[(di + 1) % TC_AWKWARD_DIMS];
        *mask_keep = 0.75;
        break;
    case 3: s.causal = 1, s.k_len = lengths[(li + 3) % TC_AWKWARD_LENGTHS]; break;
    }
    return s;
}

void tc_describe(const tc_inputs *in, const char *mode, char *what, size_t size) {
    snprintf(what, size, "%s Nq %lld Nk %lld d %lld dv %lld H %lld/%lld causal %d mask %d", mode,
             (long long)in->s.q_len, (long long)in->s.k_len, (long long)in->s.qk_dim,
             (long long)in->s.v_dim, (long long)in->s.heads, (long long)in->s.kv_heads,
             in->s.causal, in->mask != NULL);
}
