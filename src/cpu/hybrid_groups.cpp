// HYBRID step 3: the member counts and key/value sums the summaries are made of. Sums
// are accumulated in float64 in key order and stored in float32.
#include "cpu/hybrid.hpp"

#include <algorithm>

namespace smyrf::cpu::hybrid {

void group_sums(const Desc &d, const Args &a, const Pair &p, int64_t c0, int64_t c1,
                const Scratch &s) {
    const int64_t G = p.groups, dim = d.qk_dim, dv = d.v_dim;
    // Columns [c0, c1) of the keys, or of the values past dim.
    const bool keys = c0 < dim;
    const int64_t x0 = keys ? c0 : c0 - dim, w = c1 - c0, width = keys ? dim : dv;
    std::fill(s.acc, s.acc + G * w, 0.0);
    for (int64_t u = 0; u < p.n_valid; u++) {
        const float *x = (keys ? p.keys + u * dim : a.v.row(p.b, p.hk, p.valid[u])) + x0;
        double *acc = s.acc + p.label[u] * w;
        for (int64_t c = 0; c < w; c++) acc[c] += x[c];
    }
    float *sum = keys ? p.ksum : p.vsum;
    for (int64_t g = 0; g < G; g++)
        for (int64_t c = 0; c < w; c++) sum[g * width + x0 + c] = (float)s.acc[g * w + c];
    if (c0 == 0) {  // one task counts
        std::fill(p.count, p.count + G, 0);
        for (int64_t u = 0; u < p.n_valid; u++) p.count[p.label[u]]++;
    }
}

// Causal positional block g: its members are its valid keys except the first sink,
// which every query with an allowed key holds exactly. pk/pv/pn of valid key u hold the
// sums of the members of u's block at positions before u: a query whose window starts
// at u summarises exactly those.
void block_sums(const Desc &d, const Args &a, const Pair &p, int64_t g, const Scratch &s) {
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    const int32_t *v = p.valid, *end = p.valid + p.n_valid;
    const int64_t u0 = std::lower_bound(v, end, (int32_t)(g * p.block)) - v;
    const int64_t u1 = std::lower_bound(v, end, (int32_t)std::min(d.k_len, (g + 1) * p.block)) - v;
    double *acc = s.acc;
    std::fill(acc, acc + dim + dv, 0.0);
    int32_t n = 0;
    for (int64_t u = u0; u < u1; u++) {
        for (int64_t c = 0; c < dim; c++) p.pk[u * dim + c] = (float)acc[c];
        for (int64_t c = 0; c < dv; c++) p.pv[u * dv + c] = (float)acc[dim + c];
        p.pn[u] = n;
        if (u == 0 && d.sinks >= 1) continue;
        const float *kr = a.k.row(p.b, p.hk, v[u]), *vr = a.v.row(p.b, p.hk, v[u]);
        for (int64_t c = 0; c < dim; c++) acc[c] += kr[c];
        for (int64_t c = 0; c < dv; c++) acc[dim + c] += vr[c];
        n++;
    }
    for (int64_t c = 0; c < dim; c++) p.ksum[g * dim + c] = (float)acc[c];
    for (int64_t c = 0; c < dv; c++) p.vsum[g * dv + c] = (float)acc[dim + c];
    p.count[g] = n;
}

}  // namespace smyrf::cpu::hybrid
