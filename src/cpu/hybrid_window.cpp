// HYBRID step 1: the window of a query, as a range of the pair's valid keys. Both ends
// are non-decreasing in i, so a tile of consecutive queries reads one band of keys.
#include "cpu/hybrid.hpp"

#include <algorithm>

namespace smyrf::cpu::hybrid {

Range window_range(const Desc &d, const Pair &p, int64_t i) {
    const int32_t *v = p.valid;
    const int64_t n = p.n_valid, w = p.window;
    if (d.causal) {
        // The w valid keys at or before the query's limit (without padding: the keys up
        // to it).
        const int64_t limit = i + d.causal_offset();
        const int64_t e = n == d.k_len ? std::clamp<int64_t>(limit + 1, 0, n)
                                       : std::upper_bound(v, v + n, limit) - v;
        return {std::max<int64_t>(0, e - w), e};
    }
    if (w >= n) return {0, n};
    // The w valid keys nearest the centre c_i, ties to the lower position: the first
    // start s whose window is not beaten by the one a step to the right. Without padding
    // (v[u] = u) that start is c - floor(w/2), clamped.
    const int64_t c = (2 * i + 1) * d.k_len / (2 * d.q_len);
    if (n == d.k_len) {
        const int64_t s = std::clamp<int64_t>(c - w / 2, 0, n - w);
        return {s, s + w};
    }
    int64_t lo = 0, hi = n - w;
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (c - v[mid] > v[mid + w] - c) lo = mid + 1; else hi = mid;
    }
    return {lo, lo + w};
}

Columns columns(const Desc &d, const Pair &p, const Range *r, int64_t n) {
    Columns c{r[0].s, std::max<int64_t>(0, r[n - 1].e - r[0].s), 0, {0, 0}, {-1, -1}};
    c.count = c.band;
    if (p.dense) return c;  // the band holds every allowed key
    auto add = [&](int x, int64_t u) {
        if (u >= c.s0 && u < c.s0 + c.band) {
            c.sink_col[x] = u - c.s0;
        } else {
            c.extra[c.count - c.band] = u;
            c.sink_col[x] = c.count++;
        }
    };
    if (d.sinks >= 1) add(0, 0);
    // Causal: the last sink is allowed only for queries whose window already holds it.
    if (d.sinks == 2 && !d.causal && p.n_valid > 1) add(1, p.n_valid - 1);
    return c;
}

}  // namespace smyrf::cpu::hybrid
