// HYBRID step 3: the member counts and key/value sums the summaries are made of. Sums
// are accumulated in float64 in key order and stored in float32.
#include "cpu/hybrid.hpp"

#include <algorithm>

namespace smyrf::cpu::hybrid {
namespace {

SMYRF_VECTOR_CLONES  // of this file alone (cpu.hpp)
void sums_of_chunk(const Desc &d, const Args &a, const Pair &p, int64_t c, bool values) {
    const int64_t G = p.groups, dim = d.qk_dim, dv = d.v_dim, width = dim + dv;
    double *part = p.partial + c * G * width;
    int32_t *part_n = p.partial_n + c * G;
    std::fill(part, part + G * width, 0.0);
    std::fill(part_n, part_n + G, 0);
    const int64_t u0 = c * p.n_valid / kSumChunks, u1 = (c + 1) * p.n_valid / kSumChunks;
    for (int64_t u = u0; u < u1; u++) {
        const int32_t g = p.label[u];
        double *acc = part + g * width;
        const float *k = p.keys + u * p.ldk;
        part_n[g]++;
        for (int64_t x = 0; x < dim; x++) acc[x] += k[x];
        if (!values) continue;
        const float *v = a.v.row(p.b, p.hk, p.valid[u]);
        for (int64_t x = 0; x < dv; x++) acc[dim + x] += v[x];
    }
}

}  // namespace

void chunk_sums(const Desc &d, const Args &a, const Pair &p, int64_t c, bool values) {
    sums_of_chunk(d, a, p, c, values);
}

double chunk_total(const Desc &d, const Pair &p, int64_t g, int64_t x) {
    const int64_t width = d.qk_dim + d.v_dim;
    double total = 0.0;
    for (int64_t c = 0; c < kSumChunks; c++) total += p.partial[(c * p.groups + g) * width + x];
    return total;
}

void group_totals(const Desc &d, const Pair &p) {
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    for (int64_t g = 0; g < p.groups; g++) {
        int32_t n = 0;
        for (int64_t c = 0; c < kSumChunks; c++) n += p.partial_n[c * p.groups + g];
        p.count[g] = n;
        for (int64_t x = 0; x < dim; x++) p.ksum[g * dim + x] = (float)chunk_total(d, p, g, x);
        for (int64_t x = 0; x < dv; x++) p.vsum[g * dv + x] = (float)chunk_total(d, p, g, dim + x);
    }
}

void group_members(const Pair &p) {
    int32_t *start = p.member_start;
    start[0] = 0;
    for (int64_t g = 0; g < p.groups; g++) start[g + 1] = start[g] + p.count[g];
    for (int64_t u = 0; u < p.n_valid; u++) p.members[start[p.label[u]]++] = (int32_t)u;
    for (int64_t g = p.groups; g > 0; g--) start[g] = start[g - 1];  // back to the starts
    start[0] = 0;
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
