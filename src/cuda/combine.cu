// Stage 5, combine (the final part): out = acc / l and lse = m + log l for every query,
// written once in the caller's dtype and strides; a query that met no allowed key in any
// round (or tile) falls back to its latest allowed valid key alone, else zeros and
// lse = -inf (cpu/combine.cpp, combine_finish; docs/algorithm.md).
#include "cuda/attention.cuh"
#include "cuda/launch.cuh"

namespace smyrf::gpu {

void combine(const Problem &p, smyrf_dtype dtype, const void *q, const void *k, const void *v,
             void *out, float *lse, const Work &w, cudaStream_t s) {
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        fw::combine(CudaExec{s}, p, (const float *)q, (const float *)k, (const float *)v,
                    (float *)out, lse, w);
        break;
    case SMYRF_DTYPE_F16:
        fw::combine(CudaExec{s}, p, (const __half *)q, (const __half *)k, (const __half *)v,
                    (__half *)out, lse, w);
        break;
    case SMYRF_DTYPE_BF16:
        fw::combine(CudaExec{s}, p, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k,
                    (const __nv_bfloat16 *)v, (__nv_bfloat16 *)out, lse, w);
        break;
    }
}

}  // namespace smyrf::gpu
