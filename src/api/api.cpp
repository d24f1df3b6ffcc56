// Every extern "C" entry point: argument checks and the guarded call, nothing else.
#include <smyrf/smyrf.h>

#include "api/guard.hpp"
#include "core/plan.hpp"

#include <cfloat>
#include <cstdio>
#include <initializer_list>

using smyrf::fail;
using smyrf::guarded;

namespace {

// A fixed buffer: recording a failure must not allocate (it may be reporting one).
thread_local char t_last_error[512];

void require(const void *p, const char *name) {
    if (!p) fail(SMYRF_ERR_INVALID_ARGUMENT, "%s is NULL", name);
}

// A tensor given to a call (p: NULL when not given), with the size of its elements.
struct Tensor {
    const void *p;
    size_t elem;
    const char *name;
};

// Elements must sit on their natural alignment: the kernels load them as floats (or
// 16-bit halves), and a C pointer that is not so aligned is undefined.
void require_aligned(std::initializer_list<Tensor> tensors) {
    for (const Tensor &t : tensors)
        if ((uintptr_t)t.p % t.elem)
            fail(SMYRF_ERR_INVALID_ARGUMENT, "%s = %p is not aligned to its %zu-byte elements",
                 t.name, t.p, t.elem);
}

// A gradient written with its input's strides, which a forward may let rows share.
void require_distinct_rows(const smyrf::Strides &s, int64_t b, int64_t h, int64_t n,
                           int64_t dim, const char *grad, const char *input) {
    if (smyrf::rows_overlap(s, b, h, n, dim))
        fail(SMYRF_ERR_INVALID_ARGUMENT,
             "%s is written with the strides of %s (%lld, %lld, %lld), which make its rows "
             "overlap: a plan for the backward pass needs %s strides whose rows do not",
             grad, input, (long long)s.batch, (long long)s.head, (long long)s.token, input);
}

const smyrf::ParamInfo &checked_param(smyrf_param p) {
    const smyrf::ParamInfo *info = smyrf::param_info((int)p);
    if (!info) fail(SMYRF_ERR_INVALID_ARGUMENT, "p = %d is not a smyrf_param", (int)p);
    return *info;
}

// [begin, end) of the bytes a strided [B, H, N, D] tensor touches.
struct Span {
    const char *begin, *end;
};

Span span_of(const void *base, const smyrf::Strides &s, int64_t b, int64_t h, int64_t n,
             int64_t dim, size_t elem) {
    const int64_t last = (b - 1) * s.batch + (h - 1) * s.head + (n - 1) * s.token + dim - 1;
    const char *p = (const char *)base;
    return {p, p + (size_t)(last + 1) * elem};
}

Span span_bytes(const void *base, size_t bytes) {
    return {(const char *)base, (const char *)base + bytes};
}

// A buffer of `bytes` at p must fit the address space, or its span wraps around and
// overlaps nothing.
void require_addressable(const void *p, size_t bytes, const char *name, const char *size_name) {
    if (bytes > UINTPTR_MAX - (uintptr_t)p)
        fail(SMYRF_ERR_INVALID_ARGUMENT,
             "%s = %zu runs past the end of the address space from %s = %p", size_name, bytes,
             name, p);
}

bool overlap(Span a, Span b) { return a.begin < b.end && b.begin < a.end; }

// `why`: the rule broken, for the message.
void check_no_overlap(Span written, const char *wname, Span other, const char *oname,
                      const char *why) {
    if (other.begin && overlap(written, other))
        fail(SMYRF_ERR_INVALID_ARGUMENT, "%s overlaps %s: %s", wname, oname, why);
}

struct Named {
    Span span;
    const char *name;
};

// The byte spans of the four inputs of a call.
struct Spans {
    Named q, k, v, mask;
};

Spans input_spans(const smyrf::Desc &d, const void *q, const void *k, const void *v,
                  const uint8_t *key_mask) {
    const size_t es = d.elem_size();
    return {{span_of(q, d.q, d.batch, d.heads, d.q_len, d.qk_dim, es), "q"},
            {span_of(k, d.k, d.batch, d.kv_heads, d.k_len, d.qk_dim, es), "k"},
            {span_of(v, d.v, d.batch, d.kv_heads, d.k_len, d.v_dim, es), "v"},
            {key_mask ? span_bytes(key_mask, (size_t)(d.batch * d.k_len)) : Span{}, "key_mask"}};
}

size_t lse_bytes(const smyrf::Desc &d) { return (size_t)(d.batch * d.heads * d.q_len) * 4; }

// Every written buffer (a null span: not given) against every read one and the others.
void check_outputs(std::initializer_list<Named> written, std::initializer_list<Named> read) {
    for (const Named &w : written) {
        if (!w.span.begin) continue;
        for (const Named &r : read)
            check_no_overlap(w.span, w.name, r.span, r.name, "outputs must not alias inputs");
        for (const Named &o : written)
            if (&o < &w)
                check_no_overlap(w.span, w.name, o.span, o.name,
                                 "outputs must not overlap each other");
    }
}

void check_workspace(const void *workspace, size_t bytes, size_t need, const char *query) {
    require_addressable(workspace, bytes, "workspace", "workspace_bytes");
    if (workspace && bytes < need)
        fail(SMYRF_ERR_INVALID_ARGUMENT, "workspace_bytes = %zu is below %s = %zu", bytes,
             query, need);
    if (!workspace && bytes)
        fail(SMYRF_ERR_INVALID_ARGUMENT, "workspace is NULL but workspace_bytes = %zu", bytes);
}

// The caller's workspace aligned to 64 bytes (the size queries include the slack).
void *aligned(void *workspace) {
    return workspace ? (void *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63) : nullptr;
}

size_t with_slack(size_t n) { return n ? n + 63 : 0; }

}  // namespace

namespace smyrf {
void set_last_error(const char *message) {
    std::snprintf(t_last_error, sizeof t_last_error, "%s", message);
}
}  // namespace smyrf

extern "C" {

unsigned smyrf_version_number(void) { return SMYRF_VERSION_NUMBER; }

const char *smyrf_status_string(smyrf_status status) {
    switch (status) {
    case SMYRF_OK: return "ok";
    case SMYRF_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SMYRF_ERR_UNSUPPORTED: return "unsupported";
    case SMYRF_ERR_OUT_OF_MEMORY: return "out of memory";
    case SMYRF_ERR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case SMYRF_ERR_DEVICE: return "device error";
    case SMYRF_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *smyrf_last_error_message(void) { return t_last_error; }

smyrf_status smyrf_param_bounds(smyrf_param p, int64_t *lower, int64_t *upper) {
    return guarded([&] {
        const smyrf::ParamInfo &info = checked_param(p);
        require(lower, "lower");
        require(upper, "upper");
        *lower = info.lower;
        *upper = info.upper;
    });
}

const char *smyrf_param_name(smyrf_param p) {
    const smyrf::ParamInfo *info = smyrf::param_info((int)p);
    return info ? info->name : nullptr;
}

smyrf_status smyrf_config_create(smyrf_config **cfg) {
    return guarded([&] {
        require(cfg, "cfg");
        *cfg = new smyrf_config();
    });
}

void smyrf_config_destroy(smyrf_config *cfg) { delete cfg; }

smyrf_status smyrf_config_set(smyrf_config *cfg, smyrf_param p, int64_t value) {
    return guarded([&] {
        require(cfg, "cfg");
        const smyrf::ParamInfo &info = checked_param(p);
        if (value < info.lower || value > info.upper)
            fail(SMYRF_ERR_INVALID_ARGUMENT, "%s = %lld is out of range [%lld, %lld]",
                 info.name, (long long)value, (long long)info.lower, (long long)info.upper);
        cfg->raw.value[p] = value;
    });
}

smyrf_status smyrf_config_get(const smyrf_config *cfg, smyrf_param p, int64_t *value) {
    return guarded([&] {
        require(cfg, "cfg");
        checked_param(p);
        require(value, "value");
        *value = cfg->raw.value[p];
    });
}

smyrf_status smyrf_config_set_scale(smyrf_config *cfg, double scale) {
    return guarded([&] {
        require(cfg, "cfg");
        // The kernels multiply in fp32: a scale must be a positive float, or 0 (NaN fails
        // both comparisons).
        if (!(scale == 0.0 || (scale >= FLT_TRUE_MIN && scale <= FLT_MAX)))
            fail(SMYRF_ERR_INVALID_ARGUMENT,
                 "scale = %g: must be a positive fp32 value, from %g to %g (or 0 for "
                 "1/sqrt(qk_dim))",
                 scale, (double)FLT_TRUE_MIN, (double)FLT_MAX);
        cfg->raw.scale = scale;
    });
}

smyrf_status smyrf_config_get_scale(const smyrf_config *cfg, double *scale) {
    return guarded([&] {
        require(cfg, "cfg");
        require(scale, "scale");
        *scale = cfg->raw.scale;
    });
}

smyrf_status smyrf_plan_create(smyrf_plan **plan, const smyrf_config *cfg) {
    return guarded([&] {
        require(plan, "plan");
        require(cfg, "cfg");
        auto p = std::make_unique<smyrf_plan>();
        p->desc = smyrf::resolve(cfg->raw);
        p->backend = smyrf::make_backend(p->desc);
        *plan = p.release();
    });
}

void smyrf_plan_destroy(smyrf_plan *plan) { delete plan; }

smyrf_status smyrf_plan_get(const smyrf_plan *plan, smyrf_param p, int64_t *value) {
    return guarded([&] {
        require(plan, "plan");
        checked_param(p);
        require(value, "value");
        *value = plan->desc.get(p);
    });
}

smyrf_status smyrf_plan_get_scale(const smyrf_plan *plan, double *scale) {
    return guarded([&] {
        require(plan, "plan");
        require(scale, "scale");
        *scale = plan->desc.scale;
    });
}

// 63 bytes of slack let execute align any caller workspace to 64 bytes.
size_t smyrf_plan_workspace_size(const smyrf_plan *plan) {
    return plan ? with_slack(plan->backend->workspace_size()) : 0;
}

size_t smyrf_plan_backward_workspace_size(const smyrf_plan *plan) {
    return plan ? with_slack(plan->backend->backward_workspace_size()) : 0;
}

const char *smyrf_plan_backend_name(const smyrf_plan *plan) {
    return plan ? plan->backend->name() : "";
}

smyrf_status smyrf_execute(const smyrf_plan *plan, const void *q, const void *k, const void *v,
                           const uint8_t *key_mask, void *out, float *lse, void *workspace,
                           size_t workspace_bytes, void *stream) {
    return guarded([&] {
        require(plan, "plan");
        require(q, "q");
        require(k, "k");
        require(v, "v");
        require(out, "out");
        const smyrf::Desc &d = plan->desc;
        check_workspace(workspace, workspace_bytes, smyrf_plan_workspace_size(plan),
                        "smyrf_plan_workspace_size()");
        const size_t es = d.elem_size();
        require_aligned({{q, es, "q"}, {k, es, "k"}, {v, es, "v"}, {out, es, "out"},
                         {lse, sizeof(float), "lse"}});

        const Spans in = input_spans(d, q, k, v, key_mask);
        const Span so = span_of(out, d.out, d.batch, d.heads, d.q_len, d.v_dim, es);
        const Span sl = lse ? span_bytes(lse, lse_bytes(d)) : Span{};
        const Span sw = workspace ? span_bytes(workspace, workspace_bytes) : Span{};
        check_outputs({{so, "out"}, {sl, "lse"}, {sw, "workspace"}}, {in.q, in.k, in.v, in.mask});

        const smyrf::Tensors t{q, k, v, key_mask, out, lse};
        plan->backend->execute(t, aligned(workspace), stream);
    });
}

smyrf_status smyrf_execute_backward(const smyrf_plan *plan, const void *q, const void *k,
                                    const void *v, const uint8_t *key_mask, const void *out,
                                    const float *lse, const void *dout, void *dq, void *dk,
                                    void *dv, void *workspace, size_t workspace_bytes,
                                    void *stream) {
    return guarded([&] {
        require(plan, "plan");
        const void *pointers[] = {q, k, v, out, lse, dout, dq, dk, dv};
        const char *names[] = {"q", "k", "v", "out", "lse", "dout", "dq", "dk", "dv"};
        for (int i = 0; i < 9; i++) require(pointers[i], names[i]);
        const smyrf::Desc &d = plan->desc;
        check_workspace(workspace, workspace_bytes, smyrf_plan_backward_workspace_size(plan),
                        "smyrf_plan_backward_workspace_size()");
        const size_t es = d.elem_size();
        require_aligned({{q, es, "q"}, {k, es, "k"}, {v, es, "v"}, {out, es, "out"},
                         {lse, sizeof(float), "lse"}, {dout, es, "dout"}, {dq, es, "dq"},
                         {dk, es, "dk"}, {dv, es, "dv"}});
        require_distinct_rows(d.q, d.batch, d.heads, d.q_len, d.qk_dim, "dq", "q");
        require_distinct_rows(d.k, d.batch, d.kv_heads, d.k_len, d.qk_dim, "dk", "k");
        require_distinct_rows(d.v, d.batch, d.kv_heads, d.k_len, d.v_dim, "dv", "v");

        const Spans in = input_spans(d, q, k, v, key_mask);
        const Span so = span_of(out, d.out, d.batch, d.heads, d.q_len, d.v_dim, es);
        const Span sdo = span_of(dout, d.out, d.batch, d.heads, d.q_len, d.v_dim, es);
        const Span sl = span_bytes(lse, lse_bytes(d));
        const Span sdq = span_of(dq, d.q, d.batch, d.heads, d.q_len, d.qk_dim, es);
        const Span sdk = span_of(dk, d.k, d.batch, d.kv_heads, d.k_len, d.qk_dim, es);
        const Span sdv = span_of(dv, d.v, d.batch, d.kv_heads, d.k_len, d.v_dim, es);
        const Span sw = workspace ? span_bytes(workspace, workspace_bytes) : Span{};
        check_outputs({{sdq, "dq"}, {sdk, "dk"}, {sdv, "dv"}, {sw, "workspace"}},
                      {in.q, in.k, in.v, in.mask, {so, "out"}, {sdo, "dout"}, {sl, "lse"}});

        const smyrf::GradTensors t{q, k, v, key_mask, out, lse, dout, dq, dk, dv};
        plan->backend->execute_backward(t, aligned(workspace), stream);
    });
}

}  // extern "C"
