// Stage 5: online merge of blocks (hash rounds, or key tiles in DENSE mode) by their
// log-sum-exp, with the running accumulator kept in the output rows themselves.
#include "cpu/reduce.hpp"
#include "cpu/stages.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace smyrf::cpu {

void combine_init(const Desc &d, const Args &a, int64_t b, int64_t h, int64_t i0, int64_t i1,
                  float *m, float *l) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (int64_t i = i0; i < i1; i++) {
        std::memset(a.out.row(b, h, i), 0, (size_t)d.v_dim * sizeof(float));
        m[i] = neg_inf;
        l[i] = 0.0f;
    }
}

void combine_prefetch(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                      int64_t nq) {
    for (int64_t t = 0; t < nq; t++) {
        const char *row = (const char *)a.out.row(b, h, qi[t]);
        for (int64_t at = 0; at < d.v_dim * (int64_t)sizeof(float); at += 64)
            __builtin_prefetch(row + at, 1);
    }
}

void combine_merge(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                   int64_t nq, const float *o, const float *mx, const float *sum, float *m,
                   float *l) {
    const int64_t dv = d.v_dim;
    for (int64_t t = 0; t < nq; t++) {
        if (sum[t] == 0.0f) continue;  // the block had no allowed key for this query
        const int64_t i = qi[t];
        float *row = a.out.row(b, h, i);
        const float *src = o + t * dv;
        if (l[i] == 0.0f) {  // the first block this query meets: take it as it is
            std::memcpy(row, src, (size_t)dv * sizeof(float));
            m[i] = mx[t];
            l[i] = sum[t];
            continue;
        }
        const float top = mx[t] > m[i] ? mx[t] : m[i];
        const float keep = std::exp(m[i] - top), add = std::exp(mx[t] - top);
        for (int64_t c = 0; c < dv; c++) row[c] = row[c] * keep + src[c] * add;
        l[i] = l[i] * keep + sum[t] * add;
        m[i] = top;
    }
}

void combine_finish(const Desc &d, const Args &a, int64_t b, int64_t h, int64_t i0, int64_t i1,
                    const int32_t *valid, int64_t n_valid, const float *m, const float *l) {
    const int64_t dv = d.v_dim, hk = d.kv_head_of(h);
    for (int64_t i = i0; i < i1; i++) {
        float *row = a.out.row(b, h, i);
        float lse;
        if (l[i] != 0.0f) {
            const float inv = 1.0f / l[i];
            for (int64_t c = 0; c < dv; c++) row[c] *= inv;
            lse = m[i] + std::log(l[i]);
        } else {
            // Every block missed this query: attend its latest allowed valid key alone.
            const int64_t limit = d.causal ? i + d.causal_offset() : d.k_len - 1;
            const int64_t j = latest_valid_key(valid, n_valid, limit);
            if (j >= 0) {
                std::memcpy(row, a.v.row(b, hk, j), (size_t)dv * sizeof(float));
                lse = (float)d.scale * dot_of(a.q.row(b, h, i), a.k.row(b, hk, j), d.qk_dim);
            } else {
                lse = -std::numeric_limits<float>::infinity();  // row stays zeros
            }
        }
        if (a.lse) a.lse[(b * d.heads + h) * d.q_len + i] = lse;
    }
}

}  // namespace smyrf::cpu
