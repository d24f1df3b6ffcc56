// HYBRID step 1: the window of a query, as a range of the pair's valid keys. Both ends
// are non-decreasing in i, so a tile of consecutive queries reads one band of keys.
#include "cpu/hybrid.hpp"

#include <algorithm>

namespace smyrf::cpu::hybrid {

Range window_range(const Desc &d, const Pair &p, int64_t i) {
    const int32_t *v = p.valid;
    const int64_t n = p.n_valid, w = p.window;
    if (d.causal) {
        // The w valid keys at or before the query's limit.
        const int64_t limit = i + d.causal_offset();
        const int64_t e = std::upper_bound(v, v + n, limit) - v;
        return {std::max<int64_t>(0, e - w), e};
    }
    if (w >= n) return {0, n};
    // The w valid keys nearest the centre c_i, ties to the lower position: the first
    // start s whose window is not beaten by the one a step to the right.
    const int64_t c = (2 * i + 1) * d.k_len / (2 * d.q_len);
    int64_t lo = 0, hi = n - w;
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (c - v[mid] > v[mid + w] - c) lo = mid + 1; else hi = mid;
    }
    return {lo, lo + w};
}

}  // namespace smyrf::cpu::hybrid
