#include "sliding_window.hpp"

#include <algorithm>
#include <cmath>

namespace smyrf_cli {

Tensor sliding_window_attention(const Problem &p, int64_t keys) {
    const int64_t n = p.shape.n, d = p.shape.d, b = std::min(keys, n);
    const double root_d = std::sqrt((double)d);  // divide, as the test does: same bits
    Tensor out(p.q.size());
    std::vector<double> logits(b), acc(d);
    for (int64_t h = 0; h < p.shape.batch * p.shape.heads; h++) {
        const size_t base = (size_t)(h * n * d);
        for (int64_t i = 0; i < n; i++) {
            const int64_t lo = std::clamp(i - b / 2, (int64_t)0, n - b);
            const float *q = &p.q[base + i * d];
            double top = -INFINITY;
            for (int64_t j = 0; j < b; j++) {
                const float *k = &p.k[base + (lo + j) * d];
                double dot = 0;
                for (int64_t c = 0; c < d; c++) dot += (double)q[c] * k[c];
                logits[j] = dot / root_d;
                top = std::max(top, logits[j]);
            }
            double z = 0;
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t j = 0; j < b; j++) {
                const double w = std::exp(logits[j] - top);
                const float *v = &p.v[base + (lo + j) * d];
                z += w;
                for (int64_t c = 0; c < d; c++) acc[c] += w * v[c];
            }
            for (int64_t c = 0; c < d; c++) out[base + i * d + c] = (float)(acc[c] / z);
        }
    }
    return out;
}

}  // namespace smyrf_cli
