// Stage 5: online merge of blocks (hash rounds, or key tiles in DENSE mode) by their
// log-sum-exp, with the running accumulator kept in the output rows themselves. The
// merge itself is fused into the tile kernel (cpu/tile.hpp); here the state starts
// empty and ends normalised.
#include "cpu/reduce.hpp"
#include "cpu/stages.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace smyrf::cpu {

void combine_init(int64_t i0, int64_t i1, RowState *state) {
    // The out rows are not cleared: a query's first block stores its row (keep < 0 in the
    // kernel), and combine_finish writes the rows of queries that met no key.
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (int64_t i = i0; i < i1; i++) state[i] = {neg_inf, 0.0f};
}

void combine_finish(const Desc &d, const Args &a, int64_t b, int64_t h, int64_t i0, int64_t i1,
                    const int32_t *valid, int64_t n_valid, const RowState *state) {
    const int64_t dv = d.v_dim, hk = d.kv_head_of(h);
    for (int64_t i = i0; i < i1; i++) {
        const bool normalised = state[i].l < 0.0f;  // by the last round's kernel
        if (normalised && !a.lse) continue;
        float *row = a.out.row(b, h, i);
        const float l = normalised ? -state[i].l : state[i].l;
        float lse;
        if (l != 0.0f) {
            if (!normalised) {
                const float inv = 1.0f / l;
                for (int64_t c = 0; c < dv; c++) row[c] *= inv;
            }
            lse = state[i].m + std::log(l);
        } else {
            // Every block missed this query: attend its latest allowed valid key alone.
            const int64_t limit = d.causal ? i + d.causal_offset() : d.k_len - 1;
            const int64_t j = latest_valid_key(valid, n_valid, limit);
            if (j >= 0) {
                std::memcpy(row, a.v.row(b, hk, j), (size_t)dv * sizeof(float));
                lse = (float)d.scale * dot_of(a.q.row(b, h, i), a.k.row(b, hk, j), d.qk_dim);
            } else {
                std::memset(row, 0, (size_t)dv * sizeof(float));
                lse = -std::numeric_limits<float>::infinity();
            }
        }
        if (a.lse) a.lse[(b * d.heads + h) * d.q_len + i] = lse;
    }
}

}  // namespace smyrf::cpu
