// DENSE mode: exact attention, tiled. The attention kernel (attention.cu) takes query
// tiles of consecutive positions and streams every valid key (up to the causal limit of
// the tile's last query) through shared memory with an online softmax; no Nq x Nk matrix
// exists anywhere. The combine kernel then normalises and writes out once (the tensor-core
// path, attention_mma.cu, does that itself).
#include "cuda/common.cuh"

namespace smyrf::gpu {

void dense(const Problem &p, smyrf_dtype dtype, const Tiles &t, bool mma, const void *q,
           const void *k, const void *v, const uint8_t *key_mask, void *out, float *lse,
           const Work &w, cudaStream_t s) {
    valid_keys(p, key_mask, w, s);
    AttentionJob job{};
    job.dense = true;
    job.last = true;
    if (mma) {  // writes out and lse itself
        attention_mma(p, dtype, job, q, k, v, out, lse, w, s);
        return;
    }
    attention(p, dtype, t, job, q, k, v, w, s);
    combine(p, dtype, q, k, v, out, lse, w, s);
}

}  // namespace smyrf::gpu
