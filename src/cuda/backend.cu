// The CUDA backend: device checks and per-plan preparation (hash directions uploaded
// once, tile shapes, workspace layout), and execute: the mode's stages, enqueued on the
// caller's stream. execute never synchronises the host and allocates nothing when it is
// given a workspace (without one: cudaMallocAsync / cudaFreeAsync on the stream).
#include "core/backend.hpp"
#include "core/directions.hpp"
#include "cuda/common.cuh"
#include "cuda/hybrid.cuh"

#include <climits>
#include <cstdio>
#include <string>
#include <vector>

namespace smyrf {
namespace gpu {

void raise(cudaError_t e, const char *call, const char *file, int line) {
    // A failed call (cudaMallocAsync out of memory, a CUB launch it only peeked at) stays
    // the thread's last error until read: the next call's launch check would report it
    // again. Reported here, so cleared (a sticky error still fails every later call).
    (void)cudaGetLastError();
    const smyrf_status status =
        e == cudaErrorMemoryAllocation ? SMYRF_ERR_OUT_OF_MEMORY : SMYRF_ERR_DEVICE;
    const char *base = file;
    for (const char *c = file; *c; c++)
        if (*c == '/') base = c + 1;
    fail(status, "CUDA error %s (%s) in %s at %s:%d", cudaGetErrorName(e), cudaGetErrorString(e),
         call, base, line);
}

namespace {

// Makes `device` current for the scope and restores the caller's device after.
class DeviceScope {
public:
    explicit DeviceScope(int device) {
        SMYRF_CUDA(cudaGetDevice(&previous_));
        if (previous_ != device) SMYRF_CUDA(cudaSetDevice(device));
        else previous_ = -1;
    }
    ~DeviceScope() {
        if (previous_ >= 0) (void)cudaSetDevice(previous_);
    }
    DeviceScope(const DeviceScope &) = delete;
    DeviceScope &operator=(const DeviceScope &) = delete;

private:
    int previous_ = -1;
};

// The forward's buffers, or (grads) the backward's: the same clusters, then fp32 gradient
// sums instead of the combine state (HYBRID, forward only: its buffers into *hybrid).
Work carve(const Desc &d, void *base, size_t sort_temp, bool grads, size_t *bytes,
           HybridWork *hybrid = nullptr, HybridGrads *hybrid_grads = nullptr) {
    Carver c(base);
    Work w{};
    const size_t B = (size_t)d.batch, H = (size_t)d.heads, Hkv = (size_t)d.kv_heads;
    const size_t Nq = (size_t)d.q_len, Nk = (size_t)d.k_len, dv = (size_t)d.v_dim;
    w.valid = c.take<int32_t>({B, Nk});
    w.n_valid = c.take<int32_t>({B});
    if (d.mode == SMYRF_MODE_SMYRF) {
        const size_t R = (size_t)d.n_hashes;
        w.q_norm = c.take<float>({B, H, Nq});
        w.k_norm = c.take<float>({B, Hkv, Nk});
        w.q_max = c.take<uint32_t>({B, H});
        w.k_max = c.take<uint32_t>({B, Hkv});
        // Query segments, then key segments, contiguous: one sort can take both.
        const size_t nq = B * H * R * Nq;
        for (int i = 0; i < 2; i++) {
            w.q_key[i] = c.take<uint64_t>({B, H, R, Nq + Nk});
            w.k_key[i] = w.q_key[i] ? w.q_key[i] + nq : nullptr;
            w.q_idx[i] = c.take<int32_t>({B, H, R, Nq + Nk});
            w.k_idx[i] = w.q_idx[i] ? w.q_idx[i] + nq : nullptr;
        }
        // The raw projections live in the sorts' second buffers until the sort keys exist.
        w.q_raw = (float *)w.q_key[1];
        w.k_raw = (float *)w.k_key[1];
        w.sort_temp = c.take<unsigned char>({sort_temp});
        w.sort_temp_bytes = sort_temp;
    }
    if (d.mode == SMYRF_MODE_HYBRID) {
        const HybridParams hp = make_hybrid_params(d);
        const HybridWork h = carve_hybrid(c, d, hp, sort_temp);
        if (hybrid) *hybrid = h;
        if (grads) {
            const HybridGrads g = carve_hybrid_grads(c, d, hp);
            if (hybrid_grads) *hybrid_grads = g;
        }
        if (bytes) *bytes = c.used();
        return w;
    }
    if (grads) {
        const size_t dq = (size_t)d.qk_dim;
        w.dq = c.take<float>({B, H, Nq, dq});
        w.dk = c.take<float>({B, H, Nk, dq});
        w.dv = c.take<float>({B, H, Nk, dv});
        w.delta = c.take<float>({B, H, Nq});
        w.met = c.take<int32_t>({B, H, Nq});
    } else {
        w.acc = c.take<float>({B, H, Nq, dv});
        w.m = c.take<float>({B, H, Nq});
        w.l = c.take<float>({B, H, Nq});
    }
    if (bytes) *bytes = c.used();
    return w;
}

// Why no device can be used, or "" when `device` is usable.
std::string device_problem(int64_t device) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();  // not sticky: clear it
        const bool none = e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver;
        return std::string(none ? "no CUDA device or NVIDIA driver on this machine"
                                : "no usable CUDA device") +
               " (cudaGetDeviceCount: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")";
    }
    // snprintf, not std::to_string: its inline tables would be exported (GNU unique).
    char text[160];
    if (device >= count) {
        std::snprintf(text, sizeof text, "SMYRF_PARAM_DEVICE = %lld but only %d CUDA device(s) exist",
                      (long long)device, count);
        return text;
    }
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, (int)device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, (int)device) != cudaSuccess) {
        (void)cudaGetLastError();
        std::snprintf(text, sizeof text, "could not query CUDA device %lld", (long long)device);
        return text;
    }
    if (major < 8) {
        std::snprintf(text, sizeof text,
                      "CUDA device %lld has compute capability %d.%d; the CUDA backend needs 8.0 "
                      "or newer", (long long)device, major, minor);
        return text;
    }
    return "";
}

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(const Desc &d) : d_(d), p_(gpu::make_problem(d)) {
        const std::string why = device_problem(d.device);
        if (!why.empty()) fail(SMYRF_ERR_BACKEND_UNAVAILABLE, "SMYRF_PARAM_BACKEND = CUDA: %s", why.c_str());
        device_ = (int)d.device;
        DeviceScope scope(device_);

        int smem_optin = 0;
        SMYRF_CUDA(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_));
        smem_optin_ = smem_optin;
        if (d.mode == SMYRF_MODE_HYBRID) {
            prepare_hybrid();
            return;
        }
        tiles_ = gpu::choose_tiles(d.dtype, p_.d, p_.dv, (size_t)smem_optin);
        if (tiles_.bq == 0)
            fail(SMYRF_ERR_UNSUPPORTED,
                 "CUDA backend: qk_dim = %lld, v_dim = %lld need more shared memory than the "
                 "device's %d bytes per block",
                 (long long)d.qk_dim, (long long)d.v_dim, smem_optin);
        // The cap, not this plan's need: plans with other shapes share the kernel.
        gpu::attention_prepare(d.dtype, (size_t)smem_optin);
        if (d.qk_dim == d.v_dim) gpu::attention_mma_prepare(d.dtype, (int)d.qk_dim);

        if (d.mode == SMYRF_MODE_SMYRF) {
            max_cluster_queries_ = (int)((d.q_len + p_.C - 1) / p_.C);
            sort_temp_ = gpu::sort_temp_bytes(p_);
        }
        carve(d_, nullptr, sort_temp_, false, &workspace_);
        carve(d_, nullptr, sort_temp_, true, &backward_workspace_);
        backward_fits_ = gpu::backward_prepare(d.dtype, p_.d, p_.dv, (size_t)smem_optin);
        // Last: a constructor that throws runs no destructor, so nothing may fail after
        // this allocation (or it would leak).
        if (d.mode == SMYRF_MODE_SMYRF) {
            const std::vector<float> dirs = hash_directions(d);
            SMYRF_CUDA(cudaMalloc((void **)&dirs_, dirs.size() * sizeof(float)));
            const cudaError_t e = cudaMemcpy(dirs_, dirs.data(), dirs.size() * sizeof(float),
                                             cudaMemcpyHostToDevice);
            if (e != cudaSuccess) {
                (void)cudaFree(dirs_);
                dirs_ = nullptr;
                gpu::raise(e, "cudaMemcpy(directions)", __FILE__, __LINE__);
            }
        }
    }

    ~CudaBackend() override {
        if (!dirs_) return;
        int previous = -1;
        if (cudaGetDevice(&previous) == cudaSuccess && previous != device_) (void)cudaSetDevice(device_);
        (void)cudaFree(dirs_);
        if (previous >= 0 && previous != device_) (void)cudaSetDevice(previous);
    }

    const char *name() const override { return "cuda"; }
    size_t workspace_size() const override { return workspace_; }
    size_t backward_workspace_size() const override { return backward_workspace_; }

    void execute(const Tensors &t, void *workspace, void *stream) const override {
        with_workspace(workspace, workspace_, stream, [&](void *ws, cudaStream_t s) { run(t, ws, s); });
    }

    void execute_backward(const GradTensors &t, void *workspace, void *stream) const override {
        if (d_.mode == SMYRF_MODE_HYBRID) {
            if (hybrid_backward_warps_ == 0)
                fail(SMYRF_ERR_UNSUPPORTED,
                     "CUDA backend, HYBRID backward: SMYRF_PARAM_BUDGET = %lld and "
                     "SMYRF_PARAM_SUMMARIES = %lld need %zu bytes of shared memory per query; "
                     "the device has %d per block", (long long)d_.budget,
                     (long long)d_.summaries, hybrid_backward_smem_, smem_optin_);
            with_workspace(workspace, backward_workspace_, stream,
                           [&](void *ws, cudaStream_t s) { run_hybrid_backward(t, ws, s); });
            return;
        }
        if (!backward_fits_)
            fail(SMYRF_ERR_UNSUPPORTED,
                 "CUDA backend backward: qk_dim = %lld, v_dim = %lld need %zu bytes of shared "
                 "memory per block, the device has %d", (long long)d_.qk_dim,
                 (long long)d_.v_dim, gpu::backward_smem(p_.d, p_.dv), smem_optin_);
        with_workspace(workspace, backward_workspace_, stream,
                       [&](void *ws, cudaStream_t s) { run_backward(t, ws, s); });
    }

private:
    // HYBRID: the warp scratch must fit shared memory, the segmented sorts int offsets.
    void prepare_hybrid() {
#ifdef SMYRF_CUDA_HYBRID
        hp_ = gpu::make_hybrid_params(d_);
        // Warps per block (one query row or key each) whose scratch fits; 0: not even one.
        auto warps_for = [&](size_t per_warp) {
            for (int warps : {4, 2, 1})
                if ((size_t)warps * per_warp <= (size_t)smem_optin_) return warps;
            return 0;
        };
        hybrid_warps_ = warps_for(gpu::hybrid_warp_smem(p_, hp_));
        if (hybrid_warps_ == 0)
            fail(SMYRF_ERR_UNSUPPORTED,
                 "CUDA backend, HYBRID: SMYRF_PARAM_BUDGET = %lld and SMYRF_PARAM_SUMMARIES = "
                 "%lld need %zu bytes of shared memory per query; the device has %d per block",
                 (long long)d_.budget, (long long)d_.summaries, gpu::hybrid_warp_smem(p_, hp_),
                 smem_optin_);
        if (d_.batch * d_.kv_heads * d_.k_len > INT_MAX)
            fail(SMYRF_ERR_UNSUPPORTED,
                 "CUDA backend, HYBRID: batch * kv_heads * k_len = %lld exceeds 2^31 - 1",
                 (long long)(d_.batch * d_.kv_heads * d_.k_len));
        gpu::hybrid_attention_prepare(d_.dtype, (size_t)smem_optin_);
        hybrid_backward_smem_ = gpu::hybrid_backward_warp_smem(p_, hp_);
        hybrid_backward_warps_ = warps_for(hybrid_backward_smem_);  // 0: refused at execute
        gpu::hybrid_backward_prepare(d_.dtype, (size_t)smem_optin_);
        sort_temp_ = d_.causal ? 0 : gpu::hybrid_sort_temp_bytes(p_);
        carve(d_, nullptr, sort_temp_, false, &workspace_);
        carve(d_, nullptr, sort_temp_, true, &backward_workspace_);
#endif
    }

    // HYBRID backward: the forward's groups again, then the gradients.
    void run_hybrid_backward(const GradTensors &t, void *workspace, cudaStream_t s) const {
#ifdef SMYRF_CUDA_HYBRID
        gpu::HybridWork hw{};
        gpu::HybridGrads hg{};
        const gpu::Work w = carve(d_, workspace, sort_temp_, true, nullptr, &hw, &hg);
        gpu::valid_keys(p_, t.key_mask, w, s);
        gpu::hybrid_groups(p_, hp_, d_.dtype, t.k, t.v, w, hw, s);
        gpu::hybrid_backward(p_, hp_, hybrid_backward_warps_, d_.dtype, t.q, t.k, t.v, t.out,
                             t.lse, t.dout, t.dq, t.dk, t.dv, w, hw, hg, s);
#else
        (void)t, (void)workspace, (void)s;
#endif
    }

    // Runs body(workspace, stream) on this plan's device, on the caller's workspace or one
    // allocated on the stream (cudaMallocAsync / cudaFreeAsync: no host synchronisation).
    template <class Body>
    void with_workspace(void *workspace, size_t bytes, void *stream, Body body) const {
        DeviceScope scope(device_);
        const cudaStream_t s = (cudaStream_t)stream;
        void *own = nullptr;
        if (!workspace) {
            SMYRF_CUDA(cudaMallocAsync(&own, bytes, s));
            workspace = own;
        }
        try {
            body(workspace, s);
        } catch (...) {
            if (own) (void)cudaFreeAsync(own, s);
            throw;
        }
        if (own) SMYRF_CUDA(cudaFreeAsync(own, s));
    }

    // The clusters of every round (stages 1-3), as the forward computes them.
    void clusters(const Tensors &t, const gpu::Work &w, cudaStream_t s, const int32_t **q_sorted,
                  const int32_t **k_sorted) const {
        gpu::valid_keys(p_, t.key_mask, w, s);
        if (d_.mode == SMYRF_MODE_DENSE) return;
        gpu::transform_hash(p_, d_.dtype, t.q, t.k, t.key_mask, dirs_, w, s);
        gpu::sort_clusters(p_, w, s, q_sorted, k_sorted);
    }

    void run_backward(const GradTensors &t, void *workspace, cudaStream_t s) const {
        const gpu::Work w = carve(d_, workspace, sort_temp_, true, nullptr);
        const int32_t *q_sorted = nullptr, *k_sorted = nullptr;
        clusters(Tensors{t.q, t.k, t.v, t.key_mask, nullptr, nullptr}, w, s, &q_sorted, &k_sorted);
        gpu::backward(p_, d_.dtype, d_.mode == SMYRF_MODE_DENSE, q_sorted, k_sorted, t.q, t.k,
                      t.v, t.out, t.lse, t.dout, t.dq, t.dk, t.dv, w, s);
    }

    void run(const Tensors &t, void *workspace, cudaStream_t s) const {
#ifdef SMYRF_CUDA_HYBRID
        if (d_.mode == SMYRF_MODE_HYBRID) {
            gpu::HybridWork hw{};
            const gpu::Work w = carve(d_, workspace, sort_temp_, false, nullptr, &hw);
            gpu::valid_keys(p_, t.key_mask, w, s);
            gpu::hybrid_groups(p_, hp_, d_.dtype, t.k, t.v, w, hw, s);
            gpu::hybrid_attention(p_, hp_, hybrid_warps_, d_.dtype, t.q, t.k, t.v, t.out, t.lse,
                                  w, hw, s);
            return;
        }
#endif
        const gpu::Work w = carve(d_, workspace, sort_temp_, false, nullptr);
        // The tensor-core path when the dtype, dims and the caller's pointers allow it.
        const bool mma = gpu::mma_applies(p_, d_.dtype, t.q, t.k, t.v, t.out);
        if (d_.mode == SMYRF_MODE_DENSE) {
            gpu::dense(p_, d_.dtype, tiles_, mma, t.q, t.k, t.v, t.key_mask, t.out, t.lse, w, s);
            return;
        }
        const int32_t *q_sorted = nullptr, *k_sorted = nullptr;
        clusters(t, w, s, &q_sorted, &k_sorted);
        for (int r = 0; r < p_.R; r++) {
            gpu::AttentionJob job{};
            job.dense = false;
            job.round = r;
            job.last = r == p_.R - 1;
            job.q_sorted = q_sorted;
            job.k_sorted = k_sorted;
            job.max_cluster_queries = max_cluster_queries_;
            if (mma) gpu::attention_mma(p_, d_.dtype, job, t.q, t.k, t.v, t.out, t.lse, w, s);
            else gpu::attention(p_, d_.dtype, tiles_, job, t.q, t.k, t.v, w, s);
        }
        if (!mma) gpu::combine(p_, d_.dtype, t.q, t.k, t.v, t.out, t.lse, w, s);
    }

    Desc d_;
    gpu::Problem p_;
    gpu::Tiles tiles_{};
    int device_ = 0;
    int max_cluster_queries_ = 0;
    bool backward_fits_ = false;
    int smem_optin_ = 0;
    float *dirs_ = nullptr;  // [H][R][d + 2] on the device
    gpu::HybridParams hp_{};
    int hybrid_warps_ = 0, hybrid_backward_warps_ = 0;
    size_t hybrid_backward_smem_ = 0;  // per warp
    size_t sort_temp_ = 0, workspace_ = 0, backward_workspace_ = 0;
};

}  // namespace
}  // namespace gpu

bool cuda_device_available(int64_t device) { return gpu::device_problem(device).empty(); }

std::unique_ptr<Backend> make_cuda_backend(const Desc &d) {
    if (d.mode == SMYRF_MODE_HYBRID) {
        // Not validated on a GPU yet (SMYRF_CUDA_HYBRID): AUTO stays on the CPU; an explicit
        // CUDA request runs it only in a build that opted in, else it fails.
#ifdef SMYRF_CUDA_HYBRID
        if (d.backend == SMYRF_BACKEND_CUDA) return std::make_unique<gpu::CudaBackend>(d);
#endif
        if (d.backend == SMYRF_BACKEND_AUTO) return make_cpu_backend(d);
        fail(SMYRF_ERR_UNSUPPORTED,
             "SMYRF_PARAM_MODE = HYBRID is not implemented by this build's CUDA backend (use "
             "SMYRF_BACKEND_CPU or SMYRF_BACKEND_AUTO; the experimental kernels need the "
             "CMake option SMYRF_CUDA_HYBRID=ON)");
    }
    return std::make_unique<gpu::CudaBackend>(d);
}

}  // namespace smyrf
