// The CPU backend: fp32 views of the caller's buffers (converting f16/bf16 at the
// edges), then the mode's pipeline.
#include "core/backend.hpp"
#include "core/directions.hpp"
#include "cpu/convert.hpp"
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"

#include <cstdlib>
#include <memory>
#include <vector>

namespace smyrf::cpu {
namespace {

// Contiguous fp32 copies of q, k, v and the fp32 result, when dtype != f32.
struct Staging {
    float *q, *k, *v, *out;
};

Staging staging_layout(Arena &arena, const Desc &d) {
    Staging s{};
    if (d.dtype == SMYRF_DTYPE_F32) return s;
    s.q = arena.take<float>((size_t)(d.batch * d.heads * d.q_len * d.qk_dim));
    s.k = arena.take<float>((size_t)(d.batch * d.kv_heads * d.k_len * d.qk_dim));
    s.v = arena.take<float>((size_t)(d.batch * d.kv_heads * d.k_len * d.v_dim));
    s.out = arena.take<float>((size_t)(d.batch * d.heads * d.q_len * d.v_dim));
    return s;
}

// The same for the backward pass: q, k, v, out, dout in; dq, dk, dv out.
struct GradStaging {
    float *q, *k, *v, *out, *dout, *dq, *dk, *dv;
};

GradStaging grad_staging_layout(Arena &arena, const Desc &d) {
    GradStaging s{};
    if (d.dtype == SMYRF_DTYPE_F32) return s;
    const size_t nq = (size_t)(d.batch * d.heads * d.q_len);
    const size_t nk = (size_t)(d.batch * d.kv_heads * d.k_len);
    s.q = arena.take<float>(nq * d.qk_dim);
    s.k = arena.take<float>(nk * d.qk_dim);
    s.v = arena.take<float>(nk * d.v_dim);
    s.out = arena.take<float>(nq * d.v_dim);
    s.dout = arena.take<float>(nq * d.v_dim);
    s.dq = arena.take<float>(nq * d.qk_dim);
    s.dk = arena.take<float>(nk * d.qk_dim);
    s.dv = arena.take<float>(nk * d.v_dim);
    return s;
}

Strides contiguous(int64_t heads, int64_t len, int64_t dim) {
    return {heads * len * dim, len * dim, dim};
}

// Copies rows between a caller tensor (dtype, strides) and a contiguous fp32 tensor.
void convert_rows(const Desc &d, int64_t heads, int64_t len, int64_t dim, const void *src,
                  Strides ss, float *dst, bool to_f32, void *out_dst, Strides ds) {
    const bool bf16 = d.dtype == SMYRF_DTYPE_BF16;
    parallel_for(d.batch * heads, d.threads, [&](int64_t p, int) {
        const int64_t b = p / heads, h = p % heads;
        for (int64_t n = 0; n < len; n++) {
            if (to_f32) {
                const uint16_t *in = (const uint16_t *)src + b * ss.batch + h * ss.head + n * ss.token;
                float *o = dst + ((b * heads + h) * len + n) * dim;
                for (int64_t c = 0; c < dim; c++) o[c] = bf16 ? bf16_to_f32(in[c]) : f16_to_f32(in[c]);
            } else {
                const float *in = dst + ((b * heads + h) * len + n) * dim;
                uint16_t *o = (uint16_t *)out_dst + b * ds.batch + h * ds.head + n * ds.token;
                for (int64_t c = 0; c < dim; c++) o[c] = bf16 ? f32_to_bf16(in[c]) : f32_to_f16(in[c]);
            }
        }
    });
}

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(const Desc &d) : d_(d) {
        if (d.mode == SMYRF_MODE_SMYRF) directions_ = hash_directions(d);
        Arena sizing;
        staging_layout(sizing, d);
        staging_bytes_ = sizing.used();
        mode_bytes_ = d.mode == SMYRF_MODE_SMYRF  ? smyrf_workspace(d)
                      : d.mode == SMYRF_MODE_DENSE ? dense_workspace(d)
                                                   : hybrid_workspace(d);
        Arena grad_sizing;
        grad_staging_layout(grad_sizing, d);
        grad_staging_bytes_ = grad_sizing.used();
        const size_t grad_mode_bytes = d.mode == SMYRF_MODE_SMYRF  ? smyrf_backward_workspace(d)
                                       : d.mode == SMYRF_MODE_DENSE ? dense_backward_workspace(d)
                                                                    : hybrid_backward_workspace(d);
        backward_bytes_ = grad_staging_bytes_ + grad_mode_bytes;
    }

    const char *name() const override { return "cpu"; }
    size_t workspace_size() const override { return staging_bytes_ + mode_bytes_; }

    void execute(const Tensors &t, void *workspace, void *) const override {
        std::unique_ptr<void, decltype(&std::free)> own(nullptr, &std::free);
        if (!workspace) {
            own.reset(std::aligned_alloc(64, (workspace_size() + 63) & ~(size_t)63));
            if (!own)
                fail(SMYRF_ERR_OUT_OF_MEMORY, "could not allocate a %zu-byte workspace",
                     workspace_size());
            workspace = own.get();
        }
        Arena arena(workspace);
        const Staging s = staging_layout(arena, d_);
        Args a = views(t, s);
        void *mode_ws = (char *)workspace + staging_bytes_;
        switch (d_.mode) {
        case SMYRF_MODE_SMYRF: smyrf_run(d_, a, mode_ws, directions_.data()); break;
        case SMYRF_MODE_DENSE: dense_run(d_, a, mode_ws); break;
        case SMYRF_MODE_HYBRID: hybrid_run(d_, a, mode_ws); break;
        }
        if (s.out)
            convert_rows(d_, d_.heads, d_.q_len, d_.v_dim, nullptr, {}, s.out, false, t.out, d_.out);
    }

    size_t backward_workspace_size() const override { return backward_bytes_; }

    void execute_backward(const GradTensors &t, void *workspace, void *) const override {
        std::unique_ptr<void, decltype(&std::free)> own(nullptr, &std::free);
        if (!workspace && backward_bytes_) {
            own.reset(std::aligned_alloc(64, (backward_bytes_ + 63) & ~(size_t)63));
            if (!own)
                fail(SMYRF_ERR_OUT_OF_MEMORY, "could not allocate a %zu-byte workspace",
                     backward_bytes_);
            workspace = own.get();
        }
        Arena arena(workspace);
        const GradStaging s = grad_staging_layout(arena, d_);
        const GradArgs g = grad_views(t, s);
        void *mode_ws = workspace ? (char *)workspace + grad_staging_bytes_ : nullptr;
        switch (d_.mode) {
        case SMYRF_MODE_SMYRF: smyrf_backward_run(d_, g, mode_ws, directions_.data()); break;
        case SMYRF_MODE_DENSE: dense_backward_run(d_, g, mode_ws); break;
        case SMYRF_MODE_HYBRID: hybrid_backward_run(d_, g, mode_ws); break;
        }
        if (s.dq) {  // f16 / bf16: the fp32 gradients go back in the caller's dtype
            const Desc &d = d_;
            convert_rows(d, d.heads, d.q_len, d.qk_dim, nullptr, {}, s.dq, false, t.dq, d.q);
            convert_rows(d, d.kv_heads, d.k_len, d.qk_dim, nullptr, {}, s.dk, false, t.dk, d.k);
            convert_rows(d, d.kv_heads, d.k_len, d.v_dim, nullptr, {}, s.dv, false, t.dv, d.v);
        }
    }

private:
    Args views(const Tensors &t, const Staging &s) const {
        const Desc &d = d_;
        Args a;
        a.key_mask = t.key_mask;
        a.lse = t.lse;
        if (!s.q) {
            a.q = {(float *)t.q, d.q};
            a.k = {(float *)t.k, d.k};
            a.v = {(float *)t.v, d.v};
            a.out = {(float *)t.out, d.out};
            return a;
        }
        convert_rows(d, d.heads, d.q_len, d.qk_dim, t.q, d.q, s.q, true, nullptr, {});
        convert_rows(d, d.kv_heads, d.k_len, d.qk_dim, t.k, d.k, s.k, true, nullptr, {});
        convert_rows(d, d.kv_heads, d.k_len, d.v_dim, t.v, d.v, s.v, true, nullptr, {});
        a.q = {s.q, contiguous(d.heads, d.q_len, d.qk_dim)};
        a.k = {s.k, contiguous(d.kv_heads, d.k_len, d.qk_dim)};
        a.v = {s.v, contiguous(d.kv_heads, d.k_len, d.v_dim)};
        a.out = {s.out, contiguous(d.heads, d.q_len, d.v_dim)};
        return a;
    }

    // The backward arguments as fp32 views: the caller's buffers, or staged copies.
    GradArgs grad_views(const GradTensors &t, const GradStaging &s) const {
        const Desc &d = d_;
        GradArgs g;
        g.key_mask = t.key_mask;
        g.lse = t.lse;
        if (!s.q) {
            g.q = {(float *)t.q, d.q};
            g.k = {(float *)t.k, d.k};
            g.v = {(float *)t.v, d.v};
            g.out = {(float *)t.out, d.out};
            g.dout = {(float *)t.dout, d.out};
            g.dq = {(float *)t.dq, d.q};
            g.dk = {(float *)t.dk, d.k};
            g.dv = {(float *)t.dv, d.v};
            return g;
        }
        convert_rows(d, d.heads, d.q_len, d.qk_dim, t.q, d.q, s.q, true, nullptr, {});
        convert_rows(d, d.kv_heads, d.k_len, d.qk_dim, t.k, d.k, s.k, true, nullptr, {});
        convert_rows(d, d.kv_heads, d.k_len, d.v_dim, t.v, d.v, s.v, true, nullptr, {});
        convert_rows(d, d.heads, d.q_len, d.v_dim, t.out, d.out, s.out, true, nullptr, {});
        convert_rows(d, d.heads, d.q_len, d.v_dim, t.dout, d.out, s.dout, true, nullptr, {});
        const Strides sq = contiguous(d.heads, d.q_len, d.qk_dim);
        const Strides sk = contiguous(d.kv_heads, d.k_len, d.qk_dim);
        const Strides sv = contiguous(d.kv_heads, d.k_len, d.v_dim);
        const Strides so = contiguous(d.heads, d.q_len, d.v_dim);
        g.q = {s.q, sq};
        g.k = {s.k, sk};
        g.v = {s.v, sv};
        g.out = {s.out, so};
        g.dout = {s.dout, so};
        g.dq = {s.dq, sq};
        g.dk = {s.dk, sk};
        g.dv = {s.dv, sv};
        return g;
    }

    Desc d_;
    std::vector<float> directions_;
    size_t staging_bytes_ = 0, mode_bytes_ = 0, backward_bytes_ = 0, grad_staging_bytes_ = 0;
};

}  // namespace
}  // namespace smyrf::cpu

namespace smyrf {
std::unique_ptr<Backend> make_cpu_backend(const Desc &d) {
    return std::make_unique<cpu::CpuBackend>(d);
}
}  // namespace smyrf
