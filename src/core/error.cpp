#include "core/error.hpp"

#include <cstdarg>
#include <cstdio>

namespace smyrf {

void fail(smyrf_status status, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    throw Error(status, buf);
}

}  // namespace smyrf
