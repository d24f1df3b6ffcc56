// SMYRF mode gradients: not implemented yet; the call is refused as unsupported.
#include "cpu/modes.hpp"

namespace smyrf::cpu {

size_t smyrf_backward_workspace(const Desc &) { return 0; }

void smyrf_backward_run(const Desc &, const GradArgs &, void *, const float *) {
    fail(SMYRF_ERR_UNSUPPORTED, "the cpu backend has no SMYRF-mode backward pass yet");
}

}  // namespace smyrf::cpu
