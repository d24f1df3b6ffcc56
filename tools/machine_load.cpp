#include "machine_load.hpp"

#include "text_table.hpp"

#include <cstdlib>

namespace smyrf_cli {

std::string busy_machine_note() {
    double load[1];
    if (getloadavg(load, 1) != 1 || load[0] <= 0.5) return "";
    return format("note: load average %.1f before the runs: other work shares the CPUs, so "
                  "the times are noisy",
                  load[0]);
}

}  // namespace smyrf_cli
