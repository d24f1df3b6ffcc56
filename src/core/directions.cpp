#include "core/directions.hpp"

#include "core/random.hpp"

#include <cmath>

namespace smyrf {

double direction_component(uint64_t seed, uint64_t head, uint64_t round, uint64_t component) {
    const uint64_t a = mix64(mix64(mix64(mix64(seed) ^ head) ^ round) ^ component);
    const uint64_t b = mix64(a ^ 0x9e3779b97f4a7c15ULL);
    // Box-Muller on two 53-bit uniforms; u1 in (0, 1] keeps the logarithm finite.
    const double u1 = (double)((a >> 11) + 1) * 0x1.0p-53;
    const double u2 = (double)(b >> 11) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

std::vector<float> hash_directions(const Desc &d) {
    const int64_t dim = d.qk_dim + 2;
    std::vector<float> dirs((size_t)(d.heads * d.n_hashes * dim));
    size_t at = 0;
    for (int64_t h = 0; h < d.heads; h++)
        for (int64_t r = 0; r < d.n_hashes; r++)
            for (int64_t c = 0; c < dim; c++)
                dirs[at++] = (float)direction_component(d.seed, h, r, c);
    return dirs;
}

}  // namespace smyrf
