// The plain sliding window, the baseline that HYBRID must beat on real attention: each
// query attends exactly to `keys` consecutive keys centred on it (ALGORITHM.md's window
// rule, shifted inwards at the ends), and to nothing else. The library has no such mode,
// so the tool computes it itself, in float64, as tests/c/test_hybrid_minilm.c does.
#pragma once

#include "problem.hpp"

#include <vector>

namespace smyrf_cli {

// Non-causal, unmasked, scale 1/sqrt(d); out has the layout of p.q.
Tensor sliding_window_attention(const Problem &p, int64_t keys);

}  // namespace smyrf_cli
