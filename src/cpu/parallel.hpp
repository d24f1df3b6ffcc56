// Threads over independent tasks (the pool of cpu/thread_pool.hpp). A task's result never
// depends on which thread runs it, so outputs are bitwise identical for any thread count.
// Header-only so that no std::function (and no allocation) sits on the execute path.
#pragma once

#include "cpu/thread_pool.hpp"

#include <cstdint>
#include <exception>
#include <mutex>

namespace smyrf::cpu {

// Runs body(task, thread) for task in [0, n) on up to `threads` threads, thread in
// [0, threads), tasks handed out in increasing order (run_tasks). The first exception
// thrown by a task is rethrown after all stop.
template <class Body>
void parallel_for(int64_t n, int64_t threads, const Body &body) {
    if (n <= 0) return;
    const int t = (int)(threads < n ? threads : n);
    if (t <= 1) {
        for (int64_t i = 0; i < n; i++) body(i, 0);
        return;
    }
    struct Call {
        const Body &body;
        std::exception_ptr error;
        std::mutex error_lock;
    } call{body, nullptr, {}};
    run_tasks(n, t, [](const void *ctx, int64_t task, int thread) {
        Call &c = *static_cast<Call *>(const_cast<void *>(ctx));
        try {
            c.body(task, thread);
        } catch (...) {  // an exception must not leave a pool thread
            std::lock_guard<std::mutex> g(c.error_lock);
            if (!c.error) c.error = std::current_exception();
        }
    }, &call);
    if (call.error) std::rethrow_exception(call.error);
}

}  // namespace smyrf::cpu
