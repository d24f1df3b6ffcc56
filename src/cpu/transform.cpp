// Stages 1-2 in one pass over the rows: the norms XBOX+ is built from, and each row's
// projections on the directions (the hash before its XBOX+ coordinate), by the kernel
// of cpu/project_kernel.hpp.
#include "cpu/project_kernel.hpp"
#include "cpu/stages.hpp"

namespace smyrf::cpu {

void transform_project(const View &x, int64_t b, int64_t h, int64_t i0, int64_t i1,
                       int64_t dim, const float *dirs, int64_t rounds, float *norms,
                       float *out) {
    project_kernel()(x.row(b, h, i0), x.s.token, i1 - i0, dim, dirs, rounds, norms + i0,
                     out + i0 * rounds);
}

float max_norm(const float *norms, const uint8_t *mask, int64_t i0, int64_t i1) {
    float mx = 0.0f;
    for (int64_t i = i0; i < i1; i++)
        if ((!mask || mask[i]) && norms[i] > mx) mx = norms[i];
    return mx;
}

}  // namespace smyrf::cpu
