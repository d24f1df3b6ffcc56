// Stages 1 and 2, transform (XBOX+) and hash (cuda/transform_hash.cuh), on the device.
#include "cuda/launch.cuh"
#include "cuda/transform_hash.cuh"

namespace smyrf::gpu {

void transform_hash(const Problem &p, smyrf_dtype dtype, const void *q, const void *k,
                    const uint8_t *key_mask, const float *dirs, const Work &w, cudaStream_t s) {
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        fw::hash(CudaExec{s}, p, (const float *)q, (const float *)k, key_mask, dirs, w);
        break;
    case SMYRF_DTYPE_F16:
        fw::hash(CudaExec{s}, p, (const __half *)q, (const __half *)k, key_mask, dirs, w);
        break;
    case SMYRF_DTYPE_BF16:
        fw::hash(CudaExec{s}, p, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k, key_mask,
                 dirs, w);
        break;
    }
}

}  // namespace smyrf::gpu
