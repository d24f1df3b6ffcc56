// Stage 3: a stable LSD radix sort on the float bits (linear time, NaN-safe), which the
// balanced cut (stages.hpp, cluster_begin) then slices into equal-size clusters.
#include "cpu/stages.hpp"

#include <cstring>

namespace smyrf::cpu {
namespace {

// Maps float bits to unsigned integers in the float order; NaNs land beyond +-inf by
// sign, so every bit pattern has a fixed place.
uint32_t sortable_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Three digits of 11, 11 and 10 bits: three passes instead of four of 8 bits, with
// counts of 2048 buckets that stay in L1.
constexpr int kPasses = 3, kDigitBits = 11, kBuckets = 1 << kDigitBits;
uint32_t digit(uint32_t key, int pass) { return (key >> (pass * kDigitBits)) & (kBuckets - 1); }

}  // namespace

void sort_by_hash(const float *hash, int64_t stride, const int32_t *items, int64_t count,
                  int32_t *sorted, uint32_t *scratch) {
    uint32_t *keys = scratch, *keys_tmp = scratch + count;
    int32_t *items_tmp = (int32_t *)(scratch + 2 * count);
    // Every pass's counts in one read of the keys.
    uint32_t offset[kPasses][kBuckets] = {};
    for (int64_t i = 0; i < count; i++) {
        const int32_t item = items ? items[i] : (int32_t)i;
        const uint32_t key = sortable_bits(hash[item * stride]);
        items_tmp[i] = item;
        keys_tmp[i] = key;
        for (int p = 0; p < kPasses; p++) offset[p][digit(key, p)]++;
    }
    for (int p = 0; p < kPasses; p++) {  // counts to exclusive prefix sums
        uint32_t at = 0;
        for (int bucket = 0; bucket < kBuckets; bucket++) {
            const uint32_t n = offset[p][bucket];
            offset[p][bucket] = at;
            at += n;
        }
    }
    // Stable scatters between the two buffers: tmp -> out -> tmp -> out, so an odd number
    // of passes ends in (keys, sorted).
    for (int p = 0; p < kPasses; p++) {
        const bool to_out = p % 2 == 0;
        const uint32_t *from_keys = to_out ? keys_tmp : keys;
        const int32_t *from_items = to_out ? items_tmp : sorted;
        uint32_t *to_keys = to_out ? keys : keys_tmp;
        int32_t *to_items = to_out ? sorted : items_tmp;
        uint32_t *at = offset[p];
        for (int64_t i = 0; i < count; i++) {
            const uint32_t key = from_keys[i];
            const uint32_t slot = at[digit(key, p)]++;
            to_keys[slot] = key;
            to_items[slot] = from_items[i];
        }
    }
}

}  // namespace smyrf::cpu
