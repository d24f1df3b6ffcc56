// Stage 1, XBOX+: the row norms that the asymmetric transform is built from.
#include "cpu/reduce.hpp"
#include "cpu/stages.hpp"

namespace smyrf::cpu {

void transform_norms(const View &x, int64_t b, int64_t h, int64_t i0, int64_t i1, int64_t dim,
                     float *norms) {
    for (int64_t i = i0; i < i1; i++) {
        const float *row = x.row(b, h, i);
        norms[i] = dot_of(row, row, dim);
    }
}

float max_norm(const float *norms, const int32_t *over, int64_t n) {
    float mx = 0.0f;
    for (int64_t t = 0; t < n; t++) {
        const float v = norms[over ? over[t] : t];
        if (v > mx) mx = v;
    }
    return mx;
}

}  // namespace smyrf::cpu
