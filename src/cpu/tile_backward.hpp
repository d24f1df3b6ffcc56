// The backward pass of attention over one tile, fused (cpu/attention_backward.hpp uses
// it): with the forward's LSE and D_i = dout_i . out_i,
//   S^T = scale K Q^T,  dP^T = V dO^T,  P = e^{S - LSE},  dS' = scale P (dP - D),
//   dV_j += sum_i P_ij dO_i,  dK_j += sum_i dS'_ij Q_i,  dQ_i += sum_j dS'_ij K_j.
// Rows are read and updated in place through row pointers (no gathers); only the tile's
// queries and output gradients are transposed. Compiled once per instruction set
// (cpu/kernels/, the same files as the forward's tile kernel), picked with it.
//
// Like cpu/tile.hpp, this header includes nothing that defines code.
#pragma once

#include "cpu/tile.hpp"

namespace smyrf::cpu {

// Keys per backward tile (queries: kTileQueries).
constexpr int64_t kGradTileKeys = 256;

struct GradTile {
    const float *const *q;     // [nq] query rows of qk_dim floats
    const float *const *dout;  // [nq] output gradient rows of v_dim floats
    const float *const *k;     // [nk] key rows of qk_dim floats
    const float *const *v;     // [nk] value rows of v_dim floats
    float *const *dq;          // [nq] rows the queries' gradients add into, or null
    float *const *dk;          // [nk] rows the keys' gradients add into, or null
    float *const *dv;          // [nk] rows the values' gradients add into, or null
    const int32_t *qi, *kj;    // positions of the queries and keys (distinct in a tile)
    const float *lse;          // the forward's log-sum-exp, by query position
    const float *delta;        // D, by query position
    uint8_t *met;              // or null: set to 1 at each query with an allowed key
    int64_t nq, nk, qk_dim, v_dim;
    float scale;
    bool causal;
    int64_t causal_offset;     // key j is allowed for query i iff j <= i + causal_offset
    // Called (when set) once the tile's dS is known, before any dq row is read (not at
    // all when no query of the tile has an allowed key): lets a caller order the
    // additions of several tiles into the same dq rows.
    void (*before_dq)(void *ctx);
    void *ctx;
    float *qt;   // scratch [qk_dim][kTileQueries]: the queries, transposed
    float *ot;   // scratch [v_dim][kTileQueries]: the output gradients, transposed
    float *pt;   // scratch [kGradTileKeys][kTileQueries]: logits, then P^T
    float *dst;  // scratch [kGradTileKeys][kTileQueries]: dP^T, then dS'^T
    float *lse_t, *delta_t;  // scratch [kTileQueries]: the queries' LSE and D
    // Rows to start loading during this tile (nullptr: none; cpu/tile.hpp): all rows of
    // `own` during the products (this tile's rows that only the sums update), then the
    // next `ahead_rows` rows of `ahead` during the sums.
    Ahead *own = nullptr;
    Ahead *ahead = nullptr;
    int64_t ahead_rows = 0;
};

// Adds the tile's gradients into the dq, dk and dv rows (those set): every element is
// one chain of FMAs continued from the row's value, in a fixed order (over the tile's
// queries for dk and dv, over its keys for dq), so the AVX-512 and AVX2 kernels agree
// bit for bit. A query whose LSE is -inf, or with no allowed key in the tile, adds
// nothing (its P row is 0). nq <= kTileQueries, nk <= kGradTileKeys.
using GradTileKernel = void (*)(const GradTile &);
GradTileKernel grad_tile_kernel();  // the same choice as tile_kernel()

namespace avx512 { void tile_backward(const GradTile &t); }
namespace avx2 { void tile_backward(const GradTile &t); }
namespace portable { void tile_backward(const GradTile &t); }

}  // namespace smyrf::cpu
