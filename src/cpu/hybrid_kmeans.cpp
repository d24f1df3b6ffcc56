// HYBRID step 3, non-causal: k-means on the valid keys of a pair. Initial centres come
// from a seeded hash of the key positions; each assignment is one GEMM per key tile
// (|c|^2 - 2 k . c); the centre update reads the sums of fixed key chunks
// (hybrid_groups.cpp), so results do not depend on how tasks are spread over threads.
#include "core/random.hpp"
#include "cpu/blas.hpp"
#include "cpu/hybrid.hpp"
#include "cpu/reduce.hpp"

#include <algorithm>
#include <cstring>

namespace smyrf::cpu::hybrid {

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
}

void kmeans_assign(const Desc &d, const Args &a, const Pair &p, int64_t u0, int64_t u1,
                   bool first, const Scratch &s) {
    const int64_t G = p.groups, dim = d.qk_dim;
    if (first && p.keys == p.gathered)  // once, for every later GEMM and sum
        for (int64_t u = u0; u < u1; u++)
            std::memcpy(p.gathered + u * dim, a.k.row(p.b, p.hk, p.valid[u]), (size_t)dim * sizeof(float));
    for (int64_t g = 0; g < G; g++) {
        const float *c = p.centres + g * dim;
        s.cnorm[g] = dot_of(c, c, dim);
    }
    gemm_nt(u1 - u0, G, dim, -2.0f, p.keys + u0 * p.ldk, p.ldk, p.centres, dim, 0.0f, s.dist, G);
    for (int64_t u = u0; u < u1; u++) {
        const float *row = s.dist + (u - u0) * G;
        int32_t best = 0;
        float best_d = s.cnorm[0] + row[0];
        for (int64_t g = 1; g < G; g++) {
            const float dg = s.cnorm[g] + row[g];
            if (dg < best_d) best_d = dg, best = (int32_t)g;  // the first minimum wins
        }
        p.label[u] = best;
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
}

}  // namespace smyrf::cpu::hybrid
