// Test-only allocation hook (test_oom): the test executable interposes every variant of
// operator new / new[] / delete / delete[] and aligned_alloc, so that it sees each
// allocation libsmyrf (linked statically) makes. Allocations are counted only inside a
// window opened around one smyrf_* call on the calling thread (so other threads' and
// libc's internals are never failed), and the k-th counted one can be made to fail.
#pragma once

#include <cstddef>

namespace alloc_hook {

// Opens / closes the counting window on this thread.
void begin_window();
void end_window();

// Counted allocations since reset(); fail_at = k makes the k-th counted allocation fail
// (operator new throws std::bad_alloc, nothrow new and aligned_alloc return NULL);
// 0 = never.
void reset(long fail_at);
long counted();
bool injected();  // the failure was injected since reset()

// operator new allocations counted in a window and not deleted yet (leak accounting for
// C++ allocations; aligned_alloc blocks are freed with free(), which is not interposed:
// their leaks are left to the heap statistics or LeakSanitizer, see test_oom.cpp).
long live_new();

}  // namespace alloc_hook
