// The five SMYRF stages on the CPU, each on one (batch b, query head h) problem.
// Names follow docs/algorithm.md: transform, hash, cluster, attention, combine.
#pragma once

#include "cpu/cpu.hpp"
#include "cpu/tile.hpp"

namespace smyrf::cpu {

// ---- transform (XBOX+) and hash, in one pass over rows i0..i1-1 of x[b, h], each row
// read once: the fp32 squared norms norms[i] = |x_i|^2 that the transform is built from,
// and out[i * rounds + r] = a_r . x_i over the first dim components of direction r of
// dirs[rounds][dim + 2]. max_norm gives the largest of norms[i0, i1) over the rows that
// mask keeps (a nonzero byte; all rows when mask == nullptr), 0 when none: M^2 is the
// queries' plus the valid keys'. hash_extend then completes the hash.
void transform_project(const View &x, int64_t b, int64_t h, int64_t i0, int64_t i1,
                       int64_t dim, const float *dirs, int64_t rounds, float *norms,
                       float *out);
float max_norm(const float *norms, const uint8_t *mask, int64_t i0, int64_t i1);

// ---- hash: adds the XBOX+ coordinate's share of round `round`, so that
// out[i * rounds + round] = a_round . x'_i for the extended rows (queries:
// [x, 0, sqrt(m2 - |x|^2)], keys: [x, sqrt(m2 - |x|^2), 0]) of rows i0..i1-1. Rows never
// listed later (padded keys) may hold anything. One round at a time, so that the task
// that sorts a round completes its hashes first.
void hash_extend(int64_t i0, int64_t i1, int64_t dim, const float *norms, float m2,
                 bool is_query, const float *dirs, int64_t rounds, int64_t round, float *out);

// ---- cluster: stable sort of `count` items by hash, NaN-safe (a total order on the
// float bits), ties by input order. Item i is items[i] (or i when items == nullptr); its
// key is hash[item * stride]. Writes the items in sorted order to `sorted`.
// scratch: sort_scratch_entries(count) 64-bit words.
void sort_by_hash(const float *hash, int64_t stride, const int32_t *items, int64_t count,
                  int32_t *sorted, uint64_t *scratch);
inline int64_t sort_scratch_entries(int64_t count) { return 2 * count; }

// The balanced cut: cluster c of C holds sorted positions [cluster_begin(c), ..(c + 1)).
// Sizes differ by at most one; any n and C work.
inline int64_t cluster_begin(int64_t n, int64_t clusters, int64_t c) { return c * n / clusters; }

// ---- attention + combine: softmax attention of the queries at positions qi[0..nq) of
// problem (b, h) against the keys at positions kj[0..nk) of kv head hk, merged into the
// queries' running state (see combine below) by the fused kernel of cpu/tile.hpp.
// At most kQueryTile queries and kKeyTile keys per call.
constexpr int64_t kQueryTile = kTileQueries, kKeyTile = kTileKeys;
struct AttentionScratch {
    const float **q, **k, **v;  // row pointers of one tile
    float **out;
    float *qt, *st;             // the kernel's scratch
    float *mx, *sum, *keep, *add, *inv;
};
AttentionScratch attention_scratch(Arena &arena, const Desc &d);
// The kernel's description of one such tile (its row pointers filled in ws). With
// per_head > 0 the queries are those of heads h, h + 1, ... of one kv head's group,
// per_head rows each (DENSE decoder steps, dense.cpp), and their state is indexed by row:
// state[r] (Tile::state_by_row).
Tile tile_of(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi, int64_t nq,
             const int32_t *kj, int64_t nk, const AttentionScratch &ws, RowState *state,
             bool normalise = false, int64_t per_head = 0);
// With ahead, the tile also starts loading its own v and out rows during its products,
// and the next ahead_rows rows of ahead (cpu/tile.hpp, Ahead) during its sums.
void cluster_attention(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                       int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                       RowState *state, bool normalise = false, Ahead *ahead = nullptr,
                       int64_t ahead_rows = 0);

// The rows a cluster's products read (its q and k rows), to load ahead. In SMYRF mode
// they sit at random positions: asked for during the sums of the cluster before, their
// cache misses overlap its arithmetic; the cluster's v and out rows, which only its sums
// read, load during its own products (cluster_attention). Half a cluster's rows at a
// time, each half one phase before its use, rather than all four lists a whole cluster
// ahead: on Zen 3, where a prefetch meant for L2 also fills L1, 3-6% less time per call
// (docs/performance.md).
Ahead ahead_of(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
               int64_t nq, const int32_t *kj, int64_t nk);

// Any number of queries against any number of keys (a SMYRF cluster, or a DENSE query
// tile against all its keys): cut into tiles for cluster_attention, each merged into the
// running state as it ends, so scratch stays bounded whatever the cluster size. With
// normalise (the queries' last block: SMYRF's last round), the last key tile also
// normalises the rows it merges and marks them done (cpu/tile.hpp, RowState). With
// ahead, the tiles load all of its rows not yet loaded, an even share each.
void attend_tiled(const Desc &d, const Args &a, int64_t b, int64_t h, const int32_t *qi,
                  int64_t nq, const int32_t *kj, int64_t nk, const AttentionScratch &ws,
                  RowState *state, bool normalise = false, Ahead *ahead = nullptr);

// ---- combine: the running state of each query is a RowState (cpu/tile.hpp) plus the
// accumulator kept in its out row, all relative to e^{m}; states are indexed by query
// position. Each call covers the queries [i0, i1) of problem (b, h). combine_init starts
// the states empty; the out rows' old content is never read.
void combine_init(int64_t i0, int64_t i1, RowState *state);
// Normalises the out rows not marked done, writes lse, and gives a query that met no key
// the fallback of docs/algorithm.md (its latest allowed valid key alone, else zeros and
// lse = -inf).
void combine_finish(const Desc &d, const Args &a, int64_t b, int64_t h, int64_t i0, int64_t i1,
                    const int32_t *valid, int64_t n_valid, const RowState *state);

}  // namespace smyrf::cpu
