// HYBRID step 3 on the GPU: the groups of every (batch, kv head) pair (cpu/hybrid.cpp,
// hybrid_kmeans.cpp and hybrid_groups.cpp are the model; docs/hybrid-notes.md fixes the
// details). Non-causal: the initial centres are the valid keys with the smallest seeded
// hashes (a stable segmented sort by hash, ties to the lower position), then I Lloyd
// iterations (assign; a stable segmented sort by label gives each group its members in
// position order; the centres move to their members' float64 means), then the member
// counts and float64 key and value sums of the last assignment. Causal: each positional
// block's sums, and the running sums before every key of it. Every sum runs in a fixed
// order, so results repeat bit for bit.
#include "cuda/hybrid_groups.cuh"
#include "cuda/launch.cuh"

#include <algorithm>

namespace smyrf::gpu {

size_t hybrid_sort_temp_bytes(const Problem &p) {
    const long long items = (long long)p.B * p.Hkv * p.Nk, segments = (long long)p.B * p.Hkv;
    size_t most = 0;
    for (int wide = 0; wide < 2; wide++) {
        size_t bytes = 0;
        SMYRF_CUDA(wide ? CudaExec::sort_call<uint64_t>(nullptr, bytes, nullptr, nullptr, nullptr,
                                                        nullptr, items, segments, nullptr, nullptr, 0)
                        : CudaExec::sort_call<int32_t>(nullptr, bytes, nullptr, nullptr, nullptr,
                                                       nullptr, items, segments, nullptr, nullptr, 0));
        most = std::max(most, bytes);
    }
    return most;
}

void hybrid_groups(const Problem &p, const HybridParams &hp, smyrf_dtype dtype, const void *k,
                   const void *v, const Work &w, const HybridWork &hw, cudaStream_t s) {
    const CudaExec ex{s};
    switch (dtype) {
    case SMYRF_DTYPE_F32:
        hy::build_groups(ex, p, hp, (const float *)k, (const float *)v, w.valid, w.n_valid, hw);
        break;
    case SMYRF_DTYPE_F16:
        hy::build_groups(ex, p, hp, (const __half *)k, (const __half *)v, w.valid, w.n_valid, hw);
        break;
    case SMYRF_DTYPE_BF16:
        hy::build_groups(ex, p, hp, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, w.valid,
                         w.n_valid, hw);
        break;
    }
}

}  // namespace smyrf::gpu
