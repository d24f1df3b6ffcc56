// The backward pass of softmax attention over one block of queries and keys, shared by
// SMYRF (a cluster) and DENSE (a query tile, or a key tile) modes. With the forward's
// log-sum-exp LSE_i and D_i = dout_i . out_i (docs/algorithm.md, "Backward"):
//   P_ij = e^{s_ij - LSE_i},  dS_ij = P_ij (dout_i . v_j - D_i)
//   dV_j += P_ij dout_i,  dK_j += scale dS_ij q_i,  dQ_i += scale dS_ij k_j
// Tiled (at most kGradQueryTile x kGradKeyTile logits at once), GEMMs through blas.hpp.
#pragma once

#include "cpu/cpu.hpp"

namespace smyrf::cpu {

constexpr int64_t kGradQueryTile = 64, kGradKeyTile = 128;

struct GradScratch {
    float *q, *dout, *k, *v;  // gathered rows of one tile
    float *s, *dp;            // [query tile][key tile]: P and dP, then dS
    float *dq;                // [query tile][d]
    float *dk, *dv;           // [key tile][d], [key tile][dv]: one key tile's sums
    float *lse, *delta;       // [query tile]
};
GradScratch grad_scratch(Arena &arena, const Desc &d);

// Rows j of a gradient accumulator: base + j * ld (a View's rows for one (b, head), or
// a contiguous scratch).
struct GradRows {
    float *base;
    int64_t ld;
    float *row(int64_t j) const { return base + j * ld; }
};

// Gradients of the queries at positions qi[0..nq) of problem (b, h) against the keys at
// positions kj[0..nk) of its kv head (causal mask applied; keys assumed valid). Adds
// into g.dq's rows when want_dq, into dk/dv's rows (positions kj) when dk is non-null.
// delta: D of the problem's queries, by position. met (or null): set to 1 for each query
// that has an allowed key in the block. The result does not depend on the thread.
void attention_backward(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                        const int32_t *qi, int64_t nq, const int32_t *kj, int64_t nk,
                        const float *delta, bool want_dq, const GradRows *dk,
                        const GradRows *dv, uint8_t *met, const GradScratch &ws);

// D_i = dout_i . out_i for the queries [0, Nq) of problem (b, h).
void attention_backward_delta(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                              float *delta);

}  // namespace smyrf::cpu
