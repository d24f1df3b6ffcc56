// HYBRID step 3, non-causal: k-means on the valid keys of a pair. Initial centres come
// from a seeded hash of the key positions; each assignment is a product per block of keys
// (|c|^2 - 2 c . k, cpu/hybrid_kernel.hpp); the centre update reads the sums of fixed key chunks
// (hybrid_groups.cpp), so results do not depend on how tasks are spread over threads.
#include "core/random.hpp"
#include "cpu/hybrid.hpp"
#include "cpu/reduce.hpp"

#include <algorithm>
#include <cstring>

namespace smyrf::cpu::hybrid {

namespace {

// What the assignments read of the centres besides their rows: their norms.
void centres_set(const Desc &d, const Pair &p) {
    for (int64_t g = 0; g < p.groups; g++) {
        const float *c = p.centres + g * d.qk_dim;
        p.cnorm[g] = dot_of(c, c, d.qk_dim);
    }
}

// The label of each of n keys (n <= kAttendQueries) from dist (CentreProducts:
// -2 c_g . k_u): argmin_g of |c_g|^2 + dist, the first minimum winning. Along each
// centre's row, a vector of keys at a time; the label is updated by a bit mask, which GCC
// does not turn into a masked store behind a branch (as it did the select, at 1.5x the time).
SMYRF_VECTOR_CLONES
void nearest(const float *dist, const float *cnorm, int64_t G, int64_t n, float *best,
             int32_t *label) {
    for (int64_t u = 0; u < n; u++) best[u] = cnorm[0] + dist[u], label[u] = 0;
    for (int64_t g = 1; g < G; g++) {
        const float *row = dist + g * kAttendQueries;
        for (int64_t u = 0; u < n; u++) {
            const float x = cnorm[g] + row[u];
            const int32_t nearer = -(int32_t)(x < best[u]);  // all ones: g is nearer
            label[u] = (label[u] & ~nearer) | ((int32_t)g & nearer);
            best[u] = x < best[u] ? x : best[u];
        }
    }
}

}  // namespace

void kmeans_init(const Desc &d, const Args &a, const Pair &p) {
    const int64_t n = p.n_valid, G = p.groups, dim = d.qk_dim;
    // The G keys with the smallest h_j = mix64(mix64(mix64(seed) ^ kv_head) ^ j), ties to
    // the lower j: a max-heap of G indices, kept in the label array (overwritten later).
    const uint64_t base = mix64(mix64(d.seed) ^ (uint64_t)p.hk);
    auto precedes = [&](int32_t x, int32_t y) {  // (h, j) order
        const uint64_t hx = mix64(base ^ (uint64_t)p.valid[x]), hy = mix64(base ^ (uint64_t)p.valid[y]);
        return hx != hy ? hx < hy : x < y;
    };
    int32_t *heap = p.label;
    for (int64_t u = 0; u < n; u++) {
        if (u < G) {
            heap[u] = (int32_t)u;
            std::push_heap(heap, heap + u + 1, precedes);
        } else if (precedes((int32_t)u, heap[0])) {
            std::pop_heap(heap, heap + G, precedes);
            heap[G - 1] = (int32_t)u;
            std::push_heap(heap, heap + G, precedes);
        }
    }
    // Centres in position order: that order is the assignment tie-break.
    std::sort(heap, heap + G);
    for (int64_t g = 0; g < G; g++)
        std::memcpy(p.centres + g * dim, a.k.row(p.b, p.hk, p.valid[heap[g]]), (size_t)dim * sizeof(float));
    centres_set(d, p);
}

void kmeans_assign(const Desc &d, const Args &a, const Pair &p, int64_t u0, int64_t u1,
                   bool first, const Scratch &s) {
    const int64_t G = p.groups, dim = d.qk_dim;
    if (first && p.keys == p.gathered)  // once, for every later product and sum
        for (int64_t u = u0; u < u1; u++)
            std::memcpy(p.gathered + u * dim, a.k.row(p.b, p.hk, p.valid[u]), (size_t)dim * sizeof(float));
    for (int64_t g = 0; g < G; g++) s.crow[g] = p.centres + g * dim;
    for (int64_t v0 = u0; v0 < u1; v0 += kAttendQueries) {
        const int64_t n = std::min(kAttendQueries, u1 - v0);
        for (int64_t u = 0; u < n; u++) s.krow[u] = p.keys + (v0 + u) * p.ldk;
        band_kernels().distances({s.krow, s.crow, s.qt, s.dist, n, G, dim});
        nearest(s.dist, p.cnorm, G, n, s.best, p.label + v0);
    }
}

void kmeans_move(const Desc &d, const Pair &p) {
    const int64_t dim = d.qk_dim;
    for (int64_t g = 0; g < p.groups; g++) {
        int64_t n = 0;
        for (int64_t c = 0; c < kSumChunks; c++) n += p.partial_n[c * p.groups + g];
        if (n == 0) continue;  // an empty cluster keeps its centre
        for (int64_t x = 0; x < dim; x++)
            p.centres[g * dim + x] = (float)(chunk_total(d, p, g, x) / (double)n);
    }
    centres_set(d, p);
}

}  // namespace smyrf::cpu::hybrid
