/* A seeded random sweep against the float64 reference: each case is drawn from its id
 * (mode, shapes, GQA, causal, key mask, scale, layout or gapped strides, dtype, SMYRF
 * rounds and cluster sizes, HYBRID parameters, lse, backward), so that it crosses
 * features the fixed sweeps keep apart. The same cases every run. Per case: out, lse
 * and (for a share) the gradients against the reference, out's gaps untouched, a second
 * run and another thread count (2, 3, 5 or all CPUs) bitwise equal, each run over other
 * previous contents of out, lse and the gradients (NaN, zeros, random values).
 * Tolerances are those of the randomized soak this suite distils (they grow with the
 * logit size, the HYBRID group size and the dtype).
 * A soak runs other ids: SMYRF_SWEEP_IDS=FIRST:COUNT (e.g. 600:20000). */
#include "test_hybrid_support.h"

#include "cpu/hybrid_probe.hpp"
#include "ref/hybrid_backward.hpp"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_IDS 600              /* ids 1..N_IDS, about a third per mode */
#define MAX_LEN 400
#define MAX_WORK 5000000       /* B H Nq Nk (d + dv): keeps the reference cheap */
#define SENTINEL 1024.0f       /* gaps of out and the gradients; exact in f16 and bf16 */

typedef struct sw_strides {
    int64_t b, h, n;
} sw_strides;

typedef struct sw_case {
    uint64_t id;
    smyrf_mode mode;
    tc_shape s;               /* kv_heads, k_len and v_dim resolved */
    int mask_kind;            /* 0 none, 1 random, 2 all but one, 3 one batch all padded */
    double keep, scale, sigma; /* scale 0: the default */
    smyrf_dtype dt;
    smyrf_layout layout;
    int strided, order;       /* explicit strides with gaps; nesting 0 BHN, 1 BNH, 2 HBN */
    int64_t pad[3];
    int64_t hashes, cq, ck;
    uint64_t seed;
    int64_t budget, window, summaries, sinks, iters, expand; /* 0 unset; sinks, expand -1 */
    int want_lse, backward;
    int64_t threads;          /* of the third run: 2, 3, 5 or 0 (all CPUs) */
} sw_case;

typedef struct sw_stats {
    int cases, compared, skipped_labels, skipped_rows, backward;
    int off_dense, expanding; /* HYBRID cases with a batch off the dense limit, expanding */
    size_t rows, rows_compared;
} sw_stats;

static int64_t draw(tc_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)(tc_next(r) % (uint64_t)(hi - lo + 1));
}

static int coin(tc_rng *r, double p) { return tc_uniform(r) < p; }

/* Mostly next to the size that matters for the mode (cluster, budget), else anything. */
static int64_t draw_len(tc_rng *r, int64_t around) {
    if (around > MAX_LEN) around = MAX_LEN;
    switch ((int)draw(r, 0, 7)) {
    case 0: return 1;
    case 1: return around > 1 ? around - 1 : 1;
    case 2: return around < MAX_LEN ? around + 1 : MAX_LEN;
    case 3: return around;
    case 4: return draw(r, 1, 40);
    default: return draw(r, 1, MAX_LEN);
    }
}

static int64_t draw_dim(tc_rng *r) {
    switch ((int)draw(r, 0, 3)) {
    case 0: return draw(r, 1, 4);
    case 1: return 2 * draw(r, 1, 35) - 1; /* odd: no vector width divides it */
    case 2: { const int64_t p[] = {8, 16, 32, 64}; return p[draw(r, 0, 3)]; }
    default: return draw(r, 1, 70);
    }
}

/* Whether the plan accepts the HYBRID settings, as the header derives them. */
static int hybrid_fits(const sw_case *c) {
    const int64_t S = c->sinks < 0 ? 2 : c->sinks, w0 = c->window;
    int64_t G = c->summaries, E = c->expand;
    const int64_t B = c->budget ? c->budget : w0 && G ? w0 + S + G + (E > 0 ? E : 0) : 128;
    if (!G) G = (int64_t)floor(B / 5.0 + 0.5) > 1 ? (int64_t)floor(B / 5.0 + 0.5) : 1;
    if (E < 0) {
        const int64_t most = B - G - S - 1 > 0 ? B - G - S - 1 : 0;
        E = w0 ? 0 : (int64_t)floor(B / 3.0 + 0.5);
        if (E > most) E = most;
    }
    const int64_t w = w0 ? w0 : B - G - S - E;
    return w >= 1 && w + S + G + E <= B;
}

static void draw_hybrid(tc_rng *r, sw_case *c) {
    c->sinks = -1, c->expand = -1;
    switch ((int)draw(r, 0, 3)) {
    case 0: c->budget = coin(r, 0.5) ? draw(r, 4, 40) : draw(r, 4, 200); break;
    case 1:
        c->window = draw(r, 1, 60), c->summaries = draw(r, 1, 40);
        if (coin(r, 0.5)) c->expand = draw(r, 0, 60);
        break;
    case 2:
        c->budget = draw(r, 6, 160);
        if (coin(r, 0.5)) c->summaries = draw(r, 1, c->budget / 3 + 1);
        if (coin(r, 0.3)) c->window = draw(r, 1, c->budget / 2 + 1);
        if (coin(r, 0.5)) c->expand = draw(r, 0, c->budget / 2);
        break;
    default: break; /* every default: budget 128 */
    }
    if (coin(r, 0.5)) c->sinks = draw(r, 0, 2);
    if (coin(r, 0.5)) c->iters = draw(r, 1, 6);
    /* an over-full budget is the refusal suites' business: drop what overflows */
    if (!hybrid_fits(c)) c->expand = -1;
    if (!hybrid_fits(c)) c->window = 0;
}

static void draw_case(uint64_t id, sw_case *c) {
    tc_rng r = tc_rng_make(id ^ 0x5eedf00dULL);
    memset(c, 0, sizeof *c);
    c->id = id;
    c->mode = (smyrf_mode)draw(&r, 0, 2);
    tc_shape *s = &c->s;
    s->batch = draw(&r, 1, 3), s->heads = draw(&r, 1, 4);
    do s->kv_heads = draw(&r, 1, s->heads);
    while (s->heads % s->kv_heads);
    s->qk_dim = draw_dim(&r);
    s->v_dim = coin(&r, 0.4) ? s->qk_dim : draw_dim(&r);
    s->causal = coin(&r, 0.4);
    c->hashes = draw(&r, 1, 4);
    { const int64_t cs[] = {1, 2, 3, 7, 16, 32, 64, 100}; c->cq = coin(&r, 0.7) ? cs[draw(&r, 0, 7)] : draw(&r, 1, 200); }
    if (c->mode == SMYRF_MODE_HYBRID) draw_hybrid(&r, c);
    int64_t around = c->mode == SMYRF_MODE_DENSE ? 64 : c->cq;
    if (c->mode == SMYRF_MODE_HYBRID) around = c->budget ? c->budget : c->window ? c->window + 20 : 128;
    s->q_len = draw_len(&r, around);
    s->k_len = coin(&r, 0.4) ? s->q_len : draw_len(&r, around);
    if (c->mode == SMYRF_MODE_HYBRID && coin(&r, 0.5)) /* off the dense limit */
        s->k_len = draw(&r, (around < MAX_LEN - 1 ? around : MAX_LEN - 1) + 1, MAX_LEN);
    while (s->batch * s->heads * s->q_len * s->k_len * (s->qk_dim + s->v_dim) > MAX_WORK) {
        if (s->batch > 1) s->batch--;
        else if (s->heads > s->kv_heads) s->heads = s->kv_heads;
        else if (s->heads > 1) s->heads = s->kv_heads = 1;
        else if (s->qk_dim + s->v_dim > 24) *(s->qk_dim > s->v_dim ? &s->qk_dim : &s->v_dim) /= 2;
        else if (s->q_len > s->k_len) s->q_len /= 2;
        else s->k_len /= 2;
    }
    if (c->mode == SMYRF_MODE_SMYRF && coin(&r, 0.3)) { /* a key cap: the minimum, or above */
        const int64_t cq = c->cq < s->q_len ? c->cq : s->q_len;
        const int64_t clusters = (s->q_len + cq - 1) / cq;
        c->ck = (s->k_len + clusters - 1) / clusters + (coin(&r, 0.5) ? 0 : draw(&r, 0, 50));
    }
    c->mask_kind = (int)draw(&r, 0, 5);
    if (c->mask_kind > 3) c->mask_kind = 0;
    c->keep = 0.05 + 0.9 * tc_uniform(&r);
    c->scale = coin(&r, 0.7) ? 0 : exp(log(0.02) + tc_uniform(&r) * (log(2.0) - log(0.02)));
    { const double sg[] = {0.3, 1.0, 1.0, 2.0, 3.0, 10.0}; c->sigma = sg[draw(&r, 0, 5)]; }
    { const int k = (int)draw(&r, 0, 9); c->dt = k < 7 ? SMYRF_DTYPE_F32 : k < 9 ? SMYRF_DTYPE_F16 : SMYRF_DTYPE_BF16; }
    c->layout = (smyrf_layout)draw(&r, 0, 1);
    c->strided = coin(&r, 0.25);
    c->order = (int)draw(&r, 0, 2);
    for (int x = 0; x < 3; x++) c->pad[x] = coin(&r, 0.5) ? 0 : draw(&r, 1, 9);
    c->seed = coin(&r, 0.2) ? tc_next(&r) : (uint64_t)draw(&r, 0, 1000);
    c->want_lse = coin(&r, 0.8);
    c->backward = coin(&r, 0.4);
    /* drawn last, so that the draws above (the cases) stay as they were */
    { const int64_t t[] = {2, 3, 5, 0}; c->threads = t[draw(&r, 0, 3)]; }
}

/* q, k (sigma), v rounded to the dtype, with float64 copies, and the case's mask. */
static tc_inputs *case_inputs(const sw_case *c) {
    tc_inputs *in = tc_inputs_create(&c->s, c->id, 0);
    const tc_shape *s = &in->s;
    for (size_t i = 0; i < in->nq_el; i++) in->q[i] *= (float)c->sigma;
    for (size_t i = 0; i < in->nk_el; i++) in->k[i] *= (float)c->sigma;
    tc_round_to(in->q, in->nq_el, c->dt);
    tc_round_to(in->k, in->nk_el, c->dt);
    tc_round_to(in->v, in->nv_el, c->dt);
    tc_inputs_sync(in);
    if (c->mask_kind) {
        tc_rng r = tc_rng_make(c->id ^ 0x3a5cULL);
        const int64_t Nk = s->k_len, empty = draw(&r, 0, s->batch - 1);
        in->mask = (uint8_t *)tc_alloc((size_t)(s->batch * Nk));
        for (int64_t b = 0; b < s->batch; b++) {
            const int64_t only = draw(&r, 0, Nk - 1);
            for (int64_t j = 0; j < Nk; j++) {
                int keep = tc_uniform(&r) < c->keep;
                if (c->mask_kind == 2) keep = j == only;
                if (c->mask_kind == 3 && b == empty) keep = 0;
                in->mask[b * Nk + j] = keep ? (uint8_t)draw(&r, 1, 255) : 0; /* any nonzero: valid */
            }
        }
    }
    return in;
}

static sw_strides case_strides(const sw_case *c, int64_t H, int64_t N, int64_t D, int is_out) {
    sw_strides st = {H * N * D, N * D, D};
    if (c->layout == SMYRF_LAYOUT_BNHD) st = (sw_strides){N * H * D, D, H * D};
    if (!c->strided) return st;
    const int64_t p0 = c->pad[0] + is_out, p1 = c->pad[1], p2 = c->pad[2];
    if (c->order == 0) st.n = D + p0, st.h = st.n * N + p1, st.b = st.h * H + p2;
    else if (c->order == 1) st.h = D + p0, st.n = st.h * H + p1, st.b = st.n * N + p2;
    else st.n = D + p0, st.b = st.n * N + p1, st.h = st.b * c->s.batch + p2;
    return st;
}

static size_t extent(sw_strides st, int64_t B, int64_t H, int64_t N, int64_t D) {
    return (size_t)((B - 1) * st.b + (H - 1) * st.h + (N - 1) * st.n + D);
}

/* A tensor as the library sees it: src (BHND, or NULL) in its strides and dtype, every
 * element of the tensor `fill` when src is NULL, and `gap` between. */
static void *view_of(const float *src, int64_t B, int64_t H, int64_t N, int64_t D, sw_strides st,
                     smyrf_dtype dt, float fill, float gap) {
    const size_t ext = extent(st, B, H, N, D), n = (size_t)(B * H * N * D);
    float *tmp = (float *)tc_alloc((ext > n ? ext : n) * sizeof(float));
    void *buf = tc_alloc(ext * (dt == SMYRF_DTYPE_F32 ? 4 : 2));
    for (size_t i = 0; i < ext; i++) tmp[i] = gap;
    tc_scatter(tmp, 1, 1, 1, (int64_t)ext, 0, 0, 0, dt, buf);
    for (size_t i = 0; i < n; i++) tmp[i] = src ? src[i] : fill;
    tc_scatter(tmp, B, H, N, D, st.b, st.h, st.n, dt, buf);
    free(tmp);
    return buf;
}

/* view_of a tensor that holds what tc_fill_prior(kind, seed) puts there. */
static void *prior_view(int kind, uint64_t seed, int64_t B, int64_t H, int64_t N, int64_t D,
                        sw_strides st, smyrf_dtype dt) {
    const size_t n = (size_t)(B * H * N * D);
    float *prior = (float *)tc_alloc(n * sizeof(float));
    tc_fill_prior(prior, n, kind, seed);
    void *buf = view_of(prior, B, H, N, D, st, dt, 0, SENTINEL);
    free(prior);
    return buf;
}

/* Fails unless every gap of a view (elements outside the tensor) still holds SENTINEL. */
static void assert_gaps_kept(const void *buf, int64_t B, int64_t H, int64_t N, int64_t D,
                             sw_strides st, smyrf_dtype dt, const char *what) {
    const size_t ext = extent(st, B, H, N, D), es = dt == SMYRF_DTYPE_F32 ? 4 : 2;
    void *copy = tc_alloc(ext * es);
    float *all = (float *)tc_alloc((ext > (size_t)(B * H * N * D) ? ext : (size_t)(B * H * N * D)) * 4);
    memcpy(copy, buf, ext * es);
    for (size_t i = 0; i < (size_t)(B * H * N * D); i++) all[i] = SENTINEL;
    tc_scatter(all, B, H, N, D, st.b, st.h, st.n, dt, copy); /* the tensor itself */
    tc_gather(copy, 1, 1, 1, (int64_t)ext, 0, 0, 0, dt, all);
    for (size_t i = 0; i < ext; i++)
        if (all[i] != SENTINEL) fail_msg("%s: gap element %zu written (%g)", what, i, (double)all[i]);
    free(copy), free(all);
}

/* plain: float32 BHND without strides, as the k-means probe reads k and v. */
static smyrf_config *case_config(const sw_case *c, int64_t threads, int plain) {
    const tc_shape *s = &c->s;
    smyrf_config *cfg = tc_config(s, c->mode);
    tc_set(cfg, SMYRF_PARAM_SEED, (int64_t)c->seed);
    tc_set(cfg, SMYRF_PARAM_THREADS, threads);
    if (c->scale > 0) assert_int_equal(smyrf_config_set_scale(cfg, c->scale), SMYRF_OK);
    /* the mode's own parameters (0, or -1 for sinks and expand: derived) */
    const struct { smyrf_mode mode; smyrf_param p; int64_t value; } own[] = {
        {SMYRF_MODE_SMYRF, SMYRF_PARAM_N_HASHES, c->hashes},
        {SMYRF_MODE_SMYRF, SMYRF_PARAM_Q_CLUSTER_SIZE, c->cq},
        {SMYRF_MODE_SMYRF, SMYRF_PARAM_K_CLUSTER_SIZE, c->ck},
        {SMYRF_MODE_HYBRID, SMYRF_PARAM_BUDGET, c->budget},
        {SMYRF_MODE_HYBRID, SMYRF_PARAM_WINDOW, c->window},
        {SMYRF_MODE_HYBRID, SMYRF_PARAM_SUMMARIES, c->summaries},
        {SMYRF_MODE_HYBRID, SMYRF_PARAM_SINKS, c->sinks},
        {SMYRF_MODE_HYBRID, SMYRF_PARAM_KMEANS_ITERS, c->iters},
        {SMYRF_MODE_HYBRID, SMYRF_PARAM_EXPAND, c->expand},
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (own[i].mode == c->mode) tc_set(cfg, own[i].p, own[i].value);
    if (plain) return cfg;
    tc_set(cfg, SMYRF_PARAM_DTYPE, c->dt);
    tc_set(cfg, SMYRF_PARAM_LAYOUT, c->layout);
    if (c->strided) {
        const sw_strides st[4] = {case_strides(c, s->heads, s->q_len, s->qk_dim, 0),
                                  case_strides(c, s->kv_heads, s->k_len, s->qk_dim, 0),
                                  case_strides(c, s->kv_heads, s->k_len, s->v_dim, 0),
                                  case_strides(c, s->heads, s->q_len, s->v_dim, 1)};
        const smyrf_param first[4] = {SMYRF_PARAM_Q_STRIDE_BATCH, SMYRF_PARAM_K_STRIDE_BATCH,
                                      SMYRF_PARAM_V_STRIDE_BATCH, SMYRF_PARAM_OUT_STRIDE_BATCH};
        for (int t = 0; t < 4; t++) {
            tc_set(cfg, first[t], st[t].b);
            tc_set(cfg, (smyrf_param)(first[t] + 1), st[t].h);
            tc_set(cfg, (smyrf_param)(first[t] + 2), st[t].n);
        }
    }
    return cfg;
}

/* The largest squared row norm of x [rows, dim]. */
static double max_norm2(const double *x, size_t rows, size_t dim) {
    double m = 0;
    for (size_t i = 0; i < rows; i++) {
        double s2 = 0;
        for (size_t e = 0; e < dim; e++) s2 += x[i * dim + e] * x[i * dim + e];
        if (s2 > m) m = s2;
    }
    return m;
}

/* Whether the library's k-means labels (probe) equal the float64 reference's for every
 * (batch, kv head) off the dense limit; *maxgroup: the largest group either side. */
static int labels_agree(const sw_case *c, const tc_inputs *in, const smyrf_ref_hybrid_params *hp,
                        int64_t *maxgroup) {
    const tc_shape *s = &in->s;
    const int64_t Nk = s->k_len, G = hp->summaries;
    const smyrf_ref_problem rp = tc_ref_problem(in);
    smyrf_plan *probe = tc_plan_from(case_config(c, 1, 1));
    int32_t *lab = (int32_t *)tc_alloc((size_t)Nk * 4), *want = (int32_t *)tc_alloc((size_t)Nk * 4);
    int32_t *cnt = (int32_t *)tc_alloc((size_t)G * 4), *want_cnt = (int32_t *)tc_alloc((size_t)G * 4);
    float *ks = (float *)tc_alloc((size_t)(G * s->qk_dim) * 4), *vs = (float *)tc_alloc((size_t)(G * s->v_dim) * 4);
    double *wk = tc_doubles((size_t)(G * s->qk_dim)), *wv = tc_doubles((size_t)(G * s->v_dim));
    int agree = 1;
    for (int64_t b = 0; b < s->batch; b++) {
        int64_t n = 0;
        for (int64_t j = 0; j < Nk; j++) n += !in->mask || in->mask[b * Nk + j];
        /* a batch that does not expand widens its window by E, which moves the dense limit */
        smyrf_ref_hybrid_params hb = *hp;
        const int dense = hp->budget >= n || hp->window >= n;
        if (!(hp->expand > 0 && !dense && n <= (G < n ? G : n) * hp->expand)) hb.window += hp->expand;
        for (int64_t hk = 0; hk < s->kv_heads; hk++) {
            const int64_t got_g = smyrf_hybrid_probe_groups(probe, in->k, in->v, in->mask, b, hk, lab, cnt, ks, vs);
            const int64_t want_g = smyrf_ref_hybrid_groups(&rp, &hb, b, hk, want, want_cnt, wk, wv);
            if (got_g != want_g)
                fail_msg("case %llu: probe has %lld groups, reference %lld", (unsigned long long)c->id,
                         (long long)got_g, (long long)want_g);
            for (int64_t j = 0; got_g > 0 && j < Nk; j++)
                if ((!in->mask || in->mask[b * Nk + j]) && lab[j] != want[j]) agree = 0;
            for (int64_t g = 0; g < got_g; g++) {
                if (cnt[g] > *maxgroup) *maxgroup = cnt[g];
                if (want_cnt[g] > *maxgroup) *maxgroup = want_cnt[g];
            }
        }
    }
    smyrf_plan_destroy(probe);
    free(lab), free(want), free(cnt), free(want_cnt), free(ks), free(vs), free(wk), free(wv);
    return agree;
}

/* The float32 rounding of a sum relative to the size of its terms (sum_i |term_i|): a
 * few units, more through HYBRID's groups (one-pass weights p - u, group sums). */
static double sum_eps(const sw_case *c, int64_t maxgroup) {
    return 4e-7 * (c->mode == SMYRF_MODE_HYBRID ? 1 + (double)maxgroup / 8 : 1);
}

/* The mode's float64 output (lse, unsure: or NULL). unsure flags the rows that float32
 * could legitimately change: SMYRF's next to an ambiguous cut, HYBRID's whose expansion
 * choice hinges on summary logits within `tie` of each other (DENSE: none, left as is). */
static void reference_out(const sw_case *c, const smyrf_ref_problem *rp,
                          const smyrf_ref_hybrid_params *hp, double tie, double *out, double *lse,
                          uint8_t *unsure) {
    if (c->mode == SMYRF_MODE_DENSE) smyrf_ref_dense(rp, out, lse);
    else if (c->mode == SMYRF_MODE_SMYRF) smyrf_ref_smyrf(rp, c->hashes, c->cq, c->seed, out, lse, unsure);
    else smyrf_ref_hybrid_flagged(rp, hp, 0, tie, out, lse, unsure);
}

/* The mode's float64 output on the case's inputs with v replaced by |v|: row by row
 * sum_j w_ij |v_j| (every mode's weights w are >= 0), the size of the terms that out's
 * float32 sums add up however much they cancel. */
static double *reference_on_abs_v(const sw_case *c, const tc_inputs *in, const smyrf_ref_problem *rp,
                                  const smyrf_ref_hybrid_params *hp) {
    double *av = tc_doubles(in->nv_el), *o = tc_doubles(in->no_el);
    for (size_t i = 0; i < in->nv_el; i++) av[i] = fabs(in->vd[i]);
    smyrf_ref_problem ra = *rp;
    ra.v = av;
    reference_out(c, &ra, hp, 0, o, NULL, NULL);
    free(av);
    return o;
}

/* The mode's float64 gradients; for SMYRF, q_unsure and k_unsure (or NULL) flag the rows
 * that float32 clusters could change. */
static void reference_grads(const sw_case *c, const smyrf_ref_problem *rp,
                            const smyrf_ref_hybrid_params *hp, const double *dout, double *dq,
                            double *dk, double *dv, uint8_t *q_unsure, uint8_t *k_unsure) {
    if (c->mode == SMYRF_MODE_DENSE) smyrf_ref_dense_grad(rp, dout, dq, dk, dv);
    else if (c->mode == SMYRF_MODE_SMYRF)
        smyrf_ref_smyrf_grad(rp, c->hashes, c->cq, c->seed, dout, dq, dk, dv, q_unsure, k_unsure, NULL);
    else smyrf_ref_hybrid_backward(rp, hp, dout, dq, dk, dv);
}

/* The backward on the forward's out and lse: three runs (threads 1 twice, the case's
 * threads), each over other previous contents of dq, dk and dv, bitwise equal, gaps
 * untouched, the gradients against the reference. */
static void check_backward(const sw_case *c, const tc_inputs *in, const smyrf_plan *p1,
                           const smyrf_plan *p2, const void *qb, const void *kb, const void *vb,
                           const void *out, const float *lse, const smyrf_ref_hybrid_params *hp,
                           double L, int64_t maxgroup, const char *what) {
    const tc_shape *s = &in->s;
    const int64_t B = s->batch, H = s->heads, Hk = s->kv_heads, Nq = s->q_len, Nk = s->k_len;
    const int64_t d = s->qk_dim, dv = s->v_dim;
    const smyrf_dtype dt = c->dt;
    const size_t es = dt == SMYRF_DTYPE_F32 ? 4 : 2;
    const sw_strides sq = case_strides(c, H, Nq, d, 0), sk = case_strides(c, Hk, Nk, d, 0);
    const sw_strides sv = case_strides(c, Hk, Nk, dv, 0), so = case_strides(c, H, Nq, dv, 1);
    const size_t ext[3] = {extent(sq, B, H, Nq, d), extent(sk, B, Hk, Nk, d), extent(sv, B, Hk, Nk, dv)};
    tc_rng r = tc_rng_make(c->id ^ 0xd0d0ULL);
    float *dout = (float *)tc_alloc(in->no_el * 4);
    tc_fill_normal(&r, dout, in->no_el, 1.0);
    tc_round_to(dout, in->no_el, dt);
    void *doutb = view_of(dout, B, H, Nq, dv, so, dt, 0, NAN);
    void *g[3][3];
    for (int run = 0; run < 3; run++) {
        g[run][0] = prior_view(run, c->id + 10, B, H, Nq, d, sq, dt);
        g[run][1] = prior_view(run, c->id + 11, B, Hk, Nk, d, sk, dt);
        g[run][2] = prior_view(run, c->id + 12, B, Hk, Nk, dv, sv, dt);
        const smyrf_status st = smyrf_execute_backward(run < 2 ? p1 : p2, qb, kb, vb, in->mask, out, lse,
                                                       doutb, g[run][0], g[run][1], g[run][2], NULL, 0, NULL);
        if (st != SMYRF_OK) fail_msg("%s: backward: %s", what, smyrf_last_error_message());
    }
    char name[240];
    for (int t = 0; t < 3; t++) {
        snprintf(name, sizeof name, "%s gradient %d: run 1 vs run 2", what, t);
        tc_assert_same_bits(g[0][t], g[1][t], ext[t] * es, name);
        snprintf(name, sizeof name, "%s gradient %d: threads 1 vs %lld", what, t, (long long)c->threads);
        tc_assert_same_bits(g[0][t], g[2][t], ext[t] * es, name);
    }
    assert_gaps_kept(g[0][0], B, H, Nq, d, sq, dt, "dq");
    assert_gaps_kept(g[0][1], B, Hk, Nk, d, sk, dt, "dk");
    assert_gaps_kept(g[0][2], B, Hk, Nk, dv, sv, dt, "dv");
    float *gq = (float *)tc_alloc(in->nq_el * 4), *gk = (float *)tc_alloc(in->nk_el * 4);
    float *gv = (float *)tc_alloc(in->nv_el * 4);
    tc_gather(g[0][0], B, H, Nq, d, sq.b, sq.h, sq.n, dt, gq);
    tc_gather(g[0][1], B, Hk, Nk, d, sk.b, sk.h, sk.n, dt, gk);
    tc_gather(g[0][2], B, Hk, Nk, dv, sv.b, sv.h, sv.n, dt, gv);
    const smyrf_ref_problem rp = tc_ref_problem(in);
    smyrf_ref_problem rps = rp;
    rps.scale = c->scale;
    double *dd = tc_doubles(in->no_el), *rq = tc_doubles(in->nq_el), *rk = tc_doubles(in->nk_el);
    double *rv = tc_doubles(in->nv_el);
    uint8_t *qun = (uint8_t *)tc_alloc(in->nlse), *kun = (uint8_t *)tc_alloc((size_t)(B * Hk * Nk));
    tc_to_double(dout, dd, in->no_el);
    reference_grads(c, &rps, hp, dd, rq, rk, rv, qun, kun);
    /* dv_j = sum_i w_ij dout_i with w >= 0: the same with |dout| sizes its terms (their
     * sum can cancel to far less than they are: case 279263, GQA with one valid key) */
    double *ad = tc_doubles(in->no_el), *aq = tc_doubles(in->nq_el), *ak = tc_doubles(in->nk_el);
    double *av = tc_doubles(in->nv_el);
    for (size_t i = 0; i < in->no_el; i++) ad[i] = fabs(dd[i]);
    reference_grads(c, &rps, hp, ad, aq, ak, av, NULL, NULL);
    const double dv_terms = tc_max_abs(av, in->nv_el);
    free(ad), free(aq), free(ak), free(av);
    /* float32 against float64, relative to the largest entry, more with big logits,
     * HYBRID groups and half dtypes; plus an absolute floor of one rounding of lse and
     * out (a gradient exactly 0 in float64 is O(eps) in float32), at each gradient's size.
     * The backward reads out as stored, rounded to the dtype (unit roundoff 2^-11 in f16,
     * 2^-8 in bf16), and that rounding enters D_i = dout_i . out_i and so every gradient
     * (dq_i by up to u scale |dout_i| |out_i| |k|), where the float64 side has the exact
     * out: eps is twice u (case 207673, f16 and d 1, had dq off by 1.1% of its largest
     * entry, all of it from this rounding, with eps u / 2). */
    double grtol = 5e-5 + 1e-6 * L;
    if (c->mode == SMYRF_MODE_HYBRID) grtol += 1e-6 * L * (double)maxgroup / 8;
    if (dt == SMYRF_DTYPE_F16) grtol += 0x1.0p-10;
    if (dt == SMYRF_DTYPE_BF16) grtol += 0x1.0p-7;
    const double eps = dt == SMYRF_DTYPE_F32 ? 4e-7 : dt == SMYRF_DTYPE_F16 ? 0x1.0p-10 : 0x1.0p-7;
    const double scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)d);
    const double vn = sqrt(max_norm2(in->vd, in->nv_el / (size_t)dv, (size_t)dv));
    const double gn = sqrt(max_norm2(dd, in->no_el / (size_t)dv, (size_t)dv));
    const double qn = sqrt(max_norm2(in->qd, in->nq_el / (size_t)d, (size_t)d));
    const double kn = sqrt(max_norm2(in->kd, in->nk_el / (size_t)d, (size_t)d));
    snprintf(name, sizeof name, "%s dq", what);
    tc_assert_close(gq, rq, in->nq_el, (size_t)d, qun, grtol, eps * scale * kn * gn * vn + 1e-7, name);
    snprintf(name, sizeof name, "%s dk", what);
    tc_assert_close(gk, rk, in->nk_el, (size_t)d, kun, grtol, eps * scale * qn * gn * vn + 1e-7, name);
    snprintf(name, sizeof name, "%s dv", what);
    tc_assert_close(gv, rv, in->nv_el, (size_t)dv, kun, grtol,
                    eps * gn + 1e-7 + sum_eps(c, maxgroup) * dv_terms, name);
    for (int run = 0; run < 3; run++) free(g[run][0]), free(g[run][1]), free(g[run][2]);
    free(dout), free(doutb), free(gq), free(gk), free(gv), free(dd), free(rq), free(rk), free(rv);
    free(qun), free(kun);
}

static void run_case(const sw_case *c, sw_stats *stats) {
    char what[200];
    static const char *const mode_name[] = {"SMYRF", "DENSE", "HYBRID"};
    snprintf(what, sizeof what, "case %llu (%s)", (unsigned long long)c->id, mode_name[c->mode]);
    tc_inputs *in = case_inputs(c);
    const tc_shape *s = &in->s;
    const int64_t B = s->batch, H = s->heads, Hk = s->kv_heads, Nq = s->q_len, Nk = s->k_len;
    const int64_t d = s->qk_dim, dv = s->v_dim;
    const smyrf_dtype dt = c->dt;
    const size_t es = dt == SMYRF_DTYPE_F32 ? 4 : 2;
    smyrf_plan *p1 = tc_plan_from(case_config(c, 1, 0));
    smyrf_plan *p2 = tc_plan_from(case_config(c, c->threads, 0));
    const sw_strides sq = case_strides(c, H, Nq, d, 0), sk = case_strides(c, Hk, Nk, d, 0);
    const sw_strides sv = case_strides(c, Hk, Nk, dv, 0), so = case_strides(c, H, Nq, dv, 1);
    const size_t eo = extent(so, B, H, Nq, dv);
    /* gaps of the inputs hold NaN: read one and it shows */
    void *qb = view_of(in->q, B, H, Nq, d, sq, dt, 0, NAN), *kb = view_of(in->k, B, Hk, Nk, d, sk, dt, 0, NAN);
    void *vb = view_of(in->v, B, Hk, Nk, dv, sv, dt, 0, NAN);
    void *out[3];
    float *lse[3];
    for (int run = 0; run < 3; run++) {
        /* before each run, out and lse hold something else: NaN, zeros, random values */
        out[run] = prior_view(run, c->id + 1, B, H, Nq, dv, so, dt);
        /* the backward needs an lse: the third run provides it */
        lse[run] = NULL;
        if (c->want_lse || (run == 2 && c->backward)) {
            lse[run] = (float *)tc_alloc(in->nlse * sizeof(float));
            tc_fill_prior(lse[run], in->nlse, run, c->id + 2);
        }
        const smyrf_status st = smyrf_execute(run < 2 ? p1 : p2, qb, kb, vb, in->mask, out[run],
                                              lse[run], NULL, 0, NULL);
        if (st != SMYRF_OK) fail_msg("%s: execute: %s", what, smyrf_last_error_message());
    }
    char name[240];
    snprintf(name, sizeof name, "%s out: run 1 vs run 2", what);
    tc_assert_same_bits(out[0], out[1], eo * es, name);
    snprintf(name, sizeof name, "%s out: threads 1 vs %lld", what, (long long)c->threads);
    tc_assert_same_bits(out[0], out[2], eo * es, name);
    if (c->want_lse) {
        snprintf(name, sizeof name, "%s lse: run 1 vs run 2", what);
        tc_assert_same_bits(lse[0], lse[1], in->nlse * 4, name);
        snprintf(name, sizeof name, "%s lse: threads 1 vs %lld", what, (long long)c->threads);
        tc_assert_same_bits(lse[0], lse[2], in->nlse * 4, name);
    }
    assert_gaps_kept(out[0], B, H, Nq, dv, so, dt, what);
    float *got = (float *)tc_alloc(in->no_el * 4);
    tc_gather(out[0], B, H, Nq, dv, so.b, so.h, so.n, dt, got);
    tc_assert_all_finite(got, in->no_el, what);

    smyrf_ref_problem rp = tc_ref_problem(in);
    rp.scale = c->scale;
    const double scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)d);
    /* the largest logit: float32 logits of size L carry errors ~1e-7 L */
    const double L = scale * sqrt(max_norm2(in->qd, in->nq_el / (size_t)d, (size_t)d)) *
                     sqrt(max_norm2(in->kd, in->nk_el / (size_t)d, (size_t)d));
    double *want = tc_doubles(in->no_el), *want_lse = tc_doubles(in->nlse);
    uint8_t *skip = (uint8_t *)tc_alloc(in->nlse);
    smyrf_ref_hybrid_params hp;
    memset(&hp, 0, sizeof hp);
    int64_t maxgroup = 1;
    int compare = 1;
    if (c->mode == SMYRF_MODE_HYBRID) {
        hp = th_resolved(p1);
        /* k-means in float32 and float64 may part ways at a near-tie of distances; such a
         * case compares nothing (counted, and bounded at the end) */
        if (!s->causal) compare = labels_agree(c, in, &hp, &maxgroup);
        if (!compare) stats->skipped_labels++;
        int off = 0, ex = 0;
        for (int64_t b = 0; b < B; b++) {
            int64_t n = 0;
            for (int64_t j = 0; j < Nk; j++) n += !in->mask || in->mask[b * Nk + j];
            const int dense = hp.budget >= n || hp.window >= n;
            off |= n > 0 && !dense;
            ex |= n > 0 && !dense && !s->causal && hp.expand > 0 &&
                  n <= (hp.summaries < n ? hp.summaries : n) * hp.expand;
        }
        stats->off_dense += off, stats->expanding += ex;
    }
    /* HYBRID: summary logits within float32 rounding of each other (|t_ig - t_ig'| <=
     * 2e-6 (1 + L)) may choose other groups */
    if (compare) reference_out(c, &rp, &hp, 2e-6 * (1 + L), want, want_lse, skip);
    size_t n_skip = 0;
    for (size_t i = 0; i < in->nlse; i++) n_skip += skip[i];
    stats->cases++;
    stats->rows += in->nlse;
    if (compare) {
        double rtol = 1e-5 + 2e-7 * L;
        if (c->mode == SMYRF_MODE_HYBRID) rtol += 2e-7 * L * (double)maxgroup / 8;
        if (dt == SMYRF_DTYPE_F16) rtol += 0x1.0p-11;
        if (dt == SMYRF_DTYPE_BF16) rtol += 0x1.0p-8;
        const double lse_tol = 1e-5 + 2e-7 * L * (c->mode == SMYRF_MODE_HYBRID ? 1 + (double)maxgroup / 8 : 1);
        /* plus the rounding of sums that cancel (case 168085: uniform weights on values
         * of both signs, out 1e-3 of them) */
        double *terms = reference_on_abs_v(c, in, &rp, &hp);
        const double atol = sum_eps(c, maxgroup) * tc_max_abs_rows(terms, in->no_el, (size_t)dv, skip);
        free(terms);
        snprintf(name, sizeof name, "%s out", what);
        tc_assert_close(got, want, in->no_el, (size_t)dv, skip, rtol, atol, name);
        snprintf(name, sizeof name, "%s lse", what);
        if (c->want_lse) tc_assert_lse_close(lse[0], want_lse, in->nlse, skip, lse_tol, name);
        stats->compared++;
        stats->skipped_rows += n_skip > 0;
        stats->rows_compared += in->nlse - n_skip;
        /* a HYBRID row at a near-tie reaches every key's gradient: no backward then */
        const int backward = c->backward && (c->mode != SMYRF_MODE_HYBRID || n_skip == 0);
        stats->backward += backward;
        if (backward)
            check_backward(c, in, p1, p2, qb, kb, vb, out[0], lse[2], &hp, L, maxgroup, what);
    }
    for (int run = 0; run < 3; run++) free(out[run]), free(lse[run]);
    free(qb), free(kb), free(vb), free(got), free(want), free(want_lse), free(skip);
    smyrf_plan_destroy(p1);
    smyrf_plan_destroy(p2);
    tc_inputs_destroy(in);
}

/* Every case of one mode; then at least 90% of them compared (not skipped). */
static void sweep(smyrf_mode mode) {
    sw_stats stats;
    memset(&stats, 0, sizeof stats);
    unsigned long long first = 1, count = N_IDS;
    const char *ids = getenv("SMYRF_SWEEP_IDS");
    if (ids) assert_int_equal(sscanf(ids, "%llu:%llu", &first, &count), 2);
    assert_true(count >= N_IDS);  /* the share checks below need enough cases */
    for (uint64_t id = first; id < first + count; id++) {
        sw_case c;
        draw_case(id, &c);
        if (c.mode == mode) run_case(&c, &stats);
    }
    if (getenv("SMYRF_TEST_VERBOSE"))
        print_message("mode %d: %d cases, %d compared (%d with backward), %d skipped (labels), "
                      "%d with ambiguous or near-tie rows, %zu of %zu rows compared; HYBRID off the dense "
                      "limit %d, expanding %d\n",
                      (int)mode, stats.cases, stats.compared, stats.backward, stats.skipped_labels,
                      stats.skipped_rows, stats.rows_compared, stats.rows, stats.off_dense,
                      stats.expanding);
    assert_true(stats.cases >= (int)(count / 4));
    assert_true(stats.compared * 10 >= stats.cases * 9);
    assert_true(stats.rows_compared * 10 >= stats.rows * 8);
    assert_true(stats.backward * 5 >= stats.cases);
    if (mode == SMYRF_MODE_HYBRID) /* not only the dense limit, and some expansion */
        assert_true(stats.off_dense * 3 >= stats.cases && stats.expanding * 10 >= stats.cases);
}

static void smyrf_sweep(void **state) { (void)state, sweep(SMYRF_MODE_SMYRF); }
static void dense_sweep(void **state) { (void)state, sweep(SMYRF_MODE_DENSE); }
static void hybrid_sweep(void **state) { (void)state, sweep(SMYRF_MODE_HYBRID); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(smyrf_sweep),
        cmocka_unit_test(dense_sweep),
        cmocka_unit_test(hybrid_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
