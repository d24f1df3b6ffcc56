// ShareClaims (cpu/parallel.hpp): each share's remaining items in one atomic word, so
// that one compare-and-swap claims an item from either end.
#include "cpu/parallel.hpp"

namespace smyrf::cpu {

ShareClaims::ShareClaims(int64_t n, int64_t shares) : n_(n), shares_(shares) {
    for (int64_t s = 0; s < shares; s++)
        range_[s].store((uint64_t)(first(s + 1) - first(s)), std::memory_order_relaxed);
}

bool ShareClaims::take(int64_t s, bool front, int64_t &item) {
    uint64_t word = range_[s].load(std::memory_order_relaxed);
    for (;;) {
        const uint64_t begin = word >> 32, end = word & 0xffffffffu;
        if (begin >= end) return false;
        const uint64_t left = front ? (begin + 1) << 32 | end : begin << 32 | (end - 1);
        if (range_[s].compare_exchange_weak(word, left, std::memory_order_relaxed)) {
            item = first(s) + (int64_t)(front ? begin : end - 1);
            return true;
        }
    }
}

int64_t ShareClaims::claim(int64_t s) {
    int64_t item;
    if (take(s, true, item)) return item;
    for (int64_t k = 1; k < shares_; k++)
        if (take((s + k) % shares_, false, item)) return item;
    return -1;
}

}  // namespace smyrf::cpu
