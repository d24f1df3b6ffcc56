// Every extern "C" entry point: argument checks and the guarded call, nothing else.
#include <smyrf/smyrf.h>

#include "api/guard.hpp"
#include "core/plan.hpp"

#include <cstdio>

using smyrf::fail;
using smyrf::guarded;

namespace {

// A fixed buffer: recording a failure must not allocate (it may be reporting one).
thread_local char t_last_error[512];

void require(const void *p, const char *name) {
    if (!p) fail(SMYRF_ERR_INVALID_ARGUMENT, "%s is NULL", name);
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

bool overlap(Span a, Span b) { return a.begin < b.end && b.begin < a.end; }

void check_no_overlap(Span written, const char *wname, Span read, const char *rname) {
    if (read.begin && overlap(written, read))
        fail(SMYRF_ERR_INVALID_ARGUMENT, "%s overlaps %s: outputs must not alias inputs",
             wname, rname);
}

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
        if (!(scale >= 0.0) || scale > 1e300)  // rejects NaN, negatives and infinities
            fail(SMYRF_ERR_INVALID_ARGUMENT,
                 "scale = %g: must be finite and > 0 (or 0 for 1/sqrt(qk_dim))", scale);
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
    if (!plan) return 0;
    const size_t n = plan->backend->workspace_size();
    return n ? n + 63 : 0;
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
        const size_t need = smyrf_plan_workspace_size(plan);
        if (workspace && workspace_bytes < need)
            fail(SMYRF_ERR_INVALID_ARGUMENT,
                 "workspace_bytes = %zu is below smyrf_plan_workspace_size() = %zu",
                 workspace_bytes, need);
        if (!workspace && workspace_bytes)
            fail(SMYRF_ERR_INVALID_ARGUMENT, "workspace is NULL but workspace_bytes = %zu",
                 workspace_bytes);

        const size_t es = d.elem_size();
        const Span sq = span_of(q, d.q, d.batch, d.heads, d.q_len, d.qk_dim, es);
        const Span sk = span_of(k, d.k, d.batch, d.kv_heads, d.k_len, d.qk_dim, es);
        const Span sv = span_of(v, d.v, d.batch, d.kv_heads, d.k_len, d.v_dim, es);
        const Span so = span_of(out, d.out, d.batch, d.heads, d.q_len, d.v_dim, es);
        const Span sm = key_mask ? span_bytes(key_mask, (size_t)(d.batch * d.k_len)) : Span{};
        const Span sl = lse ? span_bytes(lse, (size_t)(d.batch * d.heads * d.q_len) * 4) : Span{};
        const Span sw = workspace ? span_bytes(workspace, workspace_bytes) : Span{};
        const Span reads[] = {sq, sk, sv, sm};
        const char *read_names[] = {"q", "k", "v", "key_mask"};
        for (int i = 0; i < 4; i++) {
            check_no_overlap(so, "out", reads[i], read_names[i]);
            if (lse) check_no_overlap(sl, "lse", reads[i], read_names[i]);
            if (workspace) check_no_overlap(sw, "workspace", reads[i], read_names[i]);
        }
        if (lse) check_no_overlap(so, "out", sl, "lse");
        if (workspace) {
            check_no_overlap(sw, "workspace", so, "out");
            if (lse) check_no_overlap(sw, "workspace", sl, "lse");
        }

        const smyrf::Tensors t{q, k, v, key_mask, out, lse};
        void *aligned = workspace ? (void *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63)
                                  : nullptr;
        plan->backend->execute(t, aligned, stream);
    });
}

}  // extern "C"
