// HYBRID mode: not implemented on the CPU backend yet; plans asking for it are refused.
#include "cpu/modes.hpp"

namespace smyrf::cpu {

size_t hybrid_workspace(const Desc &) {
    fail(SMYRF_ERR_UNSUPPORTED, "SMYRF_PARAM_MODE = HYBRID is not implemented by the cpu backend yet");
}

void hybrid_run(const Desc &, const Args &, void *) {
    fail(SMYRF_ERR_UNSUPPORTED, "SMYRF_PARAM_MODE = HYBRID is not implemented by the cpu backend yet");
}

}  // namespace smyrf::cpu
