// Stage 4, attention, fused with the online part of stage 5 (combine): one kernel
// gathers a tile of queries and, tile after tile, the keys and values of its cluster by
// their sorted positions, computes S = Q K^T on the tensor cores (fp16/bf16, fp32
// accumulation; plain fp32 FMAs for fp32 inputs), runs the online softmax and
// accumulates O += P V, then merges (O, m, l) into the per-query fp32 state of the
// previous rounds (w.acc, w.m, w.l) by log-sum-exp. No per-round output is stored.
// DENSE mode runs the same kernel with query tiles of consecutive positions and every
// valid key (up to the causal limit of the tile's last query).
//
// Each warp owns 16 query rows of the tile: it computes their scores, softmax and
// accumulators on its own, so the block only synchronises around the K/V tile loads.
#include "cuda/attention.cuh"
#include "cuda/launch.cuh"

namespace smyrf::gpu {

Tiles choose_tiles(smyrf_dtype dtype, int d, int dv, size_t max_smem) {
    static const int shapes[][2] = {{64, 64}, {64, 32}, {32, 32}, {16, 16}};
    Tiles t{};
    t.dp = (d + 15) / 16 * 16;
    t.dvp = (dv + 15) / 16 * 16;
    for (const auto &sh : shapes) {
        size_t bytes = 0;
        switch (dtype) {
        case SMYRF_DTYPE_F32: bytes = fw::smem_bytes<float>(sh[0], sh[1], t.dp, t.dvp); break;
        case SMYRF_DTYPE_F16: bytes = fw::smem_bytes<__half>(sh[0], sh[1], t.dp, t.dvp); break;
        case SMYRF_DTYPE_BF16: bytes = fw::smem_bytes<__nv_bfloat16>(sh[0], sh[1], t.dp, t.dvp); break;
        }
        if (bytes <= max_smem) {
            t.bq = sh[0], t.bk = sh[1], t.smem = bytes;
            return t;
        }
    }
    t.bq = t.bk = 0;
    return t;
}

void attention_prepare(smyrf_dtype dtype, size_t max_smem) {
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        SMYRF_CUDA(cudaFuncSetAttribute(fw::attention_kernel<float>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)max_smem));
        break;
    case SMYRF_DTYPE_F16:
        SMYRF_CUDA(cudaFuncSetAttribute(fw::attention_kernel<__half>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)max_smem));
        break;
    case SMYRF_DTYPE_BF16:
        SMYRF_CUDA(cudaFuncSetAttribute(fw::attention_kernel<__nv_bfloat16>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)max_smem));
        break;
    }
}

void attention(const Problem &p, smyrf_dtype dtype, const Tiles &t, const AttentionJob &job,
               const void *q, const void *k, const void *v, const Work &w, cudaStream_t s) {
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        fw::attend(CudaExec{s}, p, t, job, (const float *)q, (const float *)k, (const float *)v, w);
        break;
    case SMYRF_DTYPE_F16:
        fw::attend(CudaExec{s}, p, t, job, (const __half *)q, (const __half *)k,
                   (const __half *)v, w);
        break;
    case SMYRF_DTYPE_BF16:
        fw::attend(CudaExec{s}, p, t, job, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k,
                   (const __nv_bfloat16 *)v, w);
        break;
    }
}

}  // namespace smyrf::gpu
