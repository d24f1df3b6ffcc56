// Stages 1-2 in one pass over the rows: the norms XBOX+ is built from, and each row's
// projections on the directions (the hash before its XBOX+ coordinate).
#include "cpu/reduce.hpp"
#include "cpu/stages.hpp"

namespace smyrf::cpu {

void transform_project(const View &x, int64_t b, int64_t h, int64_t i0, int64_t i1,
                       int64_t dim, const float *dirs, int64_t rounds, float *norms,
                       float *out) {
    for (int64_t i = i0; i < i1; i++) {
        const float *row = x.row(b, h, i);
        norms[i] = dot_of(row, row, dim);
        for (int64_t r = 0; r < rounds; r++) out[i * rounds + r] = dot_of(row, dirs + r * (dim + 2), dim);
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
