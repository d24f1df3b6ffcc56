// The backward pass of softmax attention over one block of queries and keys, shared by
// SMYRF (a cluster) and DENSE (a key tile against its queries) modes. With the forward's
// log-sum-exp LSE_i and D_i = dout_i . out_i (docs/algorithm.md, "Backward"):
//   P_ij = e^{s_ij - LSE_i},  dS_ij = P_ij (dout_i . v_j - D_i)
//   dV_j += P_ij dout_i,  dK_j += scale dS_ij q_i,  dQ_i += scale dS_ij k_j
// Tiled (at most kGradQueryTile x kGradKeyTile logits at once), each tile through the
// fused backward tile kernel (cpu/tile_backward.hpp), which reads every row in place.
#pragma once

#include "cpu/cpu.hpp"
#include "cpu/tile_backward.hpp"

namespace smyrf::cpu {

constexpr int64_t kGradQueryTile = kTileQueries, kGradKeyTile = kGradTileKeys;

struct GradScratch {
    const float **q, **dout;  // [query tile]: the tile's rows
    const float **k, **v;     // [key tile]
    float **dq;               // [query tile]: the rows its gradients add into
    float **dk, **dv;         // [key tile]
    float *qt, *ot, *pt, *dst, *lse_t, *delta_t;  // the kernel's (GradTile)
};
GradScratch grad_scratch(Arena &arena, const Desc &d);

// Rows j of a gradient accumulator: base + j * ld (a View's rows for one (b, head), or
// a contiguous scratch).
struct GradRows {
    float *base;
    int64_t ld;
    float *row(int64_t j) const { return base + j * ld; }
};

// Orders the additions of several calls into the same dq rows (DENSE: the key tiles of
// one problem, on any threads, in key tile order). For each query tile, the one whose
// first query is qi[q0]: wait(ctx, q0) comes before any of its dq rows is read, done(ctx,
// q0) after its last addition; done comes for every query tile, wait only for a tile
// that adds to dq. With an order, a call's keys are one key tile (nk <= kGradKeyTile),
// else each query tile would come once per key tile.
struct DqOrder {
    void (*wait)(void *ctx, int64_t q0);
    void (*done)(void *ctx, int64_t q0);
    void *ctx;
};

// Gradients of the queries at positions qi[0..nq) of problem (b, h) against the keys at
// positions kj[0..nk) of its kv head (causal mask applied; keys assumed valid). Adds
// into g.dq's rows when want_dq, into dk/dv's rows (positions kj) when dk (dv) is
// non-null. delta: D of the problem's queries, by position. met (or null): set to 1 for
// each query that has an allowed key in the block. order (or null): see DqOrder. ahead
// (or null): rows the block's tiles load while they compute, an even share each. Every
// element's sum runs in a fixed order on the calling thread: the result does not depend
// on the thread.
void attention_backward(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                        const int32_t *qi, int64_t nq, const int32_t *kj, int64_t nk,
                        const float *delta, bool want_dq, const GradRows *dk,
                        const GradRows *dv, uint8_t *met, const GradScratch &ws,
                        const DqOrder *order = nullptr, Ahead *ahead = nullptr);

// The rows attention_backward's block (the same arguments) reads first, to load ahead
// (cpu/tile.hpp): its q and dout rows, its k and v rows. Its dq, dk and dv rows load
// during its own products, as in the forward (cpu/stages.hpp, ahead_of).
Ahead backward_ahead_of(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                        const int32_t *qi, int64_t nq, const int32_t *kj, int64_t nk);

// D_i = dout_i . out_i for the queries [i0, i1) of problem (b, h), into delta[i].
void attention_backward_delta(const Desc &d, const GradArgs &g, int64_t b, int64_t h,
                              int64_t i0, int64_t i1, float *delta);

}  // namespace smyrf::cpu
