// Timings are only as good as an idle machine: say so when it is not.
#pragma once

#include <string>

namespace smyrf_cli {

// A one-line note when the 1-minute load average is above 0.5 (other work is sharing the
// CPUs, so timings are noisy); "" otherwise or where it cannot be read.
std::string busy_machine_note();

}  // namespace smyrf_cli
