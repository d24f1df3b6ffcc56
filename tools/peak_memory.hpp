// Resident memory of this process, from /proc/self (Linux).
#pragma once

namespace smyrf_cli {

// Resets the process's peak RSS (VmHWM) to its current RSS, so that the next reading
// covers only what runs in between. False where the kernel refuses (then VmHWM is the
// peak since the process started).
bool reset_peak_rss();

// VmRSS and VmHWM in MiB; negative when /proc/self/status cannot be read.
double current_rss_mib();
double peak_rss_mib();

}  // namespace smyrf_cli
