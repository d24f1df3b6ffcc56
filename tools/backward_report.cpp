#include "backward_report.hpp"

#include "text_table.hpp"

#include <cmath>

namespace smyrf_cli {

const std::vector<std::string> kBackwardHeaders = {"bwd median ms", "bwd min ms", "bwd max ms",
                                                   "bwd/fwd"};

const char *const kBackwardNote =
    "bwd ms: smyrf_execute_backward, timed as the forward is (same plan and inputs; out and "
    "lse from the\nforward, dout fixed random values). bwd/fwd: its median / the forward's "
    "median.\n";

BackwardReport::BackwardReport(const std::vector<double> &forward_ms,
                               const std::vector<double> &backward_ms)
    : t_(backward_ms.empty() ? Spread{NAN, NAN, NAN, NAN, NAN} : spread_of(backward_ms)),
      ratio_(forward_ms.empty() ? NAN : t_.median / spread_of(forward_ms).median) {}

std::vector<std::string> BackwardReport::cells() const {
    auto num = [](double v, const char *fmt) {
        return std::isfinite(v) ? format(fmt, v) : std::string("-");
    };
    return {num(t_.median, "%.3f"), num(t_.min, "%.3f"), num(t_.max, "%.3f"),
            num(ratio_, "%.2fx")};
}

void BackwardReport::add_to(JsonLine &j) const {
    j.add("backward_median_ms", t_.median).add("backward_min_ms", t_.min)
        .add("backward_max_ms", t_.max).add("backward_ratio", ratio_);
}

}  // namespace smyrf_cli
