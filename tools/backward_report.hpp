// bench --backward's figures of one row, the same in the sweep and the fixture reports:
// smyrf_execute_backward's median, min and max, and its median over the forward's.
#pragma once

#include "json_line.hpp"
#include "stats.hpp"

#include <string>
#include <vector>

namespace smyrf_cli {

// The table columns, after the forward's, and the note under such a table.
extern const std::vector<std::string> kBackwardHeaders;
extern const char *const kBackwardNote;

class BackwardReport {
public:
    // Either list may be empty (not timed, failed, skipped): the figures are then NaN.
    BackwardReport(const std::vector<double> &forward_ms, const std::vector<double> &backward_ms);
    std::vector<std::string> cells() const;  // "-" for a figure that is missing
    // backward_median_ms, backward_min_ms, backward_max_ms, backward_ratio (null if missing)
    void add_to(JsonLine &j) const;

private:
    Spread t_;
    double ratio_;
};

}  // namespace smyrf_cli
