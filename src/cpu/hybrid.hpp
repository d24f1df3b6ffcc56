// HYBRID mode on the CPU (ALGORITHM.md, "HYBRID"): the stages and the state they share.
// A "pair" is one (batch, kv head): its groups are built once and read by every query
// head of its GQA group. Positions of valid keys are addressed by their index u in the
// pair's ascending list of valid keys.
#pragma once

#include "cpu/cpu.hpp"
#include "cpu/hybrid_kernel.hpp"
#include "cpu/attention_backward.hpp"
#include "cpu/stages.hpp"

namespace smyrf::cpu::hybrid {

constexpr int64_t kKeyTile = 256;     // keys per k-means assignment task
constexpr int64_t kSumChunks = 8;     // fixed key chunks of the sums by label

// The groups and exact keys of one pair.
struct Pair {
    int64_t b, hk;
    const float *log_n;  // log(n) for n in 0..Nk
    int32_t *valid;    // [Nk] ascending valid key positions
    int64_t n_valid;
    bool dense;        // dense limit: every allowed valid key is exact, no groups
    int64_t window;    // keys per window (n_valid in the dense limit)
    int64_t expand;    // expansion keys per query: SMYRF_PARAM_EXPAND when the pair
                       // expands (non-causal, groups of at most E keys on average), else 0
    int64_t groups;    // summary columns: k-means groups, or causal blocks; 0 when dense
    int64_t block;     // causal: positions per block
    int32_t *label;    // [Nk] non-causal: group of valid key u
    int32_t *count;    // [G] members per group (causal: per block, the first sink left out)
    float *ksum, *vsum;  // [G][d], [G][dv] member sums
    // non-causal k-means state
    const float *keys;  // the valid keys, row u at keys + u * ldk: in place without
    int64_t ldk;        // padding, else gathered (into `gathered`) by the first assignment
    float *gathered;    // [Nk][d]
    float *centres;    // [G][d]
    float *cnorm;      // [G] |c_g|^2
    double *partial;   // [kSumChunks][G][d + dv] sums by label of each key chunk
    int32_t *partial_n;  // [kSumChunks][G]
    // causal running sums: members of the block of valid key u with positions before it
    float *pk, *pv;    // [Nk][d], [Nk][dv]
    int32_t *pn;       // [Nk]
    // expansion (SMYRF_PARAM_EXPAND > 0): the valid keys u of group g are
    // members[member_start[g] .. member_start[g + 1]), in ascending order
    int32_t *member_start;  // [G + 1]
    int32_t *members;       // [Nk]
};

// Per-thread scratch of every stage.
struct Scratch {
    float *dist, *best;   // k-means: [G][kAttendQueries], [kAttendQueries] (also uses
                          // krow, crow and qt: CentreProducts)
    const float **crow;   // [G] the centres' rows
    double *acc;          // causal block sums: [d + dv]
    // attention, over the rows of a tile (max_rows: groups, sinks, band) and its queries
    const float **krow, **vrow;  // [rows] the rows, where they lie
    int32_t *label;       // [rows] group of an exact key's row (non-causal groups)
    int32_t *qa, *qb;     // [rows] the queries [qa, qb) for which the row is exact
    const float **qrow;   // [kAttendQueries] the queries' rows
    float **out;          // [kAttendQueries] their out rows
    int32_t *lo, *hi;     // [kAttendQueries] each query's band rows
    float *qt, *st;       // [d][kAttendQueries], [rows][kAttendQueries] (BandTile)
    int32_t *hits;        // [G][kAttendQueries] exact keys per group, then members left
    float *hit_logits;    // [G][kAttendQueries] their summed logits
    int32_t *first;       // [kAttendQueries] causal: the block of the window's first key
    float *xt, *mx, *l;   // [kAttendQueries] causal partial-block logit; max; sum
    float *zero;          // [kAttendQueries] zeros
    // expansion only (hybrid_expand.cpp)
    float *chosen;        // [G][kAttendQueries] 1: group g expanded for query t, else 0
                          // (floats: the weights' loops test it without leaving vectors)
    float *seen;          // [G][kAttendQueries] 1: the walk of choose passed group g
    AttentionScratch x;   // one expanded group's tile (cpu/tile.hpp)
    int32_t *xq, *xk;     // [kQueryTile], [kKeyTile] its queries (band tile rows), keys
    RowState *xs;         // [kAttendQueries] (mx, l) of those rows, as the kernel keeps them
};

// The widest summary set; the widest band of a tile (a tile is split where its queries'
// windows drift further apart); the most rows a tile reads (groups, sinks, band).
int64_t max_groups(const Desc &d);
int64_t max_band(const Desc &d);
int64_t max_rows(const Desc &d);
// The most members a tile can expand (each query's groups hold at most E keys); 0 where
// nothing can expand (E = 0, or causal).
int64_t max_expanded(const Desc &d);
Scratch scratch_layout(Arena &arena, const Desc &d);

// ---- window (hybrid_window.cpp): the window of query i as the valid-key range [s, e).
struct Range {
    int64_t s, e;
};
Range window_range(const Desc &d, const Pair &p, int64_t i);

// The exact-key columns of a tile of n queries with windows r[0..n): the band of valid
// keys [s0, s0 + band) their windows cover, then the sinks outside it (extra), and where
// each sink sits among the columns (-1: none). Forward and backward use the same choice.
struct Columns {
    int64_t s0, band, count;
    int64_t extra[2], sink_col[2];
};
Columns columns(const Desc &d, const Pair &p, const Range *r, int64_t n);

// ---- k-means on the keys of a non-causal pair (hybrid_kmeans.cpp)
// Picks the initial centres from the seed (and sets cnorm, as kmeans_move).
void kmeans_init(const Desc &d, const Args &a, const Pair &p);
// Assigns valid keys [u0, u1) (at most kKeyTile) to their nearest centre; the first
// assignment also gathers those keys when they are not in place.
void kmeans_assign(const Desc &d, const Args &a, const Pair &p, int64_t u0, int64_t u1,
                   bool first, const Scratch &s);
// Moves each centre to its members' mean (from chunk_sums without values).
void kmeans_move(const Desc &d, const Pair &p);

// ---- groups (hybrid_groups.cpp)
// Non-causal: member counts and key (and, with `values`, value) sums by label of key
// chunk c, into p.partial. Fixed chunks summed in order keep every thread count's
// result the same, and each pass reads the keys once.
void chunk_sums(const Desc &d, const Args &a, const Pair &p, int64_t c, bool values);
// The member counts and key/value sums of each group, from every chunk's values.
void group_totals(const Desc &d, const Pair &p);
// The sums of all chunks, in chunk order, of group g's column x (of d + dv).
double chunk_total(const Desc &d, const Pair &p, int64_t g, int64_t x);
// Expansion: each group's members (Pair::members), by a counting sort of the labels.
void group_members(const Pair &p);
// Causal: the running sums and total of positional block g.
void block_sums(const Desc &d, const Args &a, const Pair &p, int64_t g, const Scratch &s);

// ---- a tile's rows (hybrid_rows.cpp), forward and backward alike: queries [i0, i0 + n)
// of query head h with windows r[0..n), whose band fits max_band. Rows [0, groups) are the
// summaries (Ksum_g, Vsum_g), then the sinks; the band of exact keys follows from `fixed`.
// Queries [0, live) have no allowed key (only a prefix of a tile can lack one: causal, or
// no valid key at all).
struct Rows {
    Columns c;
    int64_t groups, sinks, fixed, live;
    int64_t sink_key[2];  // the valid key of each sink row
    bool labelled;        // non-causal groups: exact keys take their group's share back
    int64_t expanded = 0; // backward: the members of the tile's expanded groups (TileGrads)
};
// The queries [a, b) of a row rounded out to whole blocks of kQueryBlock: band_scores
// filled them, and loops over them vectorise without remainders.
inline int64_t block_floor(int64_t a) { return a / kQueryBlock * kQueryBlock; }
inline int64_t block_ceil(int64_t b) { return (b + kQueryBlock - 1) / kQueryBlock * kQueryBlock; }
// Sets the scratch's krow, vrow, label, qa, qb (band row j is exact for the queries
// [qa, qb); a sink's band row for none: it is exact through its own row), qrow, lo, hi
// and, causal, first.
Rows tile_rows(const Desc &d, const View &q, const View &k, const View &v, const Pair &p,
               int64_t h, int64_t i0, int64_t n, const Range *r, const Scratch &s);

// ---- expansion (hybrid_expand.cpp, docs/algorithm.md "Expansion"), queries [live, n) of
// a tile. choose: from the summary logits (st rows [0, G), -inf where m_ig = 0), each
// query's expanded groups into s.chosen, and their summary logits to -inf. expand: after
// the band, each chosen group's members against the queries that chose it, merged into
// their (mx, l, out) state.
void choose(const Pair &p, const BandTile &bt, int64_t live, const Scratch &s);
void expand(const Desc &d, const Args &a, const Pair &p, int64_t live, int64_t n,
            const Scratch &s);

// ---- attention (hybrid_attention.cpp): queries [i0, i1) of query head h of the pair.
void attend(const Desc &d, const Args &a, const Pair &p, int64_t h, int64_t i0, int64_t i1,
            const Scratch &s);

// ---- gradients (hybrid_backward_tile.cpp) of queries [i0, i0 + n) of query head h, a tile
// whose band fits max_band: the forward's rows and products, then the gradients.
struct BackScratch {
    Scratch f;                 // the forward's (f.out: the tile's dq rows)
    const float **orow;        // [kAttendQueries] the output gradients' rows
    float **dkrow, **dvrow;    // [rows] where the rows' gradients go
    int32_t *qc;               // [rows] band rows: the non-decreasing hull of qb
    float *ot, *dpt;           // [dv][kAttendQueries], [rows][kAttendQueries]
    float *hit_dp;             // [G][kAttendQueries] summed dout . v_j of the exact keys
    float *lse_t, *delta_t;    // [kAttendQueries] LSE (+inf: no term) and D
    int64_t *next;             // [query heads] the causal scatter's next query of each
    GradScratch x;             // expansion: one expanded group's tile
};
BackScratch back_scratch_layout(Arena &arena, const Desc &d);
// What a tile leaves for the reduction (hybrid_backward.cpp): the gradients of its rows
// (summaries: of Ksum_g, Vsum_g) and, causal, its queries' partial-block C and U (0: none).
struct TileGrads {
    float *dk, *dv;    // [max_rows][d], [max_rows][dv]
    float *cp, *up;    // [n]
    // expansion: the gradients of the members of the groups any query of the tile
    // expanded, and the valid key of each (Rows::expanded of them)
    float *xk, *xv;    // [max_expanded][d], [max_expanded][dv]
    int32_t *xu;       // [max_expanded]
};
// The backward's expand (hybrid_expand.cpp): each chosen group's members against the
// queries that chose it, adding scale dS K into their dq rows and writing the members'
// gradients into the tile's expanded rows; returns how many rows.
int64_t expand_grads(const Desc &d, const GradArgs &a, const Pair &p, int64_t live, int64_t n,
                     const TileGrads &out, const BackScratch &b);
// Writes the tile's dq rows (it owns them) and its TileGrads; returns its rows.
Rows tile_grads(const Desc &d, const GradArgs &a, const Pair &p, int64_t h, int64_t i0,
                int64_t n, const TileGrads &out, const BackScratch &s);

// ---- the pipeline (hybrid.cpp): workspace layout and the build of the pairs' groups,
// shared by hybrid_run and the test probe.
struct Buffers {
    float *log_n;          // [Nk + 1] log(n), for the summary logits
    int64_t chunk;         // pairs in flight
    Pair *pairs;           // [chunk]
    Scratch *scratch;      // [threads]
};
Buffers layout(Arena &arena, const Desc &d);
// Prepares pairs first .. first + np - 1 (pair index = b * kv_heads + hk) in the slots
// 0 .. np - 1, builds their groups and fills log_n up to the largest group.
void build_pairs(const Desc &d, const Args &a, const Buffers &bf, int64_t first, int64_t np);

}  // namespace smyrf::cpu::hybrid
