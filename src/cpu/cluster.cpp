// Stage 3: a stable LSD radix sort on the float bits (linear time, NaN-safe), which the
// balanced cut (stages.hpp, cluster_begin) then slices into equal-size clusters.
#include "cpu/stages.hpp"

#include <cstring>
#include <utility>

namespace smyrf::cpu {
namespace {

// Maps float bits to unsigned integers in the float order; NaNs land beyond +-inf by
// sign, so every bit pattern has a fixed place. -0 is +0: equal hashes, so the position
// decides (as with CUB's float keys).
uint32_t sortable_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if (u == 0x80000000u) u = 0;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Three digits of 11, 11 and 10 bits: three passes instead of four of 8 bits, with
// counts of 2048 buckets that stay in L1.
constexpr int kPasses = 3, kDigitBits = 11, kBuckets = 1 << kDigitBits;
uint32_t digit(uint32_t key, int pass) { return (key >> (pass * kDigitBits)) & (kBuckets - 1); }

}  // namespace

void sort_by_hash(const float *hash, int64_t stride, const int32_t *items, int64_t count,
                  int32_t *sorted, uint64_t *scratch) {
    // Each entry is (key << 32 | item): a scatter moves one word, not two.
    uint64_t *entries = scratch, *entries_tmp = scratch + count;
    // Every pass's counts in one read of the keys.
    uint32_t offset[kPasses][kBuckets] = {};
    for (int64_t i = 0; i < count; i++) {
        const int32_t item = items ? items[i] : (int32_t)i;
        const uint32_t key = sortable_bits(hash[item * stride]);
        entries[i] = (uint64_t)key << 32 | (uint32_t)item;
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
    // Stable scatters between the two buffers; the last one writes the items alone.
    for (int p = 0; p < kPasses; p++) {
        uint32_t *at = offset[p];
        for (int64_t i = 0; i < count; i++) {
            const uint64_t e = entries[i];
            const uint32_t slot = at[digit((uint32_t)(e >> 32), p)]++;
            if (p + 1 < kPasses) entries_tmp[slot] = e;
            else sorted[slot] = (int32_t)(uint32_t)e;
        }
        std::swap(entries, entries_tmp);
    }
}

}  // namespace smyrf::cpu
