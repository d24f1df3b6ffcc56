// The pools of cpu/thread_pool.hpp: each thread that makes a multi-threaded call owns
// one, as each thread that starts an OpenMP region gets its own team, so that callers on
// several threads compute in parallel side by side.
//
// A call asks workers 0 .. helpers - 1 to join it through their `slot`; each slot holds
// the number of the call it was last asked to, four values per call: invited, taken by
// the worker, or withdrawn by the caller (whichever of the two changes it first wins).
// The caller works on the tasks too, and when none is left it withdraws the invitations
// no worker has taken yet, so a call never waits for a sleeping worker to wake up just
// to find nothing left to do. It then waits for the workers that took theirs.
#include "cpu/thread_pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace smyrf::cpu {
namespace {

using Clock = std::chrono::steady_clock;

// How long an idle worker spins before it sleeps: long enough to bridge the gaps between the parallel loops of one call, short enough
// not to take much of a core that other work shares.
constexpr auto kSpin = std::chrono::microseconds(200);

// A spinning core's hint that it waits (frees the pipeline for its SMT sibling).
void relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// Slot values of call c: 4c + kInvited, kTaken or kWithdrawn; kStop ends a worker.
constexpr uint64_t kInvited = 0, kTaken = 1, kWithdrawn = 2;
constexpr uint64_t kStop = ~(uint64_t)0;

// Tasks of a call run with this set, on the caller and on the workers: a call made from
// inside a task runs on its own thread (no nested pools).
thread_local bool t_in_task = false;

class Pool {
public:
    // Runs the call on this pool, or returns false (nothing run) when it has no thread
    // to offer. Only the thread that owns the pool calls this.
    bool run(int64_t n, int threads, TaskFn fn, const void *ctx);
    int size() const { return (int)workers_.size(); }
    ~Pool();

private:
    struct Worker {
        std::atomic<uint64_t> slot{kWithdrawn};
        std::thread thread;
    };
    int grow(int want);
    void work(int thread);
    void serve(Worker &w, int thread);

    std::vector<std::unique_ptr<Worker>> workers_;  // touched by the owner only
    uint64_t calls_ = 0;
    // The call in flight: written by its caller before it invites, read by the workers
    // that take the invitation.
    TaskFn fn_ = nullptr;
    const void *ctx_ = nullptr;
    int64_t n_ = 0;
    std::atomic<int64_t> next_{0};    // the next task to take
    std::atomic<int> remaining_{0};   // invitations neither finished nor withdrawn
    // Sleeping workers.
    std::mutex sleep_;
    std::condition_variable wake_;
    std::atomic<int> sleepers_{0};
};

// Workers that can be asked now, starting threads up to `want`; fewer if the system
// refuses a thread (or the memory for one).
int Pool::grow(int want) {
    while ((int)workers_.size() < want) {
        try {
            workers_.reserve(workers_.size() + 1);
            auto w = std::make_unique<Worker>();
            const int thread = (int)workers_.size() + 1;
            Worker *self = w.get();
            w->thread = std::thread([this, self, thread] { serve(*self, thread); });
            workers_.push_back(std::move(w));
        } catch (...) {
            break;
        }
    }
    return std::min(want, (int)workers_.size());
}

void Pool::work(int thread) {
    for (int64_t task; (task = next_.fetch_add(1, std::memory_order_relaxed)) < n_;)
        fn_(ctx_, task, thread);
}

void Pool::serve(Worker &w, int thread) {
#ifdef __linux__
    pthread_setname_np(pthread_self(), "smyrf-worker");  // as top and debuggers show it
#endif
    t_in_task = true;
    uint64_t seen = kWithdrawn;
    for (;;) {
        uint64_t s = w.slot.load(std::memory_order_acquire);
        const Clock::time_point until = Clock::now() + kSpin;
        for (int i = 1; s == seen; i++, s = w.slot.load(std::memory_order_acquire)) {
            if (i % 64 || Clock::now() < until) {
                relax();
                continue;
            }
            std::unique_lock<std::mutex> lock(sleep_);
            sleepers_.fetch_add(1);  // before the check below (pairs with run's read)
            wake_.wait(lock, [&] { return w.slot.load() != seen; });
            sleepers_.fetch_sub(1);
        }
        if (s == kStop) return;
        seen = s;
        if (s % 4 != kInvited) continue;  // withdrawn before this worker got to it
        // Failed: withdrawn meanwhile, or by now the next call's invitation, which the
        // loop takes as new (so the worker does not sit that call out).
        if (!w.slot.compare_exchange_strong(s, s - kInvited + kTaken)) continue;
        seen = s - kInvited + kTaken;
        work(thread);
        remaining_.fetch_sub(1, std::memory_order_release);
    }
}

bool Pool::run(int64_t n, int threads, TaskFn fn, const void *ctx) {
    const int helpers = grow(threads - 1);
    if (helpers == 0) return false;
    fn_ = fn, ctx_ = ctx, n_ = n;
    next_.store(0, std::memory_order_relaxed);
    remaining_.store(helpers, std::memory_order_relaxed);
    const uint64_t invited = 4 * ++calls_ + kInvited;
    for (int w = 0; w < helpers; w++) workers_[w]->slot.store(invited);
    if (sleepers_.load() > 0) {
        { std::lock_guard<std::mutex> g(sleep_); }  // a worker is in wait() or sees the slot
        wake_.notify_all();
    }
    work(0);
    for (int w = 0; w < helpers; w++) {
        uint64_t s = invited;
        if (workers_[w]->slot.compare_exchange_strong(s, invited - kInvited + kWithdrawn))
            remaining_.fetch_sub(1, std::memory_order_relaxed);
    }
    for (int64_t tries = 0; remaining_.load(std::memory_order_acquire) > 0; tries++)
        wait_a_little(tries);
    return true;
}

Pool::~Pool() {
    for (auto &w : workers_) w->slot.store(kStop);
    { std::lock_guard<std::mutex> g(sleep_); }
    wake_.notify_all();
    for (auto &w : workers_) w->thread.join();
}

// This thread's pool, made at its first multi-threaded call, lives in a pthread key:
// the key's destructor joins its workers when the thread ends, and an atexit handler does
// the same for the thread that calls exit, so none is left running this library's code
// after it is gone; calls made after that (from a later destructor) run alone. Not a
// thread_local with a destructor: glibc registers one through a calloc at its first use
// in each thread, and aborts the process when that allocation fails.
//
// The key and the fork handler are set up once, as the library loads, before any thread
// can make a call. A forked child has only the thread that forked, and none of the
// workers: it forgets that thread's pool (leaked, never touched again) and makes a new one
// when it needs one. Without both, there are no pools: every call runs on its thread.
Pool *const kEnded = reinterpret_cast<Pool *>(alignof(Pool));  // never a real pool
pthread_key_t g_pool_key;
bool g_pools = false;

void end_pool(void *value) {
    Pool *pool = static_cast<Pool *>(value);
    if (pool == kEnded) return;
    delete pool;
    pthread_setspecific(g_pool_key, kEnded);
}

void forget_pool_in_child() { pthread_setspecific(g_pool_key, nullptr); }

// This thread's key value: its pool, kEnded, or nullptr (none yet, or no pools at all).
Pool *key_value() {
    return g_pools ? static_cast<Pool *>(pthread_getspecific(g_pool_key)) : nullptr;
}

void end_exiting_threads_pool() { end_pool(key_value()); }

__attribute__((constructor)) void set_up_pools() {
    g_pools = pthread_key_create(&g_pool_key, end_pool) == 0 &&
              pthread_atfork(nullptr, nullptr, forget_pool_in_child) == 0 &&
              std::atexit(end_exiting_threads_pool) == 0;
}

Pool *own_pool() {
    Pool *pool = key_value();
    if (pool == kEnded || !g_pools) return nullptr;
    if (pool) return pool;
    pool = new (std::nothrow) Pool;
    if (pool && pthread_setspecific(g_pool_key, pool) != 0) {
        delete pool;  // (no workers yet)
        return nullptr;
    }
    return pool;
}

}  // namespace

void wait_a_little(int64_t tries) {
    if (tries < 4096) relax();
    else std::this_thread::yield();
}

void run_tasks(int64_t n, int threads, TaskFn run, const void *ctx) {
    // A nested call runs on its thread: this thread's pool, if any, is in the call around it.
    const bool outer = !t_in_task;
    t_in_task = true;
    Pool *pool = outer && threads > 1 && n > 1 ? own_pool() : nullptr;
    if (!pool || !pool->run(n, (int)std::min<int64_t>(threads, n), run, ctx))
        for (int64_t task = 0; task < n; task++) run(ctx, task, 0);
    if (outer) t_in_task = false;
}

int pool_threads() {
    const Pool *pool = key_value();
    return pool && pool != kEnded ? pool->size() : 0;
}

}  // namespace smyrf::cpu
