// Picks HYBRID's band kernels for the instruction set the tile kernel was picked for.
#include "cpu/hybrid_kernel.hpp"
#include "cpu/tile.hpp"

#include <cstring>

namespace smyrf::cpu::hybrid {

const BandKernels &band_kernels() {
    static const BandKernels chosen = [] {
        const char *isa = tile_kernel_name();
#if defined(SMYRF_X86_KERNELS)
        if (std::strcmp(isa, "avx512") == 0) return BandKernels{avx512::band_scores, avx512::band_values};
        if (std::strcmp(isa, "avx2") == 0) return BandKernels{avx2::band_scores, avx2::band_values};
#endif
        (void)isa;
        return BandKernels{portable::band_scores, portable::band_values};
    }();
    return chosen;
}

}  // namespace smyrf::cpu::hybrid
