// Stage 1, XBOX+: the row norms that the asymmetric transform is built from.
#include "cpu/reduce.hpp"
#include "cpu/stages.hpp"

namespace smyrf::cpu {

float transform_norms(const View &x, int64_t b, int64_t h, int64_t n, int64_t dim,
                      const int32_t *over, int64_t n_over, float *norms) {
    for (int64_t i = 0; i < n; i++) {
        const float *row = x.row(b, h, i);
        norms[i] = dot_of(row, row, dim);
    }
    float mx = 0.0f;
    const int64_t count = over ? n_over : n;
    for (int64_t t = 0; t < count; t++) {
        const float v = norms[over ? over[t] : t];
        if (v > mx) mx = v;
    }
    return mx;
}

}  // namespace smyrf::cpu
