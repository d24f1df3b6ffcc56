// HYBRID's band kernels in portable vectors (SSE2 on x86-64, NEON on AArch64), for CPUs
// without AVX2 and FMA: 4 lanes, a 4 x 3 register block. Products and sums round
// separately here.
#include "cpu/hybrid_kernel.hpp"

#include <cstring>

namespace smyrf::cpu::hybrid::portable {
namespace {

struct V {
    typedef float T __attribute__((vector_size(16)));
    static constexpr int W = 4, MR = 4, NV = 3;
    static T fma(T a, T b, T c) { return a * b + c; }
};

}  // namespace

#include "cpu/kernels/hybrid_band.inc"

}  // namespace smyrf::cpu::hybrid::portable
