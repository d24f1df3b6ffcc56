// Threads over independent tasks. A task's result never depends on which thread runs
// it, so outputs are bitwise identical for any thread count. Header-only so that no
// std::function (and no allocation) sits on the execute path.
#pragma once

#include <omp.h>

#include <cstdint>
#include <exception>
#include <mutex>

namespace smyrf::cpu {

// Runs body(task, thread) for task in [0, n) on up to `threads` threads, thread in
// [0, threads). The first exception thrown by a task is rethrown after all stop.
template <class Body>
void parallel_for(int64_t n, int64_t threads, const Body &body) {
    if (n <= 0) return;
    const int t = (int)(threads < n ? threads : n);
    if (t <= 1) {
        for (int64_t i = 0; i < n; i++) body(i, 0);
        return;
    }
    std::exception_ptr error;
    std::mutex error_lock;
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
    for (int64_t i = 0; i < n; i++) {
        try {
            body(i, omp_get_thread_num());
        } catch (...) {  // an exception must not cross the OpenMP region
            std::lock_guard<std::mutex> g(error_lock);
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace smyrf::cpu
