// The CPU backend's worker threads (cpu/parallel.hpp): each thread that makes a
// multi-threaded call owns a pool of workers, as with OpenMP's teams. The library keeps its own threads instead of OpenMP's because
// libgomp's do not survive fork(): a child that starts a parallel region after its parent
// has run one waits forever for threads that fork() did not copy (Python's
// multiprocessing, data-loader workers and pre-forking servers all do this). libgomp also
// aborts when it cannot allocate, and the library never aborts. This pool starts afresh
// in a forked child, and a thread it cannot create only means fewer threads.
#pragma once

#include <cstdint>

namespace smyrf::cpu {

using TaskFn = void (*)(const void *ctx, int64_t task, int thread);

// run(ctx, task, thread) for every task in [0, n): the calling thread (thread 0) and up to
// threads - 1 pool threads (1, 2, ...) each take the next task not yet taken, in
// increasing order, until none is left; returns when every task has returned. A task
// taken is run to its end by the thread that took it, so a task may wait for an earlier
// one. The pool threads are the calling thread's own. A call made from inside a task
// (nested), or one whose threads cannot be started, runs every task on the calling
// thread, in order: as tasks never depend on which thread runs them, the results are the
// same bits. run must not throw.
void run_tasks(int64_t n, int threads, TaskFn run, const void *ctx);

// One look of a wait for another thread's progress, the tries-th: the first few thousand
// (about 100 us) spin, the rest give the CPU away, in case that thread lost it.
void wait_a_little(int64_t tries);

// Threads the calling thread's pool holds now (for tests): 0 before its first parallel
// call, and in a forked child until it makes one.
int pool_threads();

}  // namespace smyrf::cpu
