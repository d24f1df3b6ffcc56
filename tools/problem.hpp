// The attention problems the CLI runs: shapes and their fp32 inputs, BHND layout.
#pragma once

#include "tensor.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace smyrf_cli {

struct Shape {
    int64_t batch = 1, heads = 1, n = 4096, d = 64;  // q_len = k_len = n, v_dim = d
    int64_t elements() const { return batch * heads * n * d; }
};

// Every source of inputs (built-in generator, or a file later) fills this one struct,
// so the commands never care where the numbers came from.
struct Problem {
    Shape shape;
    std::string origin;  // one line saying how the inputs were made
    Tensor q, k, v;
    // Bytes of q, k, v and out together.
    double io_bytes() const { return 4.0 * (double)shape.elements() * 4; }
};

// Deterministic inputs with topic structure so attention is far from uniform: tokens come
// in runs that share a topic; the queries, keys and values of a topic lean towards its
// centres, so a query attends mostly to the keys of its topic, near and far.
Problem clustered_problem(const Shape &shape, uint64_t seed);

// `count` standard normal values from `seed`, by the same generator: the fixed gradient of
// out that bench --backward feeds to smyrf_execute_backward. `what` names them where
// memory runs out.
Tensor normal_values(size_t count, uint64_t seed, const std::string &what);

}  // namespace smyrf_cli
