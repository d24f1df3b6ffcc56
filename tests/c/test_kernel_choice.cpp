// The kernel the library runs is the one SMYRF_CPU_KERNEL asks for (where this CPU has
// it), and without a request the best this CPU has: the suites rerun with a forced
// kernel (tests/c/CMakeLists.txt) check the lower kernels only if this holds.
#include "cpu/tile.hpp"

#include "common.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// The kernels this CPU can run, best first (cpu/tile.cpp's order).
std::string best_kernel_here() {
#if defined(SMYRF_X86_KERNELS)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2")) return "avx2";
#endif
    return "portable";
}

// -1: not a kernel's name, which caps nothing.
int rank_of(const std::string &name) {
    return name == "avx512" ? 2 : name == "avx2" ? 1 : name == "portable" ? 0 : -1;
}

void chosen_kernel_is_the_requested_one(void **) {
    const char *want = std::getenv("SMYRF_CPU_KERNEL");
    const std::string best = best_kernel_here(), got = smyrf::cpu::tile_kernel_name();
    // A request caps the choice; past what the CPU has, the best it has.
    const int cap = want ? rank_of(want) : -1;
    const std::string expect = cap >= 0 && cap < rank_of(best) ? std::string(want) : best;
    if (got != expect)
        fail_msg("SMYRF_CPU_KERNEL=%s on a CPU whose best kernel is %s: runs %s, want %s",
                 want ? want : "(unset)", best.c_str(), got.c_str(), expect.c_str());
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chosen_kernel_is_the_requested_one),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
