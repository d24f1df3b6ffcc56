// The in-cluster attention of one tile (stages 4 and 5), fused: S^T = scale K Q^T, the
// softmax down each query's column, O = P V merged into the out rows. Rows are read in
// place through row pointers, so rows in hash order need no gather; only the tile's
// queries are transposed (with at most 4 queries, a decoder's step, the keys are, a
// vector at a time in registers: same bits). Compiled once per instruction set
// (cpu/kernels/), picked once at run time.
//
// With cpu/tile_backward.hpp and cpu/hybrid_kernel.hpp, this header is the whole
// interface of those files: none includes anything that defines code, so no inline
// function compiled for AVX-512 can leak into the portable library.
#pragma once

#include <cstdint>

namespace smyrf::cpu {

// Queries and keys per tile; kTileQueries is a multiple of every vector width.
constexpr int64_t kTileQueries = 64, kTileKeys = 256;

// Rows a tile reads later (SMYRF: the next cluster's q and k rows, or the tile's own v
// and out rows, which sit at random positions): lists of rows, row x of a list at
// base + at[x] * step, dim floats long.
// The kernel starts loading them a few rows after each block of its arithmetic, so that
// their cache misses overlap the arithmetic instead of stalling it in one burst. Of
// `rows` rows, list after list, the first `done` have been asked for. (Plain data: this
// header defines no code, see below.)
struct Ahead {
    struct List {
        const int32_t *at;
        int64_t n;
        const float *base;
        int64_t step, dim;
    };
    static constexpr int kLists = 7;
    List list[kLists];
    int lists = 0;
    int64_t rows = 0, done = 0;
    int cur = 0;          // the list of the next row to ask for
    int64_t within = 0;   // and its index in that list
};
// Appends a list of n rows to a (at most Ahead::kLists lists).
void ahead_add(Ahead &a, const int32_t *at, int64_t n, const float *base, int64_t step,
               int64_t dim);
// Starts loading the next `rows` rows of `a` (fewer where it ends) into L2.
void load_ahead(Ahead &a, int64_t rows);
// An even share of the rows of `a` (nullptr: none) still to load, for one of `tiles` tiles.
int64_t ahead_share(const Ahead *a, int64_t tiles);

// A query's running softmax state (stage 5): the largest logit so far and the sum of the
// terms relative to it. m and l sit side by side, and the last block's mark is l's sign:
// SMYRF reads and writes the states of a cluster's queries at random positions, so one
// cache line per query instead of three (m, l and a done flag: 2-3% of a call at
// N = 65536). l < 0 marks a row the last block already normalised (Tile::normalise; its
// sum is -l); l == 0 a query no block has reached.
struct RowState {
    float m, l;
};

struct Tile {
    const float *const *q;  // [nq] query rows of qk_dim floats
    const float *const *k;  // [nk] key rows of qk_dim floats
    const float *const *v;  // [nk] value rows of v_dim floats
    float *const *out;      // [nq] the queries' out rows: the running accumulators
    const int32_t *qi, *kj; // positions of the queries and keys
    // m and l indexed by row r, not by position qi[r]: a tile of several heads' queries
    // (cpu/stages.hpp, tile_of) repeats positions.
    bool state_by_row = false;
    int64_t nq, nk, qk_dim, v_dim;
    float scale;
    bool causal;
    int64_t causal_offset;  // key j is allowed for query i iff j <= i + causal_offset
    RowState *state;        // running state (cpu/stages.hpp), indexed as state_by_row says
    float *qt;              // scratch [qk_dim][kTileQueries]: the queries, transposed
    float *st;              // scratch [nk][kTileQueries]: logits, then weights (rows of
                            // one vector's lanes when nq <= 4)
    float *mx, *sum, *keep, *add;  // scratch [kTileQueries]: the tile's row maximum and
                                   // sum, and the merge factors of old and new
    // When this tile is its queries' last block (SMYRF's last round), the kernel also
    // normalises each merged row by 1 / l (combine_finish's division, the same bits; inv
    // is scratch [kTileQueries]) and marks its state done (l < 0); a query this tile
    // leaves alone stays for combine_finish.
    bool normalise = false;
    float *inv;
    // Rows to start loading during this tile (nullptr: none): all rows of `own` during
    // the products (this tile's rows that only the sums read), then the next
    // `ahead_rows` rows of `ahead` during the sums.
    Ahead *own = nullptr;
    Ahead *ahead = nullptr;
    int64_t ahead_rows = 0;
};

// Attention of the tile (stage 4) merged into the running state (stage 5): for each
// query with an allowed key, out = out e^{m - m'} + o e^{mx - m'} with m' = max(m, mx),
// l likewise, where o = sum_j e^{s_j - mx} v_j is the tile's unnormalised row; a query's
// first block is taken as it is; with normalise, the merged row is normalised.
// The kernel for this CPU: AVX-512, else AVX2 with FMA, else portable vectors. The
// AVX-512 and AVX2 kernels round every operation alike (FMA along the same order), so
// they give bitwise identical results; the portable one rounds products separately.
// SMYRF_CPU_KERNEL=avx2|portable in the environment picks a lower one (tests, triage).
using TileKernel = void (*)(const Tile &);
TileKernel tile_kernel();
const char *tile_kernel_name();

namespace avx512 { void tile_attention(const Tile &t); }
namespace avx2 { void tile_attention(const Tile &t); }
namespace portable { void tile_attention(const Tile &t); }

}  // namespace smyrf::cpu
