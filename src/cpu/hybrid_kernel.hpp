// HYBRID's two products over one query tile, in the column layout of cpu/tile.hpp (the
// queries transposed, one row of the logit matrix per key): S^T = scale K Q^T, then
// O = P V once the caller has turned the logits into weights. Rows are read in place
// through row pointers, and each query reads only its own rows: the fixed ones (sinks
// and summaries, read by every query) and its window's range of the band. Compiled once
// per instruction set with the tile kernels (cpu/kernels/), picked with them.
//
// Like cpu/tile.hpp, this header includes nothing that defines code.
#pragma once

#include <cstdint>

namespace smyrf::cpu::hybrid {

// Queries per attention task, in blocks of kQueryBlock (a multiple of every vector width).
constexpr int64_t kAttendQueries = 64, kQueryBlock = 16;

struct BandTile {
    const float *const *q;  // [nq] query rows of qk_dim floats
    const float *const *k;  // [rows] key rows of qk_dim floats: rows [0, fixed), then the band
    const float *const *v;  // [rows] value rows of v_dim floats, the same rows
    float *const *out;      // [nq] out rows: receive query i's unnormalised sum
    // Query i reads rows [0, fixed) and [lo[i], hi[i]) (fixed <= lo[i] <= hi[i]); lo and
    // hi are non-decreasing in i.
    const int32_t *lo, *hi;
    int64_t nq, rows, fixed, qk_dim, v_dim;
    float scale;
    float *qt;  // scratch [qk_dim][kAttendQueries]: the queries, transposed
    float *st;  // scratch [rows][kAttendQueries]: logits, then weights
};

// The backward's gradients of a tile's rows (the kernels' third product), in the same
// layout: row r over the queries that read it, dk_r = sum_i ds[r][i] q_i and
// dv_r = sum_i pv[r][i] dout_i, written (not added) to the dk and dv rows. Rows
// [0, fixed) sum over every query; band row r over [qa[r], qb[r]), whose ends are
// non-decreasing in r, and ds and pv must hold 0 there for any query that does not read
// row r.
struct BandGrads {
    const float *const *q;     // [nq] query rows of qk_dim floats
    const float *const *dout;  // [nq] output gradient rows of v_dim floats
    float *const *dk, *const *dv;  // [rows] the rows' gradients
    const float *ds, *pv;      // [rows][kAttendQueries] their weights
    const int32_t *qa, *qb;    // [rows]
    int64_t nq, rows, fixed, qk_dim, v_dim;
};

// The one-pass weights of the exact rows (hybrid_attention.cpp, weigh), in place in st:
// for rows r in [first, rows), st[r][i] = e^{st[r][i] - mx_i} - u[label[r]][i] for the
// queries i in [qa[r], qb[r]) whose drop[label[r]][i] is 0, and 0 for every other query;
// l_i adds e^{st[r][i] - mx_i} of those entries, row after row.
struct BandWeights {
    float *st;                // [rows][kAttendQueries] logits, then weights
    const int32_t *qa, *qb;   // [rows]
    const int32_t *label;     // [rows] the exact key's group, or nullptr: u = 0
    const float *u;           // [groups][kAttendQueries] the groups' shares u_ig
    const float *drop;        // [groups][kAttendQueries] 1: the group is expanded; or nullptr
    const float *mx;          // [kAttendQueries]
    float *l;                 // [kAttendQueries]
    int64_t first, rows;
};

// k-means' assignment product (hybrid_kmeans.cpp) for a block of at most kAttendQueries
// keys: dist[g][u] = -2 c_g . k_u for the centres g in [0, groups) and the keys u in
// [0, n), each one chain of FMAs over the dimensions in order, then doubled. The keys are
// transposed into kt like a tile's queries, so the centres play the rows of a tile.
struct CentreProducts {
    const float *const *k;  // [n] key rows of dim floats
    const float *const *c;  // [groups] centre rows of dim floats
    float *kt;              // scratch [dim][kAttendQueries]
    float *dist;            // [groups][kAttendQueries]
    int64_t n, groups, dim;
};

// scores: st[r][i] = scale k_r . q_i for every row r and every query i of a block of
// kQueryBlock queries of which one reads row r (the other entries are left as they were).
// values: out_i = sum_r st[r][i] v_r over the rows query i reads and the band rows of
// nearby queries, which must hold 0 for query i.
// weights: BandWeights. grads: BandGrads. distances: CentreProducts.
struct BandKernels {
    void (*scores)(const BandTile &t);
    void (*weights)(const BandWeights &w);
    void (*values)(const BandTile &t);
    void (*grads)(const BandGrads &t);
    void (*distances)(const CentreProducts &c);
};

// The kernels of the instruction set that cpu/tile.hpp's choice picked (AVX-512, AVX2
// with FMA, or portable vectors; SMYRF_CPU_KERNEL caps both the same way).
const BandKernels &band_kernels();

}  // namespace smyrf::cpu::hybrid

namespace smyrf::cpu {
namespace avx512 {
void band_scores(const hybrid::BandTile &t);
void band_weights(const hybrid::BandWeights &w);
void band_values(const hybrid::BandTile &t);
void band_grads(const hybrid::BandGrads &t);
void centre_distances(const hybrid::CentreProducts &c);
}  // namespace avx512
namespace avx2 {
void band_scores(const hybrid::BandTile &t);
void band_weights(const hybrid::BandWeights &w);
void band_values(const hybrid::BandTile &t);
void band_grads(const hybrid::BandGrads &t);
void centre_distances(const hybrid::CentreProducts &c);
}  // namespace avx2
namespace portable {
void band_scores(const hybrid::BandTile &t);
void band_weights(const hybrid::BandWeights &w);
void band_values(const hybrid::BandTile &t);
void band_grads(const hybrid::BandGrads &t);
void centre_distances(const hybrid::CentreProducts &c);
}  // namespace portable
}  // namespace smyrf::cpu
