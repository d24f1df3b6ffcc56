// Stage 2's last step: the XBOX+ coordinate's share of each projection (the rows' own
// share comes from transform_project, in the same pass as their norms).
#include "cpu/stages.hpp"

#include <algorithm>
#include <cmath>

namespace smyrf::cpu {
namespace {

SMYRF_VECTOR_CLONES  // of this file alone (cpu.hpp)
void extend(int64_t i0, int64_t i1, int64_t dim, const float *norms, float m2, bool is_query,
            const float *dirs, int64_t rounds, int64_t round, float *out) {
    // The extra coordinate: index dim for keys, dim + 1 for queries.
    const float a = dirs[round * (dim + 2) + (is_query ? dim + 1 : dim)];
    // The square roots a block at a time, apart from the strided adds, so that they
    // vectorise.
    constexpr int64_t kBlock = 256;
    float coord[kBlock];
    for (int64_t b0 = i0; b0 < i1; b0 += kBlock) {
        const int64_t n = std::min(kBlock, i1 - b0);
        for (int64_t j = 0; j < n; j++) {
            const float gap = m2 - norms[b0 + j];
            coord[j] = std::sqrt(gap > 0.0f ? gap : 0.0f);
        }
        for (int64_t j = 0; j < n; j++) out[(b0 + j) * rounds + round] += a * coord[j];
    }
}

}  // namespace

void hash_extend(int64_t i0, int64_t i1, int64_t dim, const float *norms, float m2,
                 bool is_query, const float *dirs, int64_t rounds, int64_t round, float *out) {
    extend(i0, i1, dim, norms, m2, is_query, dirs, rounds, round, out);
}

}  // namespace smyrf::cpu
