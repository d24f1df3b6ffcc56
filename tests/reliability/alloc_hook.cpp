// The interposed allocation functions of alloc_hook.hpp. Every block comes from malloc or
// posix_memalign and goes back with free, so the pairs stay consistent for the C library
// and for AddressSanitizer (which intercepts malloc, posix_memalign and free underneath).
#include "alloc_hook.hpp"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>

namespace {

thread_local bool t_window = false;
std::atomic<long> g_count{0}, g_fail_at{0};
std::atomic<bool> g_injected{false};

// Blocks from operator new counted in a window and still live. A fixed table: the hook
// itself must not allocate.
constexpr int kSlots = 4096;
void *g_live[kSlots];
std::atomic<long> g_live_n{0};
std::mutex g_live_lock;

// True when this allocation must fail; counts it when inside the window.
bool counted_fails() {
    if (!t_window) return false;
    const long n = g_count.fetch_add(1) + 1;
    if (n == g_fail_at.load()) {
        g_injected.store(true);
        return true;
    }
    return false;
}

void track(void *p) {
    if (!p || !t_window) return;
    std::lock_guard<std::mutex> g(g_live_lock);
    for (auto &slot : g_live)
        if (!slot) {
            slot = p;
            g_live_n.fetch_add(1);
            return;
        }
    std::abort();  // more than kSlots live blocks: the test is wrong
}

void untrack(void *p) {
    if (!p || g_live_n.load() == 0) return;
    std::lock_guard<std::mutex> g(g_live_lock);
    for (auto &slot : g_live)
        if (slot == p) {
            slot = nullptr;
            g_live_n.fetch_sub(1);
            return;
        }
}

void *raw_alloc(std::size_t n, std::size_t align) {
    if (n == 0) n = 1;
    if (align <= alignof(std::max_align_t)) return std::malloc(n);
    void *p = nullptr;
    if (align < sizeof(void *)) align = sizeof(void *);
    return posix_memalign(&p, align, n) == 0 ? p : nullptr;
}

void *alloc_nothrow(std::size_t n, std::size_t align) noexcept {
    if (counted_fails()) return nullptr;
    void *p = raw_alloc(n, align);
    track(p);
    return p;
}

void *alloc_throw(std::size_t n, std::size_t align) {
    void *p = alloc_nothrow(n, align);
    if (!p) throw std::bad_alloc();
    return p;
}

void release(void *p) noexcept {
    untrack(p);
    std::free(p);
}

}  // namespace

namespace alloc_hook {
void begin_window() { t_window = true; }
void end_window() { t_window = false; }
void reset(long fail_at) {
    g_count.store(0);
    g_fail_at.store(fail_at);
    g_injected.store(false);
}
long counted() { return g_count.load(); }
bool injected() { return g_injected.load(); }
long live_new() { return g_live_n.load(); }
}  // namespace alloc_hook

// ---- every replaceable allocation function of C++17
void *operator new(std::size_t n) { return alloc_throw(n, 0); }
void *operator new[](std::size_t n) { return alloc_throw(n, 0); }
void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return alloc_nothrow(n, 0); }
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return alloc_nothrow(n, 0); }
void *operator new(std::size_t n, std::align_val_t a) { return alloc_throw(n, (std::size_t)a); }
void *operator new[](std::size_t n, std::align_val_t a) { return alloc_throw(n, (std::size_t)a); }
void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
    return alloc_nothrow(n, (std::size_t)a);
}
void *operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
    return alloc_nothrow(n, (std::size_t)a);
}
void operator delete(void *p) noexcept { release(p); }
void operator delete[](void *p) noexcept { release(p); }
void operator delete(void *p, std::size_t) noexcept { release(p); }
void operator delete[](void *p, std::size_t) noexcept { release(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { release(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { release(p); }
void operator delete(void *p, std::align_val_t) noexcept { release(p); }
void operator delete[](void *p, std::align_val_t) noexcept { release(p); }
void operator delete(void *p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { release(p); }
void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { release(p); }

// ---- C11 aligned_alloc (the workspace of smyrf_execute); freed with free().
extern "C" void *aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
    if (counted_fails()) return nullptr;
    return raw_alloc(size, alignment < sizeof(void *) ? sizeof(void *) : alignment);
}
