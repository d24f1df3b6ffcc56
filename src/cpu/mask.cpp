// Key-padding masks as ascending lists of valid key positions.
#include "cpu/cpu.hpp"

namespace smyrf::cpu {

int64_t valid_keys(const uint8_t *key_mask, int64_t b, int64_t k_len, int32_t *idx) {
    int64_t n = 0;
    const uint8_t *row = key_mask ? key_mask + b * k_len : nullptr;
    for (int64_t j = 0; j < k_len; j++)
        if (!row || row[j]) idx[n++] = (int32_t)j;
    return n;
}

int64_t latest_valid_key(const int32_t *valid, int64_t n_valid, int64_t limit) {
    int64_t lo = 0, hi = n_valid;  // the first index whose position exceeds limit
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (valid[mid] <= limit) lo = mid + 1; else hi = mid;
    }
    return lo > 0 ? valid[lo - 1] : -1;
}

DenseKeys dense_keys_layout(Arena &arena, const Desc &d) {
    DenseKeys k;
    k.positions = arena.take<int32_t>((size_t)d.q_len);
    k.valid = arena.take<int32_t>((size_t)(d.batch * d.k_len));
    k.n_valid = arena.take<int64_t>((size_t)d.batch);
    return k;
}

void dense_keys_fill(const DenseKeys &k, const Desc &d, const uint8_t *key_mask) {
    for (int64_t i = 0; i < d.q_len; i++) k.positions[i] = (int32_t)i;
    for (int64_t b = 0; b < d.batch; b++)
        k.n_valid[b] = valid_keys(key_mask, b, d.k_len, k.valid + b * d.k_len);
}

}  // namespace smyrf::cpu
