#include "cpu/rows.hpp"

#include <cstring>

namespace smyrf::cpu {

Rows rows_of(const View &x, int64_t b, int64_t h, const int32_t *rows, int64_t n, int64_t dim,
             float *dst) {
    int64_t run = 1;
    while (run < n && rows[run] == rows[0] + run) run++;
    if (run == n) return {x.row(b, h, rows[0]), x.s.token};
    // In SMYRF mode rows arrive in hash order, at random positions: prefetching them all
    // first keeps many cache misses in flight instead of one row's at a time.
    for (int64_t t = 0; t < n; t++) {
        const char *row = (const char *)x.row(b, h, rows[t]);
        for (int64_t at = 0; at < dim * (int64_t)sizeof(float); at += 64)
            __builtin_prefetch(row + at);
    }
    for (int64_t t = 0; t < n; t++)
        std::memcpy(dst + t * dim, x.row(b, h, rows[t]), (size_t)dim * sizeof(float));
    return {dst, dim};
}

}  // namespace smyrf::cpu
