// HYBRID gradients on the GPU (docs/algorithm.md, "Backward"; cpu/hybrid_backward.cpp is
// the model, src/ref/hybrid_backward.cpp the oracle). The groups, labels and the
// expansion's choice are constants of the forward, rebuilt from the seed (hybrid_groups).
// Then, with P from the forward's lse and D_i = dout_i . out_i:
//   1. one warp per query row recomputes its terms and writes dq (it owns the row), and
//      per summary C_g = P_g (dout . Vbar_g - D) / m_g and U_g = P_g / m_g;
//   2. one block per (pair, group) sums the group's gradients scale C_g q_i and U_g dout_i
//      over the rows, in float64 and in row order;
//   3. one warp per valid key sums, over the pair's query heads, the rows for which the
//      key is exact: dk += scale (P (dout . v - D) - C_{a_j}) q_i, dv += (P - U_{a_j}) dout_i,
//      plus its group's sum gradient (causal: its block's, and the partial-block terms of
//      the rows whose window starts after it in its block). A sink is exact for every
//      row: one warp per chunk of rows adds those up first, and the key's warp sums the
//      chunks in order.
// Every gradient has one owner and a fixed order of sums: no atomics, the same bits on
// every run.
#include "cuda/hybrid_backward.cuh"
#include "cuda/launch.cuh"

namespace smyrf::gpu {

size_t hybrid_backward_warp_smem(const Problem &p, const HybridParams &hp) {
    const long long rows = hy::scratch_words(p, hp, true), keys = (long long)p.d + p.dv;
    return (size_t)(rows > keys ? rows : keys) * 4;
}

void hybrid_backward_prepare(smyrf_dtype dtype, size_t max_smem) {
    const int bytes = (int)max_smem;
    auto raise_limit = [&](auto... kernels) {
        auto one = [&](auto kernel) {
            SMYRF_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        };
        (one(kernels), ...);
    };
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        raise_limit(hy::grad_rows<float>, hy::key_grads<float>, hy::sink_grads<float>);
        break;
    case SMYRF_DTYPE_F16:
        raise_limit(hy::grad_rows<__half>, hy::key_grads<__half>, hy::sink_grads<__half>);
        break;
    case SMYRF_DTYPE_BF16:
        raise_limit(hy::grad_rows<__nv_bfloat16>, hy::key_grads<__nv_bfloat16>,
                    hy::sink_grads<__nv_bfloat16>);
        break;
    }
}

namespace {

template <class T>
void run(const Problem &p, const HybridParams &hp, int warps, const void *q, const void *k,
         const void *v, const void *out, const float *lse, const void *dout, void *dq, void *dk,
         void *dv, const Work &w, const HybridWork &hw, const HybridGrads &hg, cudaStream_t s) {
    const CudaExec ex{s};
    hy::backward(ex, p, hp, warps, (const T *)q, (const T *)k, (const T *)v, (const T *)out, lse,
                 (const T *)dout, (T *)dq, (T *)dk, (T *)dv, w.valid, hw, hg);
}

}  // namespace

void hybrid_backward(const Problem &p, const HybridParams &hp, int warps, smyrf_dtype dtype,
                     const void *q, const void *k, const void *v, const void *out,
                     const float *lse, const void *dout, void *dq, void *dk, void *dv,
                     const Work &w, const HybridWork &hw, const HybridGrads &hg, cudaStream_t s) {
    switch (dtype) {
    case SMYRF_DTYPE_F32: run<float>(p, hp, warps, q, k, v, out, lse, dout, dq, dk, dv, w, hw, hg, s); break;
    case SMYRF_DTYPE_F16: run<__half>(p, hp, warps, q, k, v, out, lse, dout, dq, dk, dv, w, hw, hg, s); break;
    case SMYRF_DTYPE_BF16:
        run<__nv_bfloat16>(p, hp, warps, q, k, v, out, lse, dout, dq, dk, dv, w, hw, hg, s);
        break;
    }
}

}  // namespace smyrf::gpu
