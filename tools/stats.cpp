#include "stats.hpp"

#include <algorithm>
#include <cmath>

namespace smyrf_cli {
namespace {

double quantile(const std::vector<double> &sorted, double q) {
    const double pos = q * (double)(sorted.size() - 1);
    const size_t lo = (size_t)pos;
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (pos - (double)lo) * (sorted[hi] - sorted[lo]);
}

double slice_error(const float *approx, const float *exact, size_t count) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < count; i++) {
        const double e = exact[i], a = approx[i];
        diff += (a - e) * (a - e);
        norm += e * e;
    }
    return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace

Spread spread_of(std::vector<double> samples) {
    std::sort(samples.begin(), samples.end());
    return {quantile(samples, 0.5), samples.front(), samples.back(), quantile(samples, 0.25),
            quantile(samples, 0.75)};
}

double relative_error(const Tensor &approx, const Tensor &exact) {
    return slice_error(approx.data(), exact.data(), exact.size());
}

double mean_relative_error(const Tensor &approx, const Tensor &exact,
                           size_t parts) {
    const size_t each = exact.size() / parts;
    double sum = 0;
    for (size_t s = 0; s < parts; s++)
        sum += slice_error(approx.data() + s * each, exact.data() + s * each, each);
    return sum / (double)parts;
}

}  // namespace smyrf_cli
