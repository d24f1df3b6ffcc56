// HYBRID mode on the GPU (docs/algorithm.md, "HYBRID"; the CPU backend's cpu/hybrid.hpp
// is the model): the groups of every (batch, kv head) pair, built on the device
// (hybrid_groups.cu), then one warp per query row (hybrid_attention.cu).
#pragma once

#include "cuda/common.cuh"

namespace smyrf::gpu {

// The HYBRID part of smyrf::Desc (resolved values; budget = window + sinks + summaries +
// expand at most).
struct HybridParams {
    int budget, window, sinks, summaries, expand, iters;
    unsigned long long seed;
    int block;      // causal: positions per block, ceil(Nk / summaries)
    int max_groups; // summary columns a pair can have: max(1, min(summaries, Nk))
    int max_exact;  // exact keys a query can have: min(budget + 2, Nk), distinct valid keys
};

inline HybridParams make_hybrid_params(const Desc &d) {
    HybridParams hp{};
    hp.budget = (int)d.budget;
    hp.window = (int)d.window;
    hp.sinks = (int)d.sinks;
    hp.summaries = (int)d.summaries;
    hp.expand = (int)d.expand;
    hp.iters = (int)d.kmeans_iters;
    hp.seed = (unsigned long long)d.seed;
    hp.block = (int)((d.k_len + d.summaries - 1) / d.summaries);
    hp.max_groups = (int)(d.summaries < d.k_len ? d.summaries : d.k_len);
    if (hp.max_groups < 1) hp.max_groups = 1;
    // Sized by the keys too: a budget far above the length (every key exact) must not
    // grow each warp's shared memory past the device's limit.
    hp.max_exact = (int)(d.budget + 2 < d.k_len ? d.budget + 2 : d.k_len);
    return hp;
}

// What the pair of one (batch, kv head) is, set on the device from its valid keys.
struct PairInfo {
    int n;        // valid keys
    int dense;    // dense limit: every allowed valid key is exact, no groups
    int groups;   // summary columns (k-means groups, or causal blocks); 0 when dense
    int window;   // keys per window (n when dense; window + expand when it does not expand)
    int expand;   // expansion keys per query when the pair expands, else 0
    int smallest; // expansion: the smallest non-empty group
};

// Device buffers of a HYBRID execute (pairs P = B * Hkv, G = max_groups), carved out of
// the workspace by backend.cu.
struct HybridWork {
    PairInfo *info;          // [P]
    int32_t *label;          // [P][Nk] non-causal: group of valid key u
    int32_t *members;        // [P][Nk] valid keys u by group, ascending within a group
    int32_t *member_start;   // [P][G + 1]
    int32_t *count;          // [P][G] members per group (causal: per block, first sink out)
    float *centres, *cnorm;  // [P][G][d], [P][G] k-means state
    float *ksum, *vsum;      // [P][G][d], [P][G][dv] member sums
    float *pk, *pv;          // causal [P][Nk][d], [P][Nk][dv]: sums of the members of
    int32_t *pn;             // u's block before u, and their count [P][Nk]
    // the segmented sorts (initial centres by hash, members by label)
    uint64_t *hash_in, *hash_out;     // [P][Nk]
    int32_t *ident, *order;           // [P][Nk] u, then the sort's values
    int32_t *label_sorted;            // [P][Nk]
    int32_t *seg_begin, *seg_end;     // [P] the valid keys of non-causal, non-dense pairs
    void *sort_temp;
    size_t sort_temp_bytes;
};

// The backward adds up a sink key's rows (all live rows of its pair's query heads) in
// chunks of kSinkRows, one warp each; sink_chunks per pair.
constexpr int kSinkRows = 128;
__host__ __device__ inline int sink_chunks(const Problem &p) {
    return (int)(((long long)p.group * p.Nq + kSinkRows - 1) / kSinkRows);
}

// What the backward's row pass leaves for its key pass (rows = B * H * Nq, G as above).
struct HybridGrads {
    float *c, *u;            // [rows][G] each summary's C_g and U_g (0: no summary)
    uint8_t *chosen;         // [rows][G] expansion: group g expanded (non-causal only)
    float *delta;            // [rows] D_i = dout_i . out_i
    float *cp, *up;          // causal [rows]: the partial block's C and U
    float *dksum, *dvsum;    // [P][G][d], [P][G][dv] the group sums' gradients
    float *sink_partial;     // [P][2][sink_chunks][d + dv] each sink's rows, by chunk
};

inline HybridGrads carve_hybrid_grads(Carver &c, const Desc &d, const HybridParams &hp) {
    HybridGrads g{};
    const size_t rows = (size_t)(d.batch * d.heads * d.q_len), G = (size_t)hp.max_groups;
    const size_t P = (size_t)(d.batch * d.kv_heads);
    g.c = c.take<float>({rows, G});
    g.u = c.take<float>({rows, G});
    if (!d.causal) g.chosen = c.take<uint8_t>({rows, G});
    g.delta = c.take<float>({rows});
    if (d.causal) {
        g.cp = c.take<float>({rows});
        g.up = c.take<float>({rows});
    }
    g.dksum = c.take<float>({P, G, (size_t)d.qk_dim});
    g.dvsum = c.take<float>({P, G, (size_t)d.v_dim});
    g.sink_partial = c.take<float>(
        {P, 2, (size_t)sink_chunks(make_problem(d)), (size_t)(d.qk_dim + d.v_dim)});
    return g;
}

// HYBRID's buffers (after the common ones of Work), sort_temp bytes for the sorts.
inline HybridWork carve_hybrid(Carver &c, const Desc &d, const HybridParams &hp, size_t sort_temp) {
    HybridWork h{};
    const size_t P = (size_t)(d.batch * d.kv_heads), Nk = (size_t)d.k_len;
    const size_t G = (size_t)hp.max_groups, dim = (size_t)d.qk_dim, dv = (size_t)d.v_dim;
    h.info = c.take<PairInfo>({P});
    h.count = c.take<int32_t>({P, G});
    h.ksum = c.take<float>({P, G, dim});
    h.vsum = c.take<float>({P, G, dv});
    if (d.causal) {
        h.pk = c.take<float>({P, Nk, dim});
        h.pv = c.take<float>({P, Nk, dv});
        h.pn = c.take<int32_t>({P, Nk});
    } else {
        h.label = c.take<int32_t>({P, Nk});
        h.members = c.take<int32_t>({P, Nk});
        h.member_start = c.take<int32_t>({P, G + 1});
        h.centres = c.take<float>({P, G, dim});
        h.cnorm = c.take<float>({P, G});
        h.hash_in = c.take<uint64_t>({P, Nk});
        h.hash_out = c.take<uint64_t>({P, Nk});
        h.order = c.take<int32_t>({P, Nk});
        h.label_sorted = c.take<int32_t>({P, Nk});
    }
    h.ident = c.take<int32_t>({P, Nk});
    h.seg_begin = c.take<int32_t>({P});
    h.seg_end = c.take<int32_t>({P});
    h.sort_temp = c.take<unsigned char>({sort_temp});
    h.sort_temp_bytes = sort_temp;
    return h;
}

// Temporary bytes of the segmented sorts of P pairs of Nk slots.
size_t hybrid_sort_temp_bytes(const Problem &p);

// hybrid_groups.cu: the pairs' PairInfo and groups (non-causal: I Lloyd iterations, then
// member counts and sums; causal: block sums and running sums), after valid_keys.
void hybrid_groups(const Problem &p, const HybridParams &hp, smyrf_dtype dtype, const void *k,
                   const void *v, const Work &w, const HybridWork &hw, cudaStream_t s);

// hybrid_attention.cu: per-warp shared memory bytes (a warp per query row); prepare
// raises the kernel's limit to max_smem.
size_t hybrid_warp_smem(const Problem &p, const HybridParams &hp);
void hybrid_attention_prepare(smyrf_dtype dtype, size_t max_smem);
// hybrid_backward.cu: dq, dk, dv from the groups (hybrid_groups first), the forward's out
// and lse, and dout, in the plan's dtype and strides; dk and dv sum over each kv head's
// query heads.
void hybrid_backward(const Problem &p, const HybridParams &hp, int warps, smyrf_dtype dtype,
                     const void *q, const void *k, const void *v, const void *out,
                     const float *lse, const void *dout, void *dq, void *dk, void *dv,
                     const Work &w, const HybridWork &hw, const HybridGrads &hg, cudaStream_t s);
// Per-warp shared memory bytes of the backward's kernels; prepare raises their limits.
size_t hybrid_backward_warp_smem(const Problem &p, const HybridParams &hp);
void hybrid_backward_prepare(smyrf_dtype dtype, size_t max_smem);

// out and lse (may be null) of every query row, from the groups.
void hybrid_attention(const Problem &p, const HybridParams &hp, int warps, smyrf_dtype dtype,
                      const void *q, const void *k, const void *v, void *out, float *lse,
                      const Work &w, const HybridWork &hw, cudaStream_t s);

}  // namespace smyrf::gpu
