// The test hook of hybrid_probe.hpp: runs the real group build on one pair.
#include "cpu/hybrid_probe.hpp"

#include "core/plan.hpp"
#include "cpu/hybrid.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

extern "C" int64_t smyrf_hybrid_probe_groups(const smyrf_plan *plan, const float *k,
                                             const float *v, const uint8_t *key_mask,
                                             int64_t b, int64_t hk, int32_t *labels,
                                             int32_t *counts, float *ksum, float *vsum) {
    using namespace smyrf::cpu::hybrid;
    const smyrf::Desc &d = plan->desc;
    if (d.mode != SMYRF_MODE_HYBRID || d.causal || d.dtype != SMYRF_DTYPE_F32 ||
        std::strcmp(plan->backend->name(), "cpu") != 0)
        return -1;
    smyrf::cpu::Arena sizing;
    layout(sizing, d);
    std::vector<double> ws(sizing.used() / sizeof(double) + 8);
    smyrf::cpu::Arena arena(ws.data());
    const Buffers bf = layout(arena, d);
    smyrf::cpu::Args a{};
    a.k = {(float *)k, d.k};
    a.v = {(float *)v, d.v};
    a.key_mask = key_mask;
    build_pairs(d, a, bf, b * d.kv_heads + hk, 1);

    const Pair &p = bf.pairs[0];
    std::fill(labels, labels + d.k_len, -1);
    if (p.groups == 0) return 0;
    for (int64_t u = 0; u < p.n_valid; u++) labels[p.valid[u]] = p.label[u];
    std::copy(p.count, p.count + p.groups, counts);
    std::copy(p.ksum, p.ksum + p.groups * d.qk_dim, ksum);
    std::copy(p.vsum, p.vsum + p.groups * d.v_dim, vsum);
    return p.groups;
}
