// The hash directions a_r ~ N(0, I_{d+2}) of every (query head, round), computed once per
// plan on the host so that every backend hashes with the very same fp32 numbers.
#pragma once

#include "core/params.hpp"

#include <vector>

namespace smyrf {

// One standard normal number, a pure function of (seed, head, round, component).
double direction_component(uint64_t seed, uint64_t head, uint64_t round, uint64_t component);

// [heads][n_hashes][qk_dim + 2], row-major.
std::vector<float> hash_directions(const Desc &d);

}  // namespace smyrf
