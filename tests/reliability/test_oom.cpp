// Out-of-memory injection over a plan's whole life (issue 8).
//
// The life: smyrf_config_create, smyrf_config_set (every parameter of the case),
// smyrf_config_set_scale, smyrf_plan_create, smyrf_config_destroy, smyrf_execute without a
// workspace (the call allocates its own), smyrf_execute with a caller workspace,
// smyrf_execute_backward without and with a caller workspace, the getters,
// smyrf_plan_destroy. A dry run counts the allocations libsmyrf makes in that life (N);
// then for every k in 1..N the life runs again with the k-th allocation failing
// (alloc_hook.cpp). The call that meets the failure must return SMYRF_ERR_OUT_OF_MEMORY
// with a message, leave its outputs (handle pointer, out, lse, dq, dk, dv) untouched and
// leak nothing; the same call is then repeated (memory is back) and must succeed, and
// every execute must give the dry run's bits: the plan is still usable. A call with a
// caller workspace must allocate nothing.
//
// Leaks: operator new blocks are accounted by the hook (live_new() must be 0 after each
// life); everything, aligned_alloc's workspace included, is also checked by the heap
// statistics (mallinfo2) in a plain build, and by LeakSanitizer after every life in an
// AddressSanitizer build.
//
// Plans use SMYRF_PARAM_THREADS = 1: the calls then run on the calling thread only (the
// counting window is per thread). The worker pool's own allocations are failed one by one
// at the end (pool_under_failures), also when a later call asks for more threads.
#include <smyrf/smyrf.h>

#include "alloc_hook.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define OOM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OOM_ASAN 1
#endif
#endif
#ifdef OOM_ASAN
#include <sanitizer/lsan_interface.h>
#endif

namespace {

int g_failures = 0;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            std::fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, __VA_ARGS__);                                \
            std::fprintf(stderr, "\n");                                       \
            g_failures++;                                                     \
            return false;                                                     \
        }                                                                     \
    } while (0)

struct Case {
    const char *name;
    std::vector<std::pair<smyrf_param, int64_t>> params;
    double scale;
    bool mask;
};

size_t elem_size(const Case &c) {
    for (auto &p : c.params)
        if (p.first == SMYRF_PARAM_DTYPE && p.second != SMYRF_DTYPE_F32) return 2;
    return 4;
}

int64_t param(const Case &c, smyrf_param p, int64_t fallback) {
    for (auto &kv : c.params)
        if (kv.first == p) return kv.second;
    return fallback;
}

// Inputs of a case: deterministic bytes that are valid numbers in every dtype.
struct Inputs {
    std::vector<uint8_t> q, k, v, dout, mask;
    size_t out_bytes, lse_n;
};

// What a life computes: the forward's out and lse, the backward's dq, dk and dv.
struct Results {
    std::vector<uint8_t> out;
    std::vector<float> lse;
    std::vector<uint8_t> dq, dk, dv;
};

Inputs make_inputs(const Case &c) {
    const int64_t B = param(c, SMYRF_PARAM_BATCH, 1), H = param(c, SMYRF_PARAM_HEADS, 1);
    const int64_t Hkv = param(c, SMYRF_PARAM_KV_HEADS, 0) ? param(c, SMYRF_PARAM_KV_HEADS, 0) : H;
    const int64_t Nq = param(c, SMYRF_PARAM_Q_LEN, 0);
    const int64_t Nk = param(c, SMYRF_PARAM_K_LEN, 0) ? param(c, SMYRF_PARAM_K_LEN, 0) : Nq;
    const int64_t d = param(c, SMYRF_PARAM_QK_DIM, 0);
    const int64_t dv = param(c, SMYRF_PARAM_V_DIM, 0) ? param(c, SMYRF_PARAM_V_DIM, 0) : d;
    const size_t es = elem_size(c);
    Inputs in;
    in.q.resize((size_t)(B * H * Nq * d) * es);
    in.k.resize((size_t)(B * Hkv * Nk * d) * es);
    in.v.resize((size_t)(B * Hkv * Nk * dv) * es);
    in.out_bytes = (size_t)(B * H * Nq * dv) * es;
    in.lse_n = (size_t)(B * H * Nq);
    uint64_t s = 0x1234567;
    auto fill = [&](std::vector<uint8_t> &x) {
        for (size_t i = 0; i < x.size(); i += es) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            const float f = (float)((s >> 40) % 2001) / 1000.0f - 1.0f;  // [-1, 1]
            if (es == 4) {
                std::memcpy(&x[i], &f, 4);
            } else {  // f16 and bf16 both: 0x3c00 / 0x3f80 families; use bf16 bits of f
                uint32_t bits;
                std::memcpy(&bits, &f, 4);
                uint16_t h = (uint16_t)(bits >> 16);
                if (param(c, SMYRF_PARAM_DTYPE, 0) == SMYRF_DTYPE_F16)
                    h = (uint16_t)(0x3800 | ((s >> 20) & 0x3ff) | ((s >> 10) & 0x8000));
                std::memcpy(&x[i], &h, 2);
            }
        }
    };
    in.dout.resize(in.out_bytes);
    fill(in.q), fill(in.k), fill(in.v), fill(in.dout);
    if (c.mask) {
        in.mask.resize((size_t)(B * Nk));
        for (size_t j = 0; j < in.mask.size(); j++) in.mask[j] = (uint8_t)(j % 3 != 1);
    }
    return in;
}

// One smyrf_* call inside the counting window.
smyrf_status call(const std::function<smyrf_status()> &f) {
    alloc_hook::begin_window();
    const smyrf_status st = f();
    alloc_hook::end_window();
    return st;
}
void call_void(const std::function<void()> &f) {
    alloc_hook::begin_window();
    f();
    alloc_hook::end_window();
}

size_t heap_in_use() {
#ifdef OOM_ASAN
    return 0;
#else
    return mallinfo2().uordblks;
#endif
}

bool leak_check(const char *what) {
#ifdef OOM_ASAN
    CHECK(__lsan_do_recoverable_leak_check() == 0, "%s: LeakSanitizer found a leak", what);
#else
    (void)what;
#endif
    return true;
}

// Runs the life with the fail_at-th allocation failing (0: none). want: filled by the dry
// run, compared against on every other run.
bool life(const Case &c, const Inputs &in, long fail_at, Results &want) {
    alloc_hook::reset(fail_at);
    const bool dry = fail_at == 0;
    // Wraps one step: detects whether this call met the injected failure; if so, checks
    // the status and message, runs `untouched`, then repeats the call without failures.
    bool met = false;
    auto step = [&](const char *name, const std::function<smyrf_status()> &f,
                    const std::function<bool()> &untouched) -> bool {
        const bool before = alloc_hook::injected();
        smyrf_status st = call(f);
        if (!before && alloc_hook::injected()) {
            met = true;
            CHECK(st == SMYRF_ERR_OUT_OF_MEMORY, "%s k=%ld %s: status %s (%s), want out of memory",
                  c.name, fail_at, name, smyrf_status_string(st), smyrf_last_error_message());
            CHECK(std::strlen(smyrf_last_error_message()) > 0, "%s k=%ld %s: no message",
                  c.name, fail_at, name);
            if (!untouched()) return false;
            st = call(f);  // memory is back
        }
        CHECK(st == SMYRF_OK, "%s k=%ld %s: status %s (%s)", c.name, fail_at, name,
              smyrf_status_string(st), smyrf_last_error_message());
        return true;
    };

    smyrf_config *const kSentinelCfg = (smyrf_config *)(uintptr_t)0x5a5a5a5a;
    smyrf_plan *const kSentinelPlan = (smyrf_plan *)(uintptr_t)0x5a5a5a5a;
    smyrf_config *cfg = kSentinelCfg;
    if (!step("smyrf_config_create", [&] { return smyrf_config_create(&cfg); },
              [&] {
                  CHECK(cfg == kSentinelCfg, "%s k=%ld: cfg written on failure", c.name, fail_at);
                  return true;
              }))
        return false;
    for (auto &p : c.params)
        if (!step("smyrf_config_set", [&] { return smyrf_config_set(cfg, p.first, p.second); },
                  [] { return true; }))
            return false;
    if (!step("smyrf_config_set_scale", [&] { return smyrf_config_set_scale(cfg, c.scale); },
              [] { return true; }))
        return false;
    smyrf_plan *plan = kSentinelPlan;
    if (!step("smyrf_plan_create", [&] { return smyrf_plan_create(&plan, cfg); },
              [&] {
                  CHECK(plan == kSentinelPlan, "%s k=%ld: plan written on failure", c.name, fail_at);
                  return true;
              }))
        return false;
    call_void([&] { smyrf_config_destroy(cfg); });

    // Executes: out and lse start as a pattern that no result has.
    std::vector<uint8_t> out(in.out_bytes);
    std::vector<float> lse(in.lse_n);
    auto poison = [&] {
        std::memset(out.data(), 0xa5, out.size());
        for (auto &x : lse) x = -12345.0f;
    };
    auto poisoned = [&] {
        for (uint8_t b : out) CHECK(b == 0xa5, "%s k=%ld: out written on failure", c.name, fail_at);
        for (float x : lse) CHECK(x == -12345.0f, "%s k=%ld: lse written on failure", c.name, fail_at);
        return true;
    };
    auto compare = [&](const char *what) {
        if (dry) return true;
        CHECK(std::memcmp(out.data(), want.out.data(), out.size()) == 0,
              "%s k=%ld: %s: out differs from the run without failures", c.name, fail_at, what);
        CHECK(std::memcmp(lse.data(), want.lse.data(), lse.size() * 4) == 0,
              "%s k=%ld: %s: lse differs from the run without failures", c.name, fail_at, what);
        return true;
    };
    // A step with a caller workspace, which must allocate nothing (counted in the dry run).
    auto allocates_nothing = [&](const char *name, const std::function<smyrf_status()> &f,
                                 const std::function<bool()> &untouched) -> bool {
        const long before = alloc_hook::counted();
        if (!step(name, f, untouched)) return false;
        if (dry)
            CHECK(alloc_hook::counted() == before, "%s: %s made %ld allocations", c.name, name,
                  alloc_hook::counted() - before);
        return true;
    };
    const uint8_t *mask = c.mask ? in.mask.data() : nullptr;
    poison();
    if (!step("smyrf_execute (own workspace)",
              [&] {
                  return smyrf_execute(plan, in.q.data(), in.k.data(), in.v.data(), mask,
                                       out.data(), lse.data(), nullptr, 0, nullptr);
              },
              poisoned))
        return false;
    if (dry) {
        want.out = out;
        want.lse = lse;
    }
    if (!compare("own workspace")) return false;

    size_t ws_bytes = 0;
    call_void([&] { ws_bytes = smyrf_plan_workspace_size(plan); });
    std::vector<uint8_t> ws(ws_bytes + 1);
    poison();
    if (!allocates_nothing("smyrf_execute (caller workspace)",
                           [&] {
                               return smyrf_execute(plan, in.q.data(), in.k.data(), in.v.data(),
                                                    mask, out.data(), lse.data(),
                                                    ws_bytes ? ws.data() + 1 : nullptr, ws_bytes,
                                                    nullptr);
                           },
                           poisoned))
        return false;
    if (!compare("caller workspace")) return false;

    // Backwards on that forward (out and lse now hold its result): dq, dk, dv start as a
    // pattern no gradient has.
    std::vector<uint8_t> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
    auto poison_grads = [&] {
        for (auto *g : {&dq, &dk, &dv}) std::memset(g->data(), 0xa5, g->size());
    };
    auto grads_poisoned = [&] {
        for (auto *g : {&dq, &dk, &dv})
            for (uint8_t b : *g)
                CHECK(b == 0xa5, "%s k=%ld: %s written on failure", c.name, fail_at,
                      g == &dq ? "dq" : g == &dk ? "dk" : "dv");
        return true;
    };
    auto compare_grads = [&](const char *what) {
        if (dry) return true;
        CHECK(dq == want.dq, "%s k=%ld: %s: dq differs from the run without failures", c.name,
              fail_at, what);
        CHECK(dk == want.dk, "%s k=%ld: %s: dk differs from the run without failures", c.name,
              fail_at, what);
        CHECK(dv == want.dv, "%s k=%ld: %s: dv differs from the run without failures", c.name,
              fail_at, what);
        return true;
    };
    auto backward = [&](void *workspace, size_t bytes) {
        return smyrf_execute_backward(plan, in.q.data(), in.k.data(), in.v.data(), mask,
                                      out.data(), lse.data(), in.dout.data(), dq.data(),
                                      dk.data(), dv.data(), workspace, bytes, nullptr);
    };
    poison_grads();
    if (!step("smyrf_execute_backward (own workspace)", [&] { return backward(nullptr, 0); },
              grads_poisoned))
        return false;
    if (dry) {
        want.dq = dq;
        want.dk = dk;
        want.dv = dv;
    }
    if (!compare_grads("backward, own workspace")) return false;

    size_t bws_bytes = 0;
    call_void([&] { bws_bytes = smyrf_plan_backward_workspace_size(plan); });
    std::vector<uint8_t> bws(bws_bytes + 1);
    poison_grads();
    if (!allocates_nothing("smyrf_execute_backward (caller workspace)",
                           [&] { return backward(bws_bytes ? bws.data() + 1 : nullptr, bws_bytes); },
                           grads_poisoned))
        return false;
    if (!compare_grads("backward, caller workspace")) return false;

    int64_t value = 0;
    double scale = 0;
    if (!step("smyrf_plan_get", [&] { return smyrf_plan_get(plan, SMYRF_PARAM_K_LEN, &value); },
              [] { return true; }))
        return false;
    if (!step("smyrf_plan_get_scale", [&] { return smyrf_plan_get_scale(plan, &scale); },
              [] { return true; }))
        return false;
    call_void([&] { (void)smyrf_plan_backend_name(plan); });
    call_void([&] { smyrf_plan_destroy(plan); });

    if (!dry) CHECK(met, "%s k=%ld: the injected failure was not reported by any call", c.name, fail_at);
    CHECK(alloc_hook::live_new() == 0, "%s k=%ld: %ld operator new blocks leaked", c.name,
          fail_at, alloc_hook::live_new());
    return true;
}

bool run_case(const Case &c) {
    const Inputs in = make_inputs(c);
    Results want;
    // Two dry runs: the first lets the C and C++ libraries make their one-time
    // allocations, the second gives the count and the heap baseline.
    if (!life(c, in, 0, want)) return false;
    const size_t heap0 = heap_in_use();
    if (!life(c, in, 0, want)) return false;
    const long n = alloc_hook::counted();
    CHECK(n > 0, "%s: no allocation counted: the hook is not interposed", c.name);
    CHECK(heap_in_use() == heap0, "%s: heap grew by %zd bytes over a life", c.name,
          (ssize_t)(heap_in_use() - heap0));
    for (long k = 1; k <= n; k++) {
        const size_t before = heap_in_use();
        if (!life(c, in, k, want)) return false;
        CHECK(heap_in_use() == before, "%s k=%ld: heap grew by %zd bytes", c.name, k,
              (ssize_t)(heap_in_use() - before));
        if (!leak_check(c.name)) return false;
    }
    std::printf("%-28s %ld allocations per life, each failed once: ok\n", c.name, n);
    return true;
}

// The worker pool starts at a thread's first multi-threaded call and allocates then (the
// pool, its threads' records), and grows at a later call that asks for more threads than
// it has. Each of those allocations is failed in turn, in a forked child that has no pool
// yet (this process makes no multi-threaded call), in a call with a caller workspace
// (which allocates nothing else): the call must still succeed, on fewer threads, with the
// single-threaded bits. earlier > 0: the child first makes a call with that many threads,
// without failures, so that the failures meet the pool's growth to `threads`.
bool pool_under_failures(const Case &c, int64_t earlier, int64_t threads) {
    const Inputs in = make_inputs(c);
    auto plan_with = [&](int64_t n) {
        smyrf_config *cfg = nullptr;
        smyrf_plan *plan = nullptr;
        if (smyrf_config_create(&cfg) != SMYRF_OK) return plan;
        for (auto &p : c.params)
            smyrf_config_set(cfg, p.first, p.first == SMYRF_PARAM_THREADS ? n : p.second);
        smyrf_plan_create(&plan, cfg);
        smyrf_config_destroy(cfg);
        return plan;
    };
    smyrf_plan *serial = plan_with(1), *first = plan_with(earlier ? earlier : 1);
    smyrf_plan *parallel = plan_with(threads);
    CHECK(serial && first && parallel, "%s: plan_create: %s", c.name, smyrf_last_error_message());
    std::vector<uint8_t> want(in.out_bytes), out(in.out_bytes);
    // Workspaces made here: inside the counting window a vector's allocation would count.
    std::vector<uint8_t> ws_first(smyrf_plan_workspace_size(first));
    std::vector<uint8_t> ws(smyrf_plan_workspace_size(parallel));
    auto run = [&](const smyrf_plan *plan, std::vector<uint8_t> &w) {
        std::fill(out.begin(), out.end(), 0xa5);
        return smyrf_execute(plan, in.q.data(), in.k.data(), in.v.data(), nullptr, out.data(),
                             nullptr, w.data(), w.size(), nullptr);
    };
    CHECK(smyrf_execute(serial, in.q.data(), in.k.data(), in.v.data(), nullptr, want.data(),
                        nullptr, nullptr, 0, nullptr) == SMYRF_OK,
          "%s: %s", c.name, smyrf_last_error_message());
    enum { kFailedOne = 0, kNoneFailed = 1, kError = 2, kOtherBits = 3 };
    long k = 1;
    for (int code = kFailedOne; code == kFailedOne; k++) {
        const pid_t pid = fork();
        CHECK(pid >= 0, "fork failed");
        if (pid == 0) {
            if (earlier) {  // outside the counting window: nothing of it fails
                if (run(first, ws_first) != SMYRF_OK) _exit(kError);
                if (out != want) _exit(kOtherBits);
            }
            alloc_hook::reset(k);
            const smyrf_status st = call([&] { return run(parallel, ws); });
            _exit(st != SMYRF_OK ? kError : out != want ? kOtherBits
                  : alloc_hook::injected() ? kFailedOne : kNoneFailed);
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status), "%s k=%ld: the child died",
              c.name, k);
        code = WEXITSTATUS(status);
        CHECK(code != kError, "%s k=%ld: the call failed", c.name, k);
        CHECK(code != kOtherBits, "%s k=%ld: not the single-threaded bits", c.name, k);
    }
    smyrf_plan_destroy(serial), smyrf_plan_destroy(first), smyrf_plan_destroy(parallel);
    CHECK(k > 2, "%s: the pool's %s made no allocation through the hook", c.name,
          earlier ? "growth" : "start");
    std::printf("%-28s the pool's %ld %s allocations (%lld threads%s), each failed once: ok\n",
                c.name, k - 2, earlier ? "growth" : "start", (long long)threads,
                earlier ? " after a smaller call" : "");
    return true;
}

}  // namespace

int main() {
    using P = smyrf_param;
    const std::vector<std::pair<P, int64_t>> shape = {
        {SMYRF_PARAM_BATCH, 2}, {SMYRF_PARAM_HEADS, 4}, {SMYRF_PARAM_KV_HEADS, 2},
        {SMYRF_PARAM_Q_LEN, 40}, {SMYRF_PARAM_K_LEN, 56}, {SMYRF_PARAM_QK_DIM, 8},
        {SMYRF_PARAM_V_DIM, 6}, {SMYRF_PARAM_THREADS, 1}};
    auto with = [&](std::vector<std::pair<P, int64_t>> extra) {
        auto all = shape;
        all.insert(all.end(), extra.begin(), extra.end());
        return all;
    };
    const std::vector<Case> cases = {
        {"smyrf f32", with({{SMYRF_PARAM_N_HASHES, 3}, {SMYRF_PARAM_Q_CLUSTER_SIZE, 8}}), 0.0, false},
        {"smyrf f16 causal mask",
         with({{SMYRF_PARAM_DTYPE, SMYRF_DTYPE_F16}, {SMYRF_PARAM_CAUSAL, 1},
               {SMYRF_PARAM_Q_CLUSTER_SIZE, 16}, {SMYRF_PARAM_SEED, 7}}),
         0.3, true},
        {"dense f32 bnhd", with({{SMYRF_PARAM_MODE, SMYRF_MODE_DENSE}, {SMYRF_PARAM_LAYOUT, SMYRF_LAYOUT_BNHD}}), 0.0, true},
        {"dense bf16 causal",
         with({{SMYRF_PARAM_MODE, SMYRF_MODE_DENSE}, {SMYRF_PARAM_DTYPE, SMYRF_DTYPE_BF16},
               {SMYRF_PARAM_CAUSAL, 1}}),
         0.0, false},
        {"hybrid f32", with({{SMYRF_PARAM_MODE, SMYRF_MODE_HYBRID}, {SMYRF_PARAM_BUDGET, 16}}), 0.0, true},
        {"hybrid f16 causal",
         with({{SMYRF_PARAM_MODE, SMYRF_MODE_HYBRID}, {SMYRF_PARAM_BUDGET, 12},
               {SMYRF_PARAM_DTYPE, SMYRF_DTYPE_F16}, {SMYRF_PARAM_CAUSAL, 1}}),
         0.0, false},
    };
    for (const Case &c : cases) run_case(c);
    pool_under_failures(cases[0], 0, 2);  // the pool's start
    pool_under_failures(cases[0], 2, 3);  // its growth at a later call with more threads
    if (g_failures) {
        std::fprintf(stderr, "test_oom: %d failure(s)\n", g_failures);
        return 1;
    }
    return 0;
}
