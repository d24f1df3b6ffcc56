// The CPU backend: fp32 views of the caller's buffers (f16/bf16 tensors are converted
// into the workspace at the edges), then the mode's pipeline.
#include "core/backend.hpp"
#include "core/directions.hpp"
#include "cpu/convert.hpp"
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

namespace smyrf::cpu {
namespace {

// The shape and caller strides of one tensor of a call.
struct Tensor {
    int64_t heads, len, dim;
    Strides s;
};

Tensor q_shape(const Desc &d) { return {d.heads, d.q_len, d.qk_dim, d.q}; }
Tensor k_shape(const Desc &d) { return {d.kv_heads, d.k_len, d.qk_dim, d.k}; }
Tensor v_shape(const Desc &d) { return {d.kv_heads, d.k_len, d.v_dim, d.v}; }
Tensor out_shape(const Desc &d) { return {d.heads, d.q_len, d.v_dim, d.out}; }

// Hands out fp32 views of the call's tensors. For f32 they are the caller's buffers; for
// f16/bf16 they are contiguous fp32 copies in the workspace, converted from the caller's
// inputs at once and into the caller's outputs by finish(). On an Arena that only
// counts (no workspace), it converts nothing: the same calls then size the staging.
class Stager {
public:
    Stager(const Desc &d, Arena &arena) : d_(d), arena_(arena) {}

    View in(const void *p, const Tensor &t) {
        if (d_.dtype == SMYRF_DTYPE_F32) return {(float *)p, t.s};
        float *copy = take(t);
        if (copy)
            convert(t, copy, [&](float *row, int64_t b, int64_t h, int64_t n) {
                const uint16_t *src =
                    (const uint16_t *)p + b * t.s.batch + h * t.s.head + n * t.s.token;
                to_f32_row(d_.dtype, src, row, t.dim);
            });
        return {copy, contiguous(t)};
    }

    View out(void *p, const Tensor &t) {
        if (d_.dtype == SMYRF_DTYPE_F32) return {(float *)p, t.s};
        float *copy = take(t);
        pending_[n_pending_++] = {p, t, copy};
        return {copy, contiguous(t)};
    }

    void finish() {
        for (int i = 0; i < n_pending_; i++) {
            const Pending &o = pending_[i];
            if (o.copy)
                convert(o.t, o.copy, [&](float *row, int64_t b, int64_t h, int64_t n) {
                    uint16_t *dst = (uint16_t *)o.caller + b * o.t.s.batch + h * o.t.s.head +
                                    n * o.t.s.token;
                    from_f32_row(d_.dtype, row, dst, o.t.dim);
                });
        }
    }

private:
    struct Pending {
        void *caller;
        Tensor t;
        float *copy;
    };

    static Strides contiguous(const Tensor &t) {
        return {t.heads * t.len * t.dim, t.len * t.dim, t.dim};
    }
    float *take(const Tensor &t) {
        return arena_.take<float>((size_t)(d_.batch * t.heads * t.len * t.dim));
    }
    // row(the copy's fp32 row, b, h, n) for every row, in parallel over (b, h) and blocks
    // of rows (one head is a whole call's tensor in many models).
    template <class Row>
    void convert(const Tensor &t, float *copy, const Row &row) const {
        constexpr int64_t kRows = 512;
        const int64_t blocks = (t.len + kRows - 1) / kRows;
        parallel_for(d_.batch * t.heads * blocks, d_.threads, [&](int64_t task, int) {
            const int64_t p = task / blocks, n0 = task % blocks * kRows;
            const int64_t b = p / t.heads, h = p % t.heads;
            for (int64_t n = n0; n < std::min(t.len, n0 + kRows); n++)
                row(copy + ((b * t.heads + h) * t.len + n) * t.dim, b, h, n);
        });
    }

    const Desc &d_;
    Arena &arena_;
    Pending pending_[3];
    int n_pending_ = 0;
};

Args forward_args(Stager &st, const Desc &d, const Tensors &t) {
    Args a;
    a.q = st.in(t.q, q_shape(d));
    a.k = st.in(t.k, k_shape(d));
    a.v = st.in(t.v, v_shape(d));
    a.out = st.out(t.out, out_shape(d));
    a.key_mask = t.key_mask;
    a.lse = t.lse;
    return a;
}

GradArgs backward_args(Stager &st, const Desc &d, const GradTensors &t) {
    GradArgs g;
    g.q = st.in(t.q, q_shape(d));
    g.k = st.in(t.k, k_shape(d));
    g.v = st.in(t.v, v_shape(d));
    g.out = st.in(t.out, out_shape(d));
    g.dout = st.in(t.dout, out_shape(d));
    g.dq = st.out(t.dq, q_shape(d));
    g.dk = st.out(t.dk, k_shape(d));
    g.dv = st.out(t.dv, v_shape(d));
    g.key_mask = t.key_mask;
    g.lse = t.lse;
    return g;
}

// The caller's workspace, or one allocated for this call (out of memory reported before
// anything is written).
class Workspace {
public:
    Workspace(void *given, size_t bytes) : base_(given), own_(nullptr, &std::free) {
        if (given || bytes == 0) return;
        own_.reset(std::aligned_alloc(64, (bytes + 63) & ~(size_t)63));
        if (!own_) fail(SMYRF_ERR_OUT_OF_MEMORY, "could not allocate a %zu-byte workspace", bytes);
        base_ = own_.get();
    }
    void *get() const { return base_; }
    void *after(size_t bytes) const { return base_ ? (char *)base_ + bytes : nullptr; }

private:
    void *base_;
    std::unique_ptr<void, decltype(&std::free)> own_;
};

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(const Desc &d) : d_(d) {
        if (d.mode == SMYRF_MODE_SMYRF) directions_ = hash_directions(d);
        Arena sizing, grad_sizing;
        Stager st(d, sizing), grad_st(d, grad_sizing);
        forward_args(st, d, Tensors{});
        backward_args(grad_st, d, GradTensors{});
        staging_bytes_ = sizing.used();
        grad_staging_bytes_ = grad_sizing.used();
        mode_bytes_ = d.mode == SMYRF_MODE_SMYRF  ? smyrf_workspace(d)
                      : d.mode == SMYRF_MODE_DENSE ? dense_workspace(d)
                                                   : hybrid_workspace(d);
        grad_mode_bytes_ = d.mode == SMYRF_MODE_SMYRF  ? smyrf_backward_workspace(d)
                           : d.mode == SMYRF_MODE_DENSE ? dense_backward_workspace(d)
                                                        : hybrid_backward_workspace(d);
    }

    const char *name() const override { return "cpu"; }
    size_t workspace_size() const override { return staging_bytes_ + mode_bytes_; }
    size_t backward_workspace_size() const override {
        return grad_staging_bytes_ + grad_mode_bytes_;
    }

    void execute(const Tensors &t, void *workspace, void *) const override {
        const Workspace ws(workspace, workspace_size());
        Arena arena(ws.get());
        Stager st(d_, arena);
        const Args a = forward_args(st, d_, t);
        void *mode_ws = ws.after(staging_bytes_);
        switch (d_.mode) {
        case SMYRF_MODE_SMYRF: smyrf_run(d_, a, mode_ws, directions_.data()); break;
        case SMYRF_MODE_DENSE: dense_run(d_, a, mode_ws); break;
        case SMYRF_MODE_HYBRID: hybrid_run(d_, a, mode_ws); break;
        }
        st.finish();
    }

    void execute_backward(const GradTensors &t, void *workspace, void *) const override {
        const Workspace ws(workspace, backward_workspace_size());
        Arena arena(ws.get());
        Stager st(d_, arena);
        const GradArgs g = backward_args(st, d_, t);
        void *mode_ws = ws.after(grad_staging_bytes_);
        switch (d_.mode) {
        case SMYRF_MODE_SMYRF: smyrf_backward_run(d_, g, mode_ws, directions_.data()); break;
        case SMYRF_MODE_DENSE: dense_backward_run(d_, g, mode_ws); break;
        case SMYRF_MODE_HYBRID: hybrid_backward_run(d_, g, mode_ws); break;
        }
        st.finish();
    }

private:
    Desc d_;
    std::vector<float> directions_;
    size_t staging_bytes_ = 0, mode_bytes_ = 0, grad_staging_bytes_ = 0, grad_mode_bytes_ = 0;
};

}  // namespace
}  // namespace smyrf::cpu

namespace smyrf {
std::unique_ptr<Backend> make_cpu_backend(const Desc &d) {
    return std::make_unique<cpu::CpuBackend>(d);
}
}  // namespace smyrf
