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

}  // namespace

void sort_by_hash(const float *hash, int64_t stride, const int32_t *items, int64_t count,
                  int32_t *sorted, uint32_t *scratch) {
    uint32_t *keys = scratch, *keys_tmp = scratch + count;
    int32_t *items_tmp = (int32_t *)(scratch + 2 * count);
    for (int64_t i = 0; i < count; i++) {
        const int32_t item = items ? items[i] : (int32_t)i;
        sorted[i] = item;
        keys[i] = sortable_bits(hash[item * stride]);
    }
    // Four stable passes of 8 bits; the data ends in (keys, sorted) after an even count.
    for (int shift = 0; shift < 32; shift += 8) {
        int64_t offset[257] = {0};
        for (int64_t i = 0; i < count; i++) offset[((keys[i] >> shift) & 0xff) + 1]++;
        for (int bucket = 0; bucket < 256; bucket++) offset[bucket + 1] += offset[bucket];
        for (int64_t i = 0; i < count; i++) {
            const int64_t at = offset[(keys[i] >> shift) & 0xff]++;
            keys_tmp[at] = keys[i];
            items_tmp[at] = sorted[i];
        }
        std::memcpy(keys, keys_tmp, (size_t)count * sizeof *keys);
        std::memcpy(sorted, items_tmp, (size_t)count * sizeof *sorted);
    }
}

}  // namespace smyrf::cpu
