// Stages 1-2's row products (cpu/stages.hpp: transform_project), several rows at a time.
// Compiled once per instruction set (cpu/kernels/project.inc), picked once at run time
// with the tile kernels (cpu/tile.hpp); like that header, this one only declares.
#pragma once

#include <cstdint>

namespace smyrf::cpu {

// For the n rows of dim floats at x + i * stride: norms[i] = x_i . x_i and
// out[i * rounds + r] = x_i . a_r over the first dim components of direction r of
// dirs[rounds][dim + 2]. Each is rounded exactly as dot_of (cpu/reduce.hpp) rounds it,
// whatever the kernel: the hashes decide the clusters, so no instruction set, thread
// count or row range may change a bit of them.
//
// dot_of's 8 partial sums per row fill one AVX2 vector, and AVX-512 would leave half of
// each vector idle: CPUs with AVX-512 run the AVX2 kernel (which they all have: the
// AVX-512 kernels are themselves compiled with AVX2 enabled).
using ProjectKernel = void (*)(const float *x, int64_t stride, int64_t n, int64_t dim,
                               const float *dirs, int64_t rounds, float *norms, float *out);
ProjectKernel project_kernel();

namespace avx2 {
void project(const float *x, int64_t stride, int64_t n, int64_t dim, const float *dirs,
             int64_t rounds, float *norms, float *out);
}
namespace portable {
void project(const float *x, int64_t stride, int64_t n, int64_t dim, const float *dirs,
             int64_t rounds, float *norms, float *out);
}

}  // namespace smyrf::cpu
