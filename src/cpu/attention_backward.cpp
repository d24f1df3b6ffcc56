// The backward pass of attention over one block of queries and keys (see the header).
// For each key tile: gather K and V once, then for each query tile recompute the logits,
// P = e^{S - LSE} with the forward's LSE, dP = dO V^T, dS = P (dP - D), and
//   dV_tile += P^T dO,  dK_tile += scale dS^T Q  (GEMMs, summed over the query tiles),
//   dQ rows += scale dS K  (one GEMM per tile pair, added in place).
// Everything runs in a fixed order on the calling thread.
#include "cpu/attention_backward.hpp"

#include "cpu/blas.hpp"
#include "cpu/fast_exp.hpp"
#include "cpu/reduce.hpp"
#include "cpu/rows.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace smyrf::cpu {
namespace {

// s (logits) becomes P = e^{s - lse} row by row, 0 where the key is not allowed or the
// row has no allowed key at all (lse = -inf). Returns whether any entry is allowed;
// sets met[qi[t]] for each row with an allowed key.
SMYRF_VECTOR_CLONES
bool probabilities(float *s, int64_t tq, int64_t tk, const int32_t *qi, const int32_t *kj,
                   const float *lse, bool causal, int64_t offset, uint8_t *met) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    bool any = false;
    for (int64_t t = 0; t < tq; t++, s += tk) {
        const float L = lse[t];
        // Allowed keys of this row: those at positions <= limit (all without causal).
        int64_t n_allowed = tk;
        if (causal) {
            const int64_t limit = qi[t] + offset;
            n_allowed = 0;
            for (int64_t u = 0; u < tk; u++) n_allowed += kj[u] <= limit;
        }
        if (L == neg_inf || n_allowed == 0) {
            std::memset(s, 0, (size_t)tk * sizeof(float));
            continue;
        }
        any = true;
        if (met) met[qi[t]] = 1;
        if (n_allowed == tk) {
            for (int64_t u = 0; u < tk; u++) s[u] = fast_exp(s[u] - L);
        } else {
            const int64_t limit = qi[t] + offset;
            for (int64_t u = 0; u < tk; u++) {
                const float p = fast_exp(s[u] - L);
                s[u] = kj[u] <= limit ? p : 0.0f;
            }
        }
    }
    return any;
}

// dp becomes dS = P (dP - D), row by row.
SMYRF_VECTOR_CLONES
void score_gradients(const float *p, float *dp, int64_t tq, int64_t tk, const float *delta) {
    for (int64_t t = 0; t < tq; t++, p += tk, dp += tk) {
        const float D = delta[t];
        for (int64_t u = 0; u < tk; u++) dp[u] = p[u] * (dp[u] - D);
    }
}

void add_rows(const float *src, int64_t n, int64_t dim, const int32_t *rows, const GradRows &dst) {
    for (int64_t t = 0; t < n; t++) {
        float *row = dst.row(rows[t]);
        const float *in = src + t * dim;
        for (int64_t c = 0; c < dim; c++) row[c] += in[c];
    }
}

}  // namespace

GradScratch grad_scratch(Arena &arena, const Desc &d) {
    const size_t tq = kGradQueryTile, tk = kGradKeyTile, dim = d.qk_dim, dv = d.v_dim;
    GradScratch s;
    s.q = arena.take<float>(tq * dim);
    s.dout = arena.take<float>(tq * dv);
    s.k = arena.take<float>(tk * dim);
    s.v = arena.take<float>(tk * dv);
    s.s = arena.take<float>(tq * tk);
    s.dp = arena.take<float>(tq * tk);
    s.dq = arena.take<float>(tq * dim);
    s.dk = arena.take<float>(tk * dim);
    s.dv = arena.take<float>(tk * dv);
    s.lse = arena.take<float>(tq);
    s.delta = arena.take<float>(tq);
    return s;
}

void attention_backward_delta(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                              float *delta) {
    for (int64_t i = 0; i < d.q_len; i++)
        delta[i] = dot_of(g.dout.row(b, h, i), g.out.row(b, h, i), d.v_dim);
}

void attention_backward(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                        const int32_t *qi, int64_t nq, const int32_t *kj, int64_t nk,
                        const float *delta, bool want_dq, const GradRows *dk,
                        const GradRows *dv, uint8_t *met, const GradScratch &ws) {
    const int64_t hk = d.kv_head_of(h), dim = d.qk_dim, dvd = d.v_dim;
    const float scale = (float)d.scale;
    const float *lse = g.lse + (b * d.heads + h) * d.q_len;
    const GradRows dq_rows{g.dq.row(b, h, 0), g.dq.s.token};
    for (int64_t k0 = 0; k0 < nk; k0 += kGradKeyTile) {
        const int64_t tk = std::min(kGradKeyTile, nk - k0);
        const int32_t *kt = kj + k0;
        const Rows K = rows_of(g.k, b, hk, kt, tk, dim, ws.k);
        const Rows V = rows_of(g.v, b, hk, kt, tk, dvd, ws.v);
        bool summed = false;  // whether ws.dk and ws.dv hold this key tile's sums yet
        for (int64_t q0 = 0; q0 < nq; q0 += kGradQueryTile) {
            const int64_t tq = std::min(kGradQueryTile, nq - q0);
            const int32_t *qt = qi + q0;
            for (int64_t t = 0; t < tq; t++) {
                ws.lse[t] = lse[qt[t]];
                ws.delta[t] = delta[qt[t]];
            }
            const Rows Q = rows_of(g.q, b, h, qt, tq, dim, ws.q);
            gemm_nt(tq, tk, dim, scale, Q.p, Q.ld, K.p, K.ld, 0.0f, ws.s, tk);
            if (!probabilities(ws.s, tq, tk, qt, kt, ws.lse, d.causal, d.causal_offset(), met))
                continue;  // no query of the tile may see any key of the tile
            const Rows dO = rows_of(g.dout, b, h, qt, tq, dvd, ws.dout);
            gemm_nt(tq, tk, dvd, 1.0f, dO.p, dO.ld, V.p, V.ld, 0.0f, ws.dp, tk);
            const float beta = summed ? 1.0f : 0.0f;
            if (dv) gemm_tn(tk, dvd, tq, 1.0f, ws.s, tk, dO.p, dO.ld, beta, ws.dv, dvd);
            score_gradients(ws.s, ws.dp, tq, tk, ws.delta);
            if (dk) gemm_tn(tk, dim, tq, scale, ws.dp, tk, Q.p, Q.ld, beta, ws.dk, dim);
            summed = true;
            if (want_dq) {
                gemm_nn(tq, dim, tk, scale, ws.dp, tk, K.p, K.ld, 0.0f, ws.dq, dim);
                add_rows(ws.dq, tq, dim, qt, dq_rows);
            }
        }
        if (summed && dk) add_rows(ws.dk, tk, dim, kt, *dk);
        if (summed && dv) add_rows(ws.dv, tk, dvd, kt, *dv);
    }
}

}  // namespace smyrf::cpu
