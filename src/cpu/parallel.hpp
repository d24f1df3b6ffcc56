// Threads over independent tasks (the pool of cpu/thread_pool.hpp). A task's result never
// depends on which thread runs it, so outputs are bitwise identical for any thread count.
// Header-only so that no std::function (and no allocation) sits on the execute path.
#pragma once

#include "cpu/thread_pool.hpp"

#include <atomic>
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

// Items [0, n) in `shares` even, contiguous shares, one per thread. Each owner takes its
// own share from the front, one item at a time, then the others' from the back, so that
// all finish together while neighbouring items (neighbouring rows, in HYBRID) mostly run
// in order on one thread, and a thread can know its next item before it starts the
// current one (SMYRF loads that cluster's rows meanwhile, cpu/smyrf_clusters.hpp).
class ShareClaims {
public:
    static constexpr int64_t kMaxShares = 1024;  // SMYRF_PARAM_THREADS' bound
    // The shares for n items on `threads` threads: one per thread, at most one per item.
    static int64_t shares_for(int64_t n, int64_t threads) {
        const int64_t t = threads < n ? threads : n;
        return t < kMaxShares ? t : kMaxShares;
    }
    // Items [0, n) in `shares` even, contiguous shares (n / shares < 2^32).
    ShareClaims(int64_t n, int64_t shares);
    // The next item for the owner of share s: the front of its own share, else the back
    // of another's; -1 when none is left.
    int64_t claim(int64_t s);

private:
    bool take(int64_t s, bool front, int64_t &item);
    int64_t n_, shares_;
    // Share s: items [first(s) + begin, first(s) + end), begin in the high half of the
    // word and end in the low half.
    std::atomic<uint64_t> range_[kMaxShares];
    int64_t first(int64_t s) const { return s * n_ / shares_; }
};

// parallel_for over ShareClaims: body(task, thread) for every task in [0, n), each thread
// walking its own share in order instead of taking every `threads`-th task.
template <class Body>
void parallel_shares(int64_t n, int64_t threads, const Body &body) {
    if (n <= 0) return;
    const int64_t t = ShareClaims::shares_for(n, threads);
    ShareClaims claims(n, t);
    parallel_for(t, t, [&](int64_t share, int thread) {
        for (int64_t u; (u = claims.claim(share)) >= 0;) body(u, thread);
    });
}

}  // namespace smyrf::cpu
