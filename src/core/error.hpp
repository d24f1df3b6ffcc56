// The one way errors travel inside libsmyrf: throw smyrf::Error; the C boundary
// (src/api/guard.hpp) turns it into a status plus the thread's last message.
#pragma once

#include <smyrf/smyrf.h>

#include <exception>
#include <string>

namespace smyrf {

class Error : public std::exception {
public:
    Error(smyrf_status status, std::string message)
        : status_(status), message_(std::move(message)) {}
    smyrf_status status() const noexcept { return status_; }
    const char *what() const noexcept override { return message_.c_str(); }

private:
    smyrf_status status_;
    std::string message_;
};

// printf-style message, thrown as an Error with the given status.
[[noreturn]] void fail(smyrf_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

}  // namespace smyrf
