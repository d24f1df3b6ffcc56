#include "peak_memory.hpp"

#include <cstdio>
#include <cstring>

namespace smyrf_cli {
namespace {

double status_field_mib(const char *field) {
    FILE *f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double mib = -1;
    const size_t len = std::strlen(field);
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
            long kib = 0;
            if (std::sscanf(line + len + 1, "%ld", &kib) == 1) mib = kib / 1024.0;
            break;
        }
    std::fclose(f);
    return mib;
}

}  // namespace

bool reset_peak_rss() {
    // "5" in clear_refs resets the peak RSS (Linux >= 4.0).
    FILE *f = std::fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    const bool ok = std::fputs("5", f) >= 0;
    return std::fclose(f) == 0 && ok;
}

double current_rss_mib() { return status_field_mib("VmRSS"); }
double peak_rss_mib() { return status_field_mib("VmHWM"); }

}  // namespace smyrf_cli
