// The worker pools (src/cpu/thread_pool.hpp) on their own: every task runs exactly once,
// on a thread number below the count asked for; tasks are handed out in order, so a task
// may wait for the one before it; a call made inside a task runs on its caller alone;
// callers on several threads each compute on workers of their own.
#include "cpu/parallel.hpp"
#include "cpu/thread_pool.hpp"

#include "common.h"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using smyrf::cpu::parallel_for;

// Runs n tasks on `threads` threads; checks each ran once, on a thread below `threads`.
void check_once_each(int64_t n, int threads) {
    std::vector<std::atomic<int>> runs(n);
    std::atomic<int> bad_thread{0};
    parallel_for(n, threads, [&](int64_t task, int thread) {
        runs[task].fetch_add(1);
        if (thread < 0 || thread >= threads) bad_thread.fetch_add(1);
    });
    for (int64_t i = 0; i < n; i++) assert_int_equal(runs[i].load(), 1);
    assert_int_equal(bad_thread.load(), 0);
}

void every_task_once(void **) {
    for (int threads : {1, 2, 3, 8})
        for (int64_t n : {1, 2, 3, 7, 100, 1000}) check_once_each(n, threads);
    // The pool grew to what was asked of it, no further.
    assert_int_equal(smyrf::cpu::pool_threads(), 7);
}

// Task i waits until task i - 1 has finished: only an in-order hand-out, with every
// task taken run to its end, lets this finish.
void tasks_in_order_may_wait(void **) {
    for (int threads : {2, 4}) {
        const int64_t n = 400;
        std::atomic<int64_t> finished{0};
        std::atomic<int> out_of_order{0};
        parallel_for(n, threads, [&](int64_t task, int) {
            while (finished.load(std::memory_order_acquire) < task) std::this_thread::yield();
            if (finished.load() != task) out_of_order.fetch_add(1);
            finished.store(task + 1, std::memory_order_release);
        });
        assert_int_equal(finished.load(), n);
        assert_int_equal(out_of_order.load(), 0);
    }
}

void nested_calls_run_inline(void **) {
    std::vector<std::atomic<int>> runs(16 * 16);
    std::atomic<int> inner_not_caller{0};
    parallel_for(16, 4, [&](int64_t outer, int) {
        const std::thread::id me = std::this_thread::get_id();
        parallel_for(16, 4, [&](int64_t inner, int thread) {
            runs[outer * 16 + inner].fetch_add(1);
            if (thread != 0 || std::this_thread::get_id() != me) inner_not_caller.fetch_add(1);
        });
    });
    for (auto &r : runs) assert_int_equal(r.load(), 1);
    assert_int_equal(inner_not_caller.load(), 0);
}

// Callers on several threads at once: each call runs every task of its own, and each
// caller has workers of its own (tasks of 1 ms leave them time to join).
void concurrent_callers(void **) {
    std::atomic<int> failures{0}, unhelped{0}, pool_size_wrong{0};
    std::vector<std::thread> callers;
    for (int c = 0; c < 4; c++)
        callers.emplace_back([&] {
            for (int call = 0; call < 200; call++) {
                std::vector<int> runs(64, 0);  // each task writes only its own element
                parallel_for(64, 3, [&](int64_t task, int) { runs[task]++; });
                for (int r : runs)
                    if (r != 1) failures.fetch_add(1);
            }
            std::atomic<int> by_workers{0};
            parallel_for(20, 3, [&](int64_t, int thread) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
                if (thread > 0) by_workers.fetch_add(1);
            });
            if (by_workers.load() == 0) unhelped.fetch_add(1);
            if (smyrf::cpu::pool_threads() != 2) pool_size_wrong.fetch_add(1);
        });
    for (auto &t : callers) t.join();
    assert_int_equal(failures.load(), 0);
    assert_int_equal(unhelped.load(), 0);
    assert_int_equal(pool_size_wrong.load(), 0);
}

void first_exception_is_rethrown(void **) {
    std::atomic<int> ran{0};
    bool caught = false;
    try {
        parallel_for(50, 2, [&](int64_t task, int) {
            ran.fetch_add(1);
            if (task == 10) throw std::runtime_error("task 10");
        });
    } catch (const std::runtime_error &e) {
        caught = std::string(e.what()) == "task 10";
    }
    assert_true(caught);
    assert_int_equal(ran.load(), 50);  // the other tasks still ran
    check_once_each(100, 2);           // and the pool still works
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_task_once),
        cmocka_unit_test(tasks_in_order_may_wait),
        cmocka_unit_test(nested_calls_run_inline),
        cmocka_unit_test(concurrent_callers),
        cmocka_unit_test(first_exception_is_rethrown),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
