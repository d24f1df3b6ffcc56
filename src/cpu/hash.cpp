// Stage 2: projections of the XBOX+-extended rows on the seeded directions, all rounds
// in one GEMM.
#include "cpu/blas.hpp"
#include "cpu/stages.hpp"

#include <cmath>

namespace smyrf::cpu {

void hash_project(const View &x, int64_t b, int64_t h, int64_t i0, int64_t i1, int64_t dim,
                  const float *norms, float m2, bool is_query, const float *dirs,
                  int64_t rounds, float *out) {
    const int64_t ld = dim + 2;
    gemm_nt(i1 - i0, rounds, dim, 1.0f, x.row(b, h, i0), x.s.token, dirs, ld, 0.0f,
            out + i0 * rounds, rounds);
    // The extra coordinate: index dim for keys, dim + 1 for queries.
    const int64_t extra = is_query ? dim + 1 : dim;
    for (int64_t i = i0; i < i1; i++) {
        const float gap = m2 - norms[i];
        const float ext = std::sqrt(gap > 0.0f ? gap : 0.0f);
        for (int64_t r = 0; r < rounds; r++) out[i * rounds + r] += dirs[r * ld + extra] * ext;
    }
}

}  // namespace smyrf::cpu
