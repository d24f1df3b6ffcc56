// Summaries of repeated timings, and the error measure used against DENSE.
#pragma once

#include "tensor.hpp"

#include <cstddef>
#include <vector>

namespace smyrf_cli {

struct Spread {
    double median, min, max, q1, q3;  // q1, q3: quartiles (linear interpolation)
};

Spread spread_of(std::vector<double> samples);  // samples must not be empty

// ||approx - exact|| / ||exact|| (Frobenius), accumulated in double.
double relative_error(const Tensor &approx, const Tensor &exact);

// The same error for each of `parts` equal consecutive slices (one per head), averaged:
// the measure of the table on real attention, where heads differ in scale.
double mean_relative_error(const Tensor &approx, const Tensor &exact,
                           size_t parts);

}  // namespace smyrf_cli
