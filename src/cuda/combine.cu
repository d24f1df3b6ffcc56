// Stage 5, combine (the final part): out = acc / l and lse = m + log l for every query,
// written once in the caller's dtype and strides; a query that met no allowed key in any
// round (or tile) falls back to its latest allowed valid key alone, else zeros and
// lse = -inf (cpu/combine.cpp, combine_finish; docs/algorithm.md).
#include "cuda/common.cuh"

namespace smyrf::gpu {
namespace {

// One warp per query row.
template <class T>
__global__ void combine_kernel(Problem p, const T *__restrict__ q, const T *__restrict__ k,
                               const T *__restrict__ v, T *__restrict__ out,
                               float *__restrict__ lse, const int32_t *__restrict__ valid,
                               const int32_t *__restrict__ n_valid, const float *__restrict__ acc,
                               const float *__restrict__ gm, const float *__restrict__ gl) {
    for_each_query_row(p, [&](long long row, long long, long long b, int h, int i, int lane) {
        T *orow = out + b * p.out.batch + (long long)h * p.out.head + (long long)i * p.out.token;
        const float l = gl[row];
        float lse_v;
        if (l != 0.0f) {
            const float inv = 1.0f / l;
            const float *arow = acc + row * p.dv;
            for (int c = lane; c < p.dv; c += 32) orow[c] = from_f32<T>(arow[c] * inv);
            lse_v = gm[row] + logf(l);
        } else {  // every round missed this query
            lse_v = fallback_row<32>(p, q, k, v, valid, n_valid, b, h, i, orow, lane, 0xffffffffu);
        }
        if (lse && lane == 0) lse[row] = lse_v;
    });
}

template <class T>
void launch(const Problem &p, const void *q, const void *k, const void *v, void *out, float *lse,
            const Work &w, cudaStream_t s) {
    const long long rows = (long long)p.B * p.H * p.Nq;  // 8 warps of a block, a row each
    combine_kernel<T><<<stride_grid(rows, 8), 256, 0, s>>>(
        p, (const T *)q, (const T *)k, (const T *)v, (T *)out, lse, w.valid, w.n_valid, w.acc,
        w.m, w.l);
    SMYRF_CUDA_LAUNCHED();
}

}  // namespace

void combine(const Problem &p, smyrf_dtype dtype, const void *q, const void *k, const void *v,
             void *out, float *lse, const Work &w, cudaStream_t s) {
    switch (dtype) {
    case SMYRF_DTYPE_F32: launch<float>(p, q, k, v, out, lse, w, s); break;
    case SMYRF_DTYPE_F16: launch<__half>(p, q, k, v, out, lse, w, s); break;
    case SMYRF_DTYPE_BF16: launch<__nv_bfloat16>(p, q, k, v, out, lse, w, s); break;
    }
}

}  // namespace smyrf::gpu
