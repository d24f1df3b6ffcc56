// The C boundary: every extern "C" entry runs its body through guarded(), which turns
// exceptions into a status and records the message for smyrf_last_error_message().
#pragma once

#include "core/error.hpp"

#include <new>
#include <string>

namespace smyrf {

void set_last_error(const char *message);

template <class Body>
smyrf_status guarded(Body &&body) noexcept {
    try {
        body();
        return SMYRF_OK;
    } catch (const Error &e) {
        set_last_error(e.what());
        return e.status();
    } catch (const std::bad_alloc &) {
        set_last_error("out of memory");
        return SMYRF_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        set_last_error(e.what());
        return SMYRF_ERR_INTERNAL;
    } catch (...) {
        set_last_error("unknown internal error");
        return SMYRF_ERR_INTERNAL;
    }
}

}  // namespace smyrf
