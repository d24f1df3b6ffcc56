// DENSE mode gradients: not implemented yet; the call is refused as unsupported.
#include "cpu/modes.hpp"

namespace smyrf::cpu {

size_t dense_backward_workspace(const Desc &) { return 0; }

void dense_backward_run(const Desc &, const GradArgs &, void *) {
    fail(SMYRF_ERR_UNSUPPORTED, "the cpu backend has no DENSE-mode backward pass yet");
}

}  // namespace smyrf::cpu
