// The backward pass (docs/algorithm.md, "Backward"): with P_ij = exp(s_ij - lse_i) and
// D_i = dout_i . out_i,
//     dv_j += P_ij dout_i,  dS_ij = P_ij (dout_i . v_j - D_i),
//     dq_i += scale dS_ij k_j,  dk_j += scale dS_ij q_i,
// summed over the rounds, in fp32 on the CUDA cores, tile by tile through shared memory.
//
// Every gradient row has one owner per launch, so no atomics and the result is bitwise
// reproducible: SMYRF runs one block per (problem, round, cluster), which owns the dq rows
// of the cluster's queries and the dk, dv rows (of its query head) of the cluster's keys;
// rounds are launches in order. DENSE runs one launch of key-tile blocks for dk, dv and
// one of query-tile blocks for dq. Sums live in fp32 per query head; the last kernel adds
// a GQA group's heads in a fixed order and writes the caller's dtype and strides.
#include "cuda/backward.cuh"
#include "cuda/launch.cuh"

namespace smyrf::gpu {

namespace {

template <class T>
void prepare(size_t bytes) {
    SMYRF_CUDA(cudaFuncSetAttribute(bw::backward_kernel<T>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <class T>
void run(const Problem &p, bool dense, const int32_t *q_sorted, const int32_t *k_sorted,
         const void *q, const void *k, const void *v, const void *out, const float *lse,
         const void *dout, void *dq, void *dk, void *dv, const Work &w, cudaStream_t s) {
    bw::run(CudaExec{s}, p, dense, q_sorted, k_sorted, (const T *)q, (const T *)k, (const T *)v,
            (const T *)out, lse, (const T *)dout, (T *)dq, (T *)dk, (T *)dv, w);
}

}  // namespace

size_t backward_smem(int d, int dv) { return bw::smem_floats(d, dv) * sizeof(float); }

bool backward_prepare(smyrf_dtype dtype, int d, int dv, size_t max_smem) {
    if (backward_smem(d, dv) > max_smem) return false;
    // The cap, not this plan's need: the setting belongs to the kernel, which plans of
    // other shapes share (a smaller one set later would make this plan's launches fail).
    switch (dtype) {
    case SMYRF_DTYPE_F32: prepare<float>(max_smem); break;
    case SMYRF_DTYPE_F16: prepare<__half>(max_smem); break;
    case SMYRF_DTYPE_BF16: prepare<__nv_bfloat16>(max_smem); break;
    }
    return true;
}

void backward(const Problem &p, smyrf_dtype dtype, bool dense, const int32_t *q_sorted,
              const int32_t *k_sorted, const void *q, const void *k, const void *v,
              const void *out, const float *lse, const void *dout, void *dq, void *dk, void *dv,
              const Work &w, cudaStream_t s) {
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        run<float>(p, dense, q_sorted, k_sorted, q, k, v, out, lse, dout, dq, dk, dv, w, s);
        break;
    case SMYRF_DTYPE_F16:
        run<__half>(p, dense, q_sorted, k_sorted, q, k, v, out, lse, dout, dq, dk, dv, w, s);
        break;
    case SMYRF_DTYPE_BF16:
        run<__nv_bfloat16>(p, dense, q_sorted, k_sorted, q, k, v, out, lse, dout, dq, dk, dv, w, s);
        break;
    }
}

}  // namespace smyrf::gpu
