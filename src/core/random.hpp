// Counter-based randomness shared by every backend: values are pure functions of
// (seed, indices), never of global state, thread count or run.
#pragma once

#include <cstdint>

namespace smyrf {

// The splitmix64 finaliser (a bijection on 64-bit words).
constexpr uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

}  // namespace smyrf
