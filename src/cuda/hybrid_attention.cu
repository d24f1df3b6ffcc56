// HYBRID steps 1, 2, 4 and 5 on the GPU, one warp per query row (cpu/hybrid_attention.cpp
// and cpu/hybrid_expand.cpp are the model; src/ref/hybrid.cpp is the oracle). The warp
// lists the row's exact keys (the sinks, then the window, as the CPU orders its rows),
// their logits, and per group how many of them it holds and their summed logits; then
// the summary logits t_g with the exact complement, the expansion's greedy choice, and
// one pass of the softmax in the one-pass form of docs/algorithm.md: exact key j weighs
// e^{s_j - mx} - u_{a_j}, group g's Vsum_g weighs u_g = e^{t_g - mx} / m_g. Each lane
// owns the output columns c = lane (mod 32); every sum runs in a fixed order, so results
// repeat bit for bit.
#include "cuda/hybrid_attention.cuh"
#include "cuda/launch.cuh"

namespace smyrf::gpu {

size_t hybrid_warp_smem(const Problem &p, const HybridParams &hp) {
    return (size_t)hy::scratch_words(p, hp) * 4;
}

void hybrid_attention_prepare(smyrf_dtype dtype, size_t max_smem) {
    const int bytes = (int)max_smem;
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        SMYRF_CUDA(cudaFuncSetAttribute(hy::hybrid_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        break;
    case SMYRF_DTYPE_F16:
        SMYRF_CUDA(cudaFuncSetAttribute(hy::hybrid_kernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        break;
    case SMYRF_DTYPE_BF16:
        SMYRF_CUDA(cudaFuncSetAttribute(hy::hybrid_kernel<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        break;
    }
}

void hybrid_attention(const Problem &p, const HybridParams &hp, int warps, smyrf_dtype dtype,
                      const void *q, const void *k, const void *v, void *out, float *lse,
                      const Work &w, const HybridWork &hw, cudaStream_t s) {
    const CudaExec ex{s};
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        hy::attend(ex, p, hp, warps, (const float *)q, (const float *)k, (const float *)v,
                   (float *)out, lse, w.valid, hw);
        break;
    case SMYRF_DTYPE_F16:
        hy::attend(ex, p, hp, warps, (const __half *)q, (const __half *)k, (const __half *)v,
                   (__half *)out, lse, w.valid, hw);
        break;
    case SMYRF_DTYPE_BF16:
        hy::attend(ex, p, hp, warps, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k,
                   (const __nv_bfloat16 *)v, (__nv_bfloat16 *)out, lse, w.valid, hw);
        break;
    }
}

}  // namespace smyrf::gpu
