// Picks the CPU kernels (the tile kernels forward and backward, HYBRID's band kernels,
// stages 1-2's projections) once, from what the CPU supports (and SMYRF_CPU_KERNEL): one
// instruction set for all, except that AVX-512 CPUs project with the AVX2 kernel
// (cpu/project_kernel.hpp says why).
#include "cpu/hybrid_kernel.hpp"
#include "cpu/project_kernel.hpp"
#include "cpu/tile.hpp"
#include "cpu/tile_backward.hpp"

#include <cstdlib>
#include <cstring>

namespace smyrf::cpu {
namespace {

struct Choice {
    TileKernel kernel;
    GradTileKernel grad;
    hybrid::BandKernels band;
    ProjectKernel project;
    const char *name;
};

Choice choose() {
    const char *want = std::getenv("SMYRF_CPU_KERNEL");
    const auto allowed = [&](const char *name) {
        if (!want || !*want) return true;
        // A request caps the choice: "avx2" allows avx2 and portable.
        static const char *const order[] = {"portable", "avx2", "avx512"};
        int cap = 2, rank = 0;
        for (int i = 0; i < 3; i++) {
            if (std::strcmp(want, order[i]) == 0) cap = i;
            if (std::strcmp(name, order[i]) == 0) rank = i;
        }
        return rank <= cap;
    };
#if defined(SMYRF_X86_KERNELS)
    __builtin_cpu_init();
    const bool fma = __builtin_cpu_supports("fma");
    if (fma && __builtin_cpu_supports("avx512f") && allowed("avx512"))
        return {avx512::tile_attention, avx512::tile_backward,
                {avx512::band_scores, avx512::band_weights, avx512::band_values, avx512::band_grads,
                 avx512::centre_distances},
                avx2::project, "avx512"};
    if (fma && __builtin_cpu_supports("avx2") && allowed("avx2"))
        return {avx2::tile_attention, avx2::tile_backward,
                {avx2::band_scores, avx2::band_weights, avx2::band_values, avx2::band_grads,
                 avx2::centre_distances},
                avx2::project, "avx2"};
#endif
    (void)allowed;
    return {portable::tile_attention, portable::tile_backward,
            {portable::band_scores, portable::band_weights, portable::band_values, portable::band_grads,
             portable::centre_distances},
            portable::project, "portable"};
}

// Chosen as the library loads, before any thread can make a call: a function-local
// static would be set up by the first call, and a fork from another thread at that moment
// would leave the child's copy of its guard taken for good (so every later call of the
// child would wait on it).
const Choice g_chosen = choose();
const Choice &chosen() { return g_chosen; }

}  // namespace

TileKernel tile_kernel() { return chosen().kernel; }
GradTileKernel grad_tile_kernel() { return chosen().grad; }
const char *tile_kernel_name() { return chosen().name; }
ProjectKernel project_kernel() { return chosen().project; }
const hybrid::BandKernels &hybrid::band_kernels() { return chosen().band; }

}  // namespace smyrf::cpu
