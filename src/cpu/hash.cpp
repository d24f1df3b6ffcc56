// Stage 2's last step: the XBOX+ coordinate's share of each projection (the rows' own
// share comes from transform_project, in the same pass as their norms).
#include "cpu/stages.hpp"

#include <cmath>

namespace smyrf::cpu {

void hash_extend(int64_t i0, int64_t i1, int64_t dim, const float *norms, float m2,
                 bool is_query, const float *dirs, int64_t rounds, int64_t round, float *out) {
    // The extra coordinate: index dim for keys, dim + 1 for queries.
    const float a = dirs[round * (dim + 2) + (is_query ? dim + 1 : dim)];
    for (int64_t i = i0; i < i1; i++) {
        const float gap = m2 - norms[i];
        out[i * rounds + round] += a * std::sqrt(gap > 0.0f ? gap : 0.0f);
    }
}

}  // namespace smyrf::cpu
