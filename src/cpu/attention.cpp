// Stage 4: dense softmax attention inside one cluster (or one tile, in DENSE mode):
// gather the rows, S = scale Q K^T and O = P V as GEMMs, the softmax in between.
#include "cpu/blas.hpp"
#include "cpu/fast_exp.hpp"
#include "cpu/reduce.hpp"
#include "cpu/rows.hpp"
#include "cpu/stages.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace smyrf::cpu {
namespace {

void causal_mask(float *s, const int32_t *qi, int64_t nq, const int32_t *kj, int64_t nk,
                 int64_t offset) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < nq; t++) {
        const int64_t limit = qi[t] + offset;
        for (int64_t u = 0; u < nk; u++)
            if (kj[u] > limit) s[t * nk + u] = neg_inf;
    }
}

// Rows of s become e^{s - max}; the exponentials dominate the non-GEMM time (hence the
// vector clones).
SMYRF_VECTOR_CLONES
void softmax_rows(float *s, int64_t nq, int64_t nk, float *mx, float *sum) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < nq; t++, s += nk) {
        const float m = max_of(s, nk, neg_inf);
        if (m == neg_inf) {  // no allowed key: this block contributes nothing
            std::memset(s, 0, (size_t)nk * sizeof(float));
            mx[t] = neg_inf;
            sum[t] = 0.0f;
            continue;
        }
        for (int64_t u = 0; u < nk; u++) s[u] = fast_exp(s[u] - m);
        mx[t] = m;
        sum[t] = sum_of(s, nk);
    }
}

}  // namespace

AttentionScratch attention_scratch(Arena &arena, const Desc &d) {
    const size_t tq = kQueryTile, tk = kKeyTile;
    AttentionScratch s;
    s.q = arena.take<float>(tq * d.qk_dim);
    s.k = arena.take<float>(tk * d.qk_dim);
    s.v = arena.take<float>(tk * d.v_dim);
    s.s = arena.take<float>(tq * tk);
    s.o = arena.take<float>(tq * d.v_dim);
    s.mx = arena.take<float>(tq);
    s.sum = arena.take<float>(tq);
    return s;
}

void cluster_attention(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                       int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws) {
    float *o = ws.o, *mx = ws.mx, *sum = ws.sum;
    const int64_t hk = d.kv_head_of(h), dim = d.qk_dim, dv = d.v_dim;
    const Rows q = rows_of(a.q, b, h, qi, nq, dim, ws.q);
    const Rows k = rows_of(a.k, b, hk, kj, nk, dim, ws.k);
    const Rows v = rows_of(a.v, b, hk, kj, nk, dv, ws.v);
    gemm_nt(nq, nk, dim, (float)d.scale, q.p, q.ld, k.p, k.ld, 0.0f, ws.s, nk);

    if (d.causal) causal_mask(ws.s, qi, nq, kj, nk, d.causal_offset());
    softmax_rows(ws.s, nq, nk, mx, sum);
    gemm_nn(nq, dv, nk, 1.0f, ws.s, nk, v.p, v.ld, 0.0f, o, dv);
}

void attend_tiled(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                  int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                  float *m, float *l) {
    for (int64_t q0 = 0; q0 < nq; q0 += kQueryTile) {
        const int64_t tq = std::min(kQueryTile, nq - q0);
        for (int64_t k0 = 0; k0 < nk; k0 += kKeyTile) {
            cluster_attention(d, a, b, h, qi + q0, tq, kj + k0, std::min(kKeyTile, nk - k0), ws);
            combine_merge(d, a, b, h, qi + q0, tq, ws.o, ws.mx, ws.sum, m, l);
        }
    }
}

}  // namespace smyrf::cpu
