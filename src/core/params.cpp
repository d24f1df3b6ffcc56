#include "core/params.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace smyrf {
namespace {

constexpr int64_t kI32 = INT32_MAX;
constexpr int64_t kI64 = INT64_MAX;

// Indexed by smyrf_param. Dimensions stay below 2^31 so indices fit in int32.
const ParamInfo kParams[kParamCount] = {
    {"SMYRF_PARAM_BATCH", 1, kI32, 1},
    {"SMYRF_PARAM_HEADS", 1, 65536, 1},
    {"SMYRF_PARAM_KV_HEADS", 0, 65536, 0},
    {"SMYRF_PARAM_Q_LEN", 0, kI32, 0},
    {"SMYRF_PARAM_K_LEN", 0, kI32, 0},
    {"SMYRF_PARAM_QK_DIM", 0, 65536, 0},
    {"SMYRF_PARAM_V_DIM", 0, 65536, 0},
    {"SMYRF_PARAM_MODE", SMYRF_MODE_SMYRF, SMYRF_MODE_HYBRID, SMYRF_MODE_SMYRF},
    {"SMYRF_PARAM_N_HASHES", 1, 256, 2},
    {"SMYRF_PARAM_Q_CLUSTER_SIZE", 1, kI32, 64},
    {"SMYRF_PARAM_K_CLUSTER_SIZE", 0, kI32, 0},
    {"SMYRF_PARAM_CAUSAL", 0, 1, 0},
    {"SMYRF_PARAM_SEED", INT64_MIN, kI64, 0},
    {"SMYRF_PARAM_DTYPE", SMYRF_DTYPE_F32, SMYRF_DTYPE_BF16, SMYRF_DTYPE_F32},
    {"SMYRF_PARAM_BACKEND", SMYRF_BACKEND_AUTO, SMYRF_BACKEND_CUDA, SMYRF_BACKEND_AUTO},
    {"SMYRF_PARAM_DEVICE", 0, 1023, 0},
    {"SMYRF_PARAM_THREADS", 0, 1024, 0},
    {"SMYRF_PARAM_LAYOUT", SMYRF_LAYOUT_BHND, SMYRF_LAYOUT_BNHD, SMYRF_LAYOUT_BHND},
    {"SMYRF_PARAM_BUDGET", 0, kI32, 0},
    {"SMYRF_PARAM_WINDOW", 0, kI32, 0},
    {"SMYRF_PARAM_SUMMARIES", 0, kI32, 0},
    {"SMYRF_PARAM_SINKS", -1, 2, -1},
    {"SMYRF_PARAM_KMEANS_ITERS", 0, 1000, 0},
    {"SMYRF_PARAM_Q_STRIDE_BATCH", 0, kI64, 0},
    {"SMYRF_PARAM_Q_STRIDE_HEAD", 0, kI64, 0},
    {"SMYRF_PARAM_Q_STRIDE_TOKEN", 0, kI64, 0},
    {"SMYRF_PARAM_K_STRIDE_BATCH", 0, kI64, 0},
    {"SMYRF_PARAM_K_STRIDE_HEAD", 0, kI64, 0},
    {"SMYRF_PARAM_K_STRIDE_TOKEN", 0, kI64, 0},
    {"SMYRF_PARAM_V_STRIDE_BATCH", 0, kI64, 0},
    {"SMYRF_PARAM_V_STRIDE_HEAD", 0, kI64, 0},
    {"SMYRF_PARAM_V_STRIDE_TOKEN", 0, kI64, 0},
    {"SMYRF_PARAM_OUT_STRIDE_BATCH", 0, kI64, 0},
    {"SMYRF_PARAM_OUT_STRIDE_HEAD", 0, kI64, 0},
    {"SMYRF_PARAM_OUT_STRIDE_TOKEN", 0, kI64, 0},
    {"SMYRF_PARAM_EXPAND", -1, kI32, -1},
};

constexpr int64_t kDefaultBudget = 128;
constexpr int64_t kDefaultSinks = 2;
constexpr int64_t kDefaultKmeansIters = 2;

int64_t checked_mul(int64_t a, int64_t b, const char *what) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        fail(SMYRF_ERR_INVALID_ARGUMENT, "the size of %s overflows a 64-bit integer", what);
    return r;
}

// Element count of a [b, h, n, dim] tensor, checked for overflow (also in bytes).
void check_size(int64_t b, int64_t h, int64_t n, int64_t dim, size_t elem, const char *what) {
    int64_t count = checked_mul(checked_mul(checked_mul(b, h, what), n, what), dim, what);
    checked_mul(count, (int64_t)elem, what);
}

// Strides from the layout, or the three explicit ones (all or none).
Strides resolve_strides(const RawParams &raw, int first, int64_t heads, int64_t len,
                        int64_t dim, size_t elem, smyrf_layout layout, const char *tensor) {
    int64_t sb = raw.value[first], sh = raw.value[first + 1], sn = raw.value[first + 2];
    if (sb == 0 && sh == 0 && sn == 0) {
        if (layout == SMYRF_LAYOUT_BHND) return {heads * len * dim, len * dim, dim};
        return {len * heads * dim, dim, heads * dim};
    }
    if (sb == 0 || sh == 0 || sn == 0)
        fail(SMYRF_ERR_INVALID_ARGUMENT,
             "%s strides: set all three of %s, %s, %s or none of them", tensor,
             kParams[first].name, kParams[first + 1].name, kParams[first + 2].name);
    // Rows of one tensor must not overlap: the kernels read and write whole rows.
    if (sn < dim)
        fail(SMYRF_ERR_INVALID_ARGUMENT, "%s = %lld is below the row length %lld",
             kParams[first + 2].name, (long long)sn, (long long)dim);
    // The largest offset must be addressable, in elements and in bytes.
    int64_t last = 0;
    const int64_t ext[3][2] = {{sb, raw.value[SMYRF_PARAM_BATCH] - 1}, {sh, heads - 1},
                               {sn, len - 1}};
    for (auto &e : ext) {
        int64_t term = checked_mul(e[0], e[1], tensor);
        if (__builtin_add_overflow(last, term, &last))
            fail(SMYRF_ERR_INVALID_ARGUMENT, "the extent of %s overflows", tensor);
    }
    int64_t bytes;
    if (__builtin_add_overflow(last, dim, &last) ||
        __builtin_mul_overflow(last, (int64_t)elem, &bytes))
        fail(SMYRF_ERR_INVALID_ARGUMENT, "the byte extent of %s overflows", tensor);
    return {sb, sh, sn};
}

// The output is written, so its rows must not overlap each other.
void check_out_not_self_overlapping(const Desc &d) {
    if (rows_overlap(d.out, d.batch, d.heads, d.q_len, d.v_dim))
        fail(SMYRF_ERR_INVALID_ARGUMENT,
             "out strides (%lld, %lld, %lld) make output rows overlap",
             (long long)d.out.batch, (long long)d.out.head, (long long)d.out.token);
}

// What SMYRF_PARAM_THREADS = 0 means: the CPUs the process may run on (taskset, a
// container's cpuset), as the affinity mask of the thread creating the plan has them;
// they can be far fewer than the machine has, and more workers than that only take turns
// on them. The machine's count where the mask cannot be read.
int64_t usable_cpus() {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
    const unsigned hw = std::thread::hardware_concurrency();
    return hw ? hw : 1;
}

void resolve_hybrid(const RawParams &raw, Desc &d) {
    int64_t budget = raw.value[SMYRF_PARAM_BUDGET];
    int64_t window = raw.value[SMYRF_PARAM_WINDOW];
    int64_t groups = raw.value[SMYRF_PARAM_SUMMARIES];
    int64_t sinks = raw.value[SMYRF_PARAM_SINKS];
    int64_t expand = raw.value[SMYRF_PARAM_EXPAND];
    if (sinks < 0) sinks = kDefaultSinks;
    const auto round_fifth = [](int64_t b) { return b / 5 + (b % 5 >= 3 ? 1 : 0); };
    if (budget == 0) {
        // Unset: 128 keys per query, unless the window is set; then it is what the parts
        // add up to (summaries unset: as many as for 128), so that the plan reports the
        // keys a query really gets and the dense limit (budget >= valid keys) follows them.
        if (window > 0) {
            if (groups == 0) groups = round_fifth(kDefaultBudget);
            budget = window + sinks + groups + std::max<int64_t>(expand, 0);
        } else {
            budget = kDefaultBudget;
        }
        const ParamInfo &bi = *param_info(SMYRF_PARAM_BUDGET);
        if (budget > bi.upper)  // a plan reports it: it must be a value the parameter takes
            fail(SMYRF_ERR_INVALID_ARGUMENT,
                 "HYBRID: the budget derived from window %lld + sinks %lld + summaries %lld "
                 "+ expand %lld is %lld, above SMYRF_PARAM_BUDGET's bound %lld",
                 (long long)window, (long long)sinks, (long long)groups,
                 (long long)std::max<int64_t>(expand, 0), (long long)budget,
                 (long long)bi.upper);
    }
    if (groups == 0) groups = round_fifth(budget);
    if (groups < 1) groups = 1;
    // Derived expansion: round(B/3) (measured: docs/hybrid-notes.md), leaving a window of
    // at least one key; none when the window is set, so that w + S + G keeps its meaning.
    if (expand < 0)
        expand = window > 0 ? 0
                            : std::clamp<int64_t>(budget / 3 + (budget % 3 == 2 ? 1 : 0), 0,
                                                  std::max<int64_t>(0, budget - groups - sinks - 1));
    if (window == 0) window = budget - groups - sinks - expand;
    if (window < 1)
        fail(SMYRF_ERR_INVALID_ARGUMENT,
             "HYBRID: the window derived from SMYRF_PARAM_BUDGET = %lld is %lld (budget - "
             "summaries %lld - sinks %lld - expand %lld); it must be at least 1: raise the "
             "budget",
             (long long)budget, (long long)window, (long long)groups, (long long)sinks,
             (long long)expand);
    if (window + sinks + groups + expand > budget)
        fail(SMYRF_ERR_INVALID_ARGUMENT,
             "HYBRID: window %lld + sinks %lld + summaries %lld + expand %lld exceeds "
             "SMYRF_PARAM_BUDGET = %lld",
             (long long)window, (long long)sinks, (long long)groups, (long long)expand,
             (long long)budget);
    d.budget = budget;
    d.window = window;
    d.summaries = groups;
    d.sinks = sinks;
    d.expand = expand;
    d.kmeans_iters = raw.value[SMYRF_PARAM_KMEANS_ITERS] ? raw.value[SMYRF_PARAM_KMEANS_ITERS]
                                                          : kDefaultKmeansIters;
}

}  // namespace

const ParamInfo *param_info(int p) {
    return (p >= 0 && p < kParamCount) ? &kParams[p] : nullptr;
}

RawParams::RawParams() {
    for (int p = 0; p < kParamCount; p++) value[p] = kParams[p].fallback;
}

bool rows_overlap(const Strides &s, int64_t batch, int64_t heads, int64_t len, int64_t dim) {
    // With the three strides sorted, each must step over everything inside it: the
    // extent of the inner dimensions, from their first element to one past their last
    // (not stride * count, which also counts the gap after the last row and refused
    // views whose last row ends right where the next head or batch begins).
    struct Dim { int64_t stride, count; } dims[3] = {
        {s.batch, batch}, {s.head, heads}, {s.token, len}};
    for (int i = 0; i < 3; i++)  // insertion sort by stride
        for (int j = i; j > 0 && dims[j].stride < dims[j - 1].stride; j--) {
            Dim t = dims[j]; dims[j] = dims[j - 1]; dims[j - 1] = t;
        }
    int64_t inner = dim;  // span of everything inside the current dimension
    for (const Dim &dm : dims) {
        if (dm.count == 1) continue;
        if (dm.stride < inner) return true;
        inner += dm.stride * (dm.count - 1);  // resolve_strides checked it fits
    }
    return false;
}

Desc resolve(const RawParams &raw) {
    const int64_t *v = raw.value;
    Desc d{};
    d.batch = v[SMYRF_PARAM_BATCH];
    d.heads = v[SMYRF_PARAM_HEADS];
    d.kv_heads = v[SMYRF_PARAM_KV_HEADS] ? v[SMYRF_PARAM_KV_HEADS] : d.heads;
    d.q_len = v[SMYRF_PARAM_Q_LEN];
    d.k_len = v[SMYRF_PARAM_K_LEN] ? v[SMYRF_PARAM_K_LEN] : d.q_len;
    d.qk_dim = v[SMYRF_PARAM_QK_DIM];
    d.v_dim = v[SMYRF_PARAM_V_DIM] ? v[SMYRF_PARAM_V_DIM] : d.qk_dim;
    if (d.q_len < 1) fail(SMYRF_ERR_INVALID_ARGUMENT, "SMYRF_PARAM_Q_LEN is not set (must be >= 1)");
    if (d.qk_dim < 1) fail(SMYRF_ERR_INVALID_ARGUMENT, "SMYRF_PARAM_QK_DIM is not set (must be >= 1)");
    if (d.kv_heads > d.heads)  // first: it would also fail the next check, less clearly
        fail(SMYRF_ERR_INVALID_ARGUMENT, "SMYRF_PARAM_KV_HEADS = %lld exceeds SMYRF_PARAM_HEADS = %lld",
             (long long)d.kv_heads, (long long)d.heads);
    if (d.heads % d.kv_heads != 0)
        fail(SMYRF_ERR_INVALID_ARGUMENT,
             "SMYRF_PARAM_KV_HEADS = %lld does not divide SMYRF_PARAM_HEADS = %lld",
             (long long)d.kv_heads, (long long)d.heads);

    d.mode = (smyrf_mode)v[SMYRF_PARAM_MODE];
    d.n_hashes = v[SMYRF_PARAM_N_HASHES];
    d.q_cluster_size = v[SMYRF_PARAM_Q_CLUSTER_SIZE];
    if (d.q_cluster_size > d.q_len) d.q_cluster_size = d.q_len;  // one cluster
    d.causal = v[SMYRF_PARAM_CAUSAL] != 0;
    d.seed = (uint64_t)v[SMYRF_PARAM_SEED];
    d.dtype = (smyrf_dtype)v[SMYRF_PARAM_DTYPE];
    d.backend = (smyrf_backend)v[SMYRF_PARAM_BACKEND];
    d.device = v[SMYRF_PARAM_DEVICE];
    d.threads = v[SMYRF_PARAM_THREADS];
    if (d.threads == 0) d.threads = usable_cpus();
    d.layout = (smyrf_layout)v[SMYRF_PARAM_LAYOUT];

    // Balanced cut: the largest key cluster holds ceil(Nk / C) keys.
    const int64_t keys_per_cluster = (d.k_len + d.n_clusters() - 1) / d.n_clusters();
    d.k_cluster_size = v[SMYRF_PARAM_K_CLUSTER_SIZE] ? v[SMYRF_PARAM_K_CLUSTER_SIZE]
                                                    : keys_per_cluster;
    if (d.mode == SMYRF_MODE_SMYRF && d.k_cluster_size < keys_per_cluster)
        fail(SMYRF_ERR_INVALID_ARGUMENT,
             "SMYRF_PARAM_K_CLUSTER_SIZE = %lld is below ceil(k_len / clusters) = "
             "ceil(%lld / %lld) = %lld: raise it or SMYRF_PARAM_Q_CLUSTER_SIZE",
             (long long)d.k_cluster_size, (long long)d.k_len, (long long)d.n_clusters(),
             (long long)keys_per_cluster);

    if (d.mode == SMYRF_MODE_HYBRID) resolve_hybrid(raw, d);

    const size_t es = d.elem_size();
    check_size(d.batch, d.heads, d.q_len, d.qk_dim, es, "q");
    check_size(d.batch, d.kv_heads, d.k_len, d.qk_dim, es, "k");
    check_size(d.batch, d.kv_heads, d.k_len, d.v_dim, es, "v");
    check_size(d.batch, d.heads, d.q_len, d.v_dim, es, "out");
    check_size(d.batch, d.heads, d.q_len, 1, sizeof(float), "lse");
    d.q = resolve_strides(raw, SMYRF_PARAM_Q_STRIDE_BATCH, d.heads, d.q_len, d.qk_dim, es, d.layout, "q");
    d.k = resolve_strides(raw, SMYRF_PARAM_K_STRIDE_BATCH, d.kv_heads, d.k_len, d.qk_dim, es, d.layout, "k");
    d.v = resolve_strides(raw, SMYRF_PARAM_V_STRIDE_BATCH, d.kv_heads, d.k_len, d.v_dim, es, d.layout, "v");
    d.out = resolve_strides(raw, SMYRF_PARAM_OUT_STRIDE_BATCH, d.heads, d.q_len, d.v_dim, es, d.layout, "out");
    check_out_not_self_overlapping(d);

    d.scale = raw.scale > 0 ? raw.scale : 1.0 / std::sqrt((double)d.qk_dim);
    return d;
}

int64_t Desc::get(int p) const {
    switch (p) {
    case SMYRF_PARAM_BATCH: return batch;
    case SMYRF_PARAM_HEADS: return heads;
    case SMYRF_PARAM_KV_HEADS: return kv_heads;
    case SMYRF_PARAM_Q_LEN: return q_len;
    case SMYRF_PARAM_K_LEN: return k_len;
    case SMYRF_PARAM_QK_DIM: return qk_dim;
    case SMYRF_PARAM_V_DIM: return v_dim;
    case SMYRF_PARAM_MODE: return mode;
    case SMYRF_PARAM_N_HASHES: return n_hashes;
    case SMYRF_PARAM_Q_CLUSTER_SIZE: return q_cluster_size;
    case SMYRF_PARAM_K_CLUSTER_SIZE: return k_cluster_size;
    case SMYRF_PARAM_CAUSAL: return causal;
    case SMYRF_PARAM_SEED: return (int64_t)seed;
    case SMYRF_PARAM_DTYPE: return dtype;
    case SMYRF_PARAM_BACKEND: return backend;
    case SMYRF_PARAM_DEVICE: return device;
    case SMYRF_PARAM_THREADS: return threads;
    case SMYRF_PARAM_LAYOUT: return layout;
    case SMYRF_PARAM_BUDGET: return budget;
    case SMYRF_PARAM_WINDOW: return window;
    case SMYRF_PARAM_SUMMARIES: return summaries;
    case SMYRF_PARAM_SINKS: return sinks;
    case SMYRF_PARAM_KMEANS_ITERS: return kmeans_iters;
    case SMYRF_PARAM_Q_STRIDE_BATCH: return q.batch;
    case SMYRF_PARAM_Q_STRIDE_HEAD: return q.head;
    case SMYRF_PARAM_Q_STRIDE_TOKEN: return q.token;
    case SMYRF_PARAM_K_STRIDE_BATCH: return k.batch;
    case SMYRF_PARAM_K_STRIDE_HEAD: return k.head;
    case SMYRF_PARAM_K_STRIDE_TOKEN: return k.token;
    case SMYRF_PARAM_V_STRIDE_BATCH: return v.batch;
    case SMYRF_PARAM_V_STRIDE_HEAD: return v.head;
    case SMYRF_PARAM_V_STRIDE_TOKEN: return v.token;
    case SMYRF_PARAM_OUT_STRIDE_BATCH: return out.batch;
    case SMYRF_PARAM_OUT_STRIDE_HEAD: return out.head;
    case SMYRF_PARAM_OUT_STRIDE_TOKEN: return out.token;
    case SMYRF_PARAM_EXPAND: return expand;
    default: fail(SMYRF_ERR_INVALID_ARGUMENT, "p = %d is not a smyrf_param", p);
    }
}

}  // namespace smyrf
