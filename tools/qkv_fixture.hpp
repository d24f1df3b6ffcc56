// Reads real attention inputs captured from a pre-trained model: the SMYRFQKV format of
// tests/data/minilm_qkv.bin (described in tests/data/README.md).
#pragma once

#include "problem.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace smyrf_cli {

// A file that is missing, truncated or not in the format.
struct FixtureError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Every layer's q, k, v at sequence length n, one Problem per layer (batch 1, all heads),
// converted from binary16 to fp32. Throws FixtureError.
std::vector<Problem> read_qkv_fixture(const std::string &path, int64_t n);

}  // namespace smyrf_cli
