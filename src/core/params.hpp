// Parameters: the raw values a config holds, their names and bounds, and the resolved
// description (Desc) a plan is made from, with every derived value filled in.
#pragma once

#include <smyrf/smyrf.h>

#include <cstdint>

namespace smyrf {

constexpr int kParamCount = SMYRF_PARAM_EXPAND + 1;

struct ParamInfo {
    const char *name;
    int64_t lower, upper, fallback;  // fallback: the value a new config holds
};

// nullptr when p is not a known parameter.
const ParamInfo *param_info(int p);

// The values of a smyrf_config, exactly as the user set them.
struct RawParams {
    int64_t value[kParamCount];
    double scale = 0.0;  // 0 = 1/sqrt(qk_dim)
    RawParams();
};

// Element strides of one 4-D tensor; the innermost dimension has stride 1.
struct Strides {
    int64_t batch, head, token;
};

// A fully resolved, validated problem description. Everything a backend needs.
struct Desc {
    int64_t batch, heads, kv_heads, q_len, k_len, qk_dim, v_dim;
    smyrf_mode mode;
    int64_t n_hashes, q_cluster_size, k_cluster_size;  // k_cluster_size: resolved cap
    bool causal;
    uint64_t seed;
    smyrf_dtype dtype;
    smyrf_backend backend;
    int64_t device, threads;
    smyrf_layout layout;
    int64_t budget, window, summaries, sinks, kmeans_iters, expand;  // HYBRID
    Strides q, k, v, out;
    double scale;

    int64_t group_size() const { return heads / kv_heads; }
    int64_t kv_head_of(int64_t h) const { return h / group_size(); }
    // SMYRF: the number of balanced clusters per round, C = ceil(Nq / cq).
    int64_t n_clusters() const { return (q_len + q_cluster_size - 1) / q_cluster_size; }
    // Key positions i + offset() and before are allowed for query i in causal mode.
    int64_t causal_offset() const { return k_len - q_len; }
    size_t elem_size() const { return dtype == SMYRF_DTYPE_F32 ? 4 : 2; }

    // The resolved value of a parameter, as smyrf_plan_get reports it.
    int64_t get(int p) const;
};

// Checks every combination and derives defaults; throws smyrf::Error on a bad config.
Desc resolve(const RawParams &raw);

// Whether rows of dim elements at strides s, over [batch][heads][len], overlap each other:
// a tensor written with those strides must not (out; dq, dk and dv, which take q's, k's
// and v's, where a forward may read shared rows).
bool rows_overlap(const Strides &s, int64_t batch, int64_t heads, int64_t len, int64_t dim);

}  // namespace smyrf
