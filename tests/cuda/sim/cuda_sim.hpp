// A CUDA simulator for tests on machines without a GPU: the device code of a .cuh file,
// compiled by the host compiler, runs one block at a time, every thread of the block a
// fiber (a stack and a hand-written x86-64 context switch), switched at each barrier.
// What it checks is the kernels' logic: indexing, the order of their sums, and that every
// lane of a warp meets every warp-wide operation (a lane that misses one deadlocks the
// simulation, which reports it). The threads between two barriers run one after another,
// in thread order or (Exec::reverse) the other way round, a sweep of the block or a warp
// at a time (Order): two runs that differ show a read that is not ordered after the write
// it needs. Shuffles may name part of a warp (lanes_sync); wmma's 16 x 16 x 16 tiles and
// atomicMax are emulated (an atomic is trivial when one thread runs at a time). Not
// simulated: memory coalescing, timing, other atomics, inline PTX, and the CUDA memory
// model beyond barriers.
//
// Include it before any cuda/*.cuh header: it defines the CUDA builtins those use.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <type_traits>
#include <vector>

#if !defined(__x86_64__)
#error "tests/cuda/sim: the fiber switch is written for x86-64"
#endif

// The kernels' own bounds (cuda/common.cuh): a violated one stops the simulation, as an
// out-of-bounds write on the device would corrupt another warp's data.
#define SMYRF_SIM_CHECK(cond)                                                              \
    ((cond) ? (void)0                                                                      \
            : (std::fprintf(stderr, "cuda_sim: %s:%d: bound violated: %s\n", __FILE__,     \
                            __LINE__, #cond),                                              \
               std::abort()))

namespace cuda_sim {

struct Dim3 {
    unsigned x = 1, y = 1, z = 1;
};

// Saves the callee-saved registers on the current stack, stores its pointer in *from,
// and continues on stack `to` (saved the same way, or prepared by start_stack).
extern "C" void cuda_sim_switch(void **from, void *to);
asm(R"(
.text
.globl cuda_sim_switch
.type cuda_sim_switch,@function
cuda_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size cuda_sim_switch, .-cuda_sim_switch
)");

struct Fiber {
    void *sp = nullptr;
    Dim3 tid;
    bool done = false;
};

struct State {
    Dim3 block_idx, block_dim, grid_dim;
    std::vector<Fiber> fibers;
    std::vector<std::unique_ptr<char[]>> stacks;
    int current = -1;
    void *scheduler_sp = nullptr;
    std::function<void()> body;
    std::vector<int> warp_arrived;
    std::vector<uint64_t> warp_gen;
    int block_arrived = 0;
    uint64_t block_gen = 0;
    std::vector<uint32_t> slots;  // one word per thread, for shuffles and ballots
    // Barriers of the lanes a warp-wide operation names when that is not the whole warp
    // (e.g. a shuffle within 8-lane groups), by (warp, mask): arrived, generation.
    std::map<std::pair<unsigned, unsigned>, std::pair<int, uint64_t>> lane_groups;
};
inline State &state() {
    static State s;
    return s;
}
inline Fiber &self() { return state().fibers[(size_t)state().current]; }

constexpr size_t kStackBytes = 256 * 1024;

[[noreturn]] inline void fiber_entry() {
    State &s = state();
    s.body();
    self().done = true;
    void *dead = nullptr;
    cuda_sim_switch(&dead, s.scheduler_sp);
    std::abort();  // never resumed
}

// A stack whose first switch "returns" into fiber_entry with the ABI's alignment.
inline void *start_stack(char *base) {
    auto top = (uintptr_t)(base + kStackBytes);
    top &= ~(uintptr_t)15;
    auto *sp = (void **)top;
    *--sp = nullptr;                   // fiber_entry's return address slot (never used)
    *--sp = (void *)&fiber_entry;      // popped by ret
    for (int r = 0; r < 6; r++) *--sp = nullptr;  // rbp, rbx, r12..r15
    return sp;
}

inline void yield() { cuda_sim_switch(&self().sp, state().scheduler_sp); }

inline void warp_sync() {
    State &s = state();
    const unsigned w = self().tid.x / 32;
    const int lanes = (int)std::min(32u, s.block_dim.x - w * 32);
    const uint64_t gen = s.warp_gen[w];
    if (++s.warp_arrived[w] == lanes) {
        s.warp_arrived[w] = 0;
        s.warp_gen[w]++;
        return;
    }
    while (s.warp_gen[w] == gen) yield();
}

// The lanes of mask in this thread's warp wait for each other (the whole warp: warp_sync).
inline void lanes_sync(unsigned mask) {
    State &s = state();
    const unsigned w = self().tid.x / 32;
    const unsigned in_warp = std::min(32u, s.block_dim.x - w * 32);
    const unsigned present = in_warp == 32 ? 0xffffffffu : (1u << in_warp) - 1u;
    if ((mask & present) == present) return warp_sync();
    auto &[arrived, gen] = s.lane_groups[{w, mask}];
    const uint64_t seen = gen;
    if (++arrived == __builtin_popcount(mask & present)) {
        arrived = 0;
        gen++;
        return;
    }
    while (s.lane_groups[{w, mask}].second == seen) yield();
}

inline void block_sync() {
    State &s = state();
    const uint64_t gen = s.block_gen;
    if (++s.block_arrived == (int)s.block_dim.x) {
        s.block_arrived = 0;
        s.block_gen++;
        return;
    }
    while (s.block_gen == gen) yield();
}

inline uint64_t progress() {
    const State &s = state();
    uint64_t p = s.block_gen;
    for (uint64_t g : s.warp_gen) p += g;
    for (const auto &group : s.lane_groups) p += group.second.second;
    for (const Fiber &f : s.fibers) p += f.done;
    return p;
}

// The order the threads of a block take turns in. kThreads: one thread after another, a
// sweep over the block at a time (each thread runs to its next warp-wide operation or
// barrier). kWarps: one warp at a time, run until every lane waits at a block barrier,
// so that a warp gets through its code between two barriers before any other warp starts
// it: a barrier missing between one warp's write and another warp's read (which the sweep
// hides, its warps keeping in step at every warp-wide operation) changes the result.
enum class Order { kThreads, kWarps };

// Runs body on every thread of every block, one block at a time; reverse: the threads
// (kThreads) or warps (kWarps) in the other order.
inline void run(unsigned grid, unsigned block, bool reverse, std::function<void()> body,
                Order order = Order::kThreads) {
    State &s = state();
    s.body = std::move(body);
    s.grid_dim = {grid, 1, 1};
    s.block_dim = {block, 1, 1};
    while (s.stacks.size() < block) s.stacks.emplace_back(new char[kStackBytes]);
    const unsigned warps = (block + 31) / 32;
    for (unsigned b = 0; b < grid; b++) {
        s.block_idx = {b, 1, 1};
        s.fibers.assign(block, Fiber{});
        s.warp_arrived.assign(warps, 0);
        s.warp_gen.assign(warps, 0);
        s.block_arrived = 0;
        s.block_gen = 0;
        s.slots.assign(block, 0);
        s.lane_groups.clear();
        for (unsigned t = 0; t < block; t++) {
            s.fibers[t].tid = {t, 1, 1};
            s.fibers[t].sp = start_stack(s.stacks[t].get());
        }
        // Resumes the live threads [t0, t1) once each (in the run's order); how many live.
        const auto sweep = [&](unsigned t0, unsigned t1) {
            unsigned live = 0;
            for (unsigned n = t0; n < t1; n++) {
                const unsigned t = reverse ? t0 + t1 - 1 - n : n;
                if (s.fibers[t].done) continue;
                s.current = (int)t;
                cuda_sim_switch(&s.scheduler_sp, s.fibers[t].sp);
                live += !s.fibers[t].done;
            }
            return live;
        };
        for (unsigned live = block; live > 0;) {
            const uint64_t before = progress();
            live = 0;
            if (order == Order::kThreads) {
                live = sweep(0, block);
            } else {
                for (unsigned n = 0; n < warps; n++) {
                    const unsigned w = reverse ? warps - 1 - n : n;
                    const unsigned t0 = w * 32, t1 = std::min(block, t0 + 32);
                    // Until the warp stops moving: all of it at a block barrier, or done.
                    uint64_t seen;
                    unsigned warp_live;
                    do {
                        seen = progress();
                        warp_live = sweep(t0, t1);
                    } while (warp_live > 0 && progress() != seen);
                    live += warp_live;
                }
            }
            if (live > 0 && progress() == before) {
                std::fprintf(stderr, "cuda_sim: block %u deadlocked: a lane missed a warp-wide "
                                     "operation or a barrier\n", b);
                std::abort();
            }
        }
    }
    s.current = -1;
}

// Every lane of `lanes` gives v and gets the value of lane source(its own lane).
template <class V, class Source>
V exchange(V v, unsigned lanes, Source source) {
    static_assert(sizeof(V) == 4, "32-bit shuffles only");
    State &s = state();
    const unsigned t = self().tid.x, w = t / 32, lane = t % 32;
    std::memcpy(&s.slots[t], &v, 4);
    lanes_sync(lanes);
    V out;
    std::memcpy(&out, &s.slots[w * 32 + source(lane) % 32], 4);
    lanes_sync(lanes);
    return out;
}

template <class V>
V shuffle_xor(V v, int xor_mask, unsigned lanes) {
    return exchange(v, lanes, [&](unsigned lane) { return lane ^ (unsigned)xor_mask; });
}

// Lane src's value, in every lane of `lanes`.
template <class V>
V shuffle_from(V v, int src, unsigned lanes) {
    return exchange(v, lanes, [&](unsigned) { return (unsigned)src; });
}

inline unsigned ballot(bool pred) {
    State &s = state();
    const unsigned t = self().tid.x, w = t / 32;
    s.slots[t] = pred;
    warp_sync();
    unsigned bits = 0;
    for (unsigned l = 0; l < 32 && w * 32 + l < s.block_dim.x; l++)
        bits |= (s.slots[w * 32 + l] ? 1u : 0u) << l;
    warp_sync();
    return bits;
}

}  // namespace cuda_sim

// ---- the CUDA builtins the device code uses
#define threadIdx (::cuda_sim::self().tid)
#define blockIdx (::cuda_sim::state().block_idx)
#define blockDim (::cuda_sim::state().block_dim)
#define gridDim (::cuda_sim::state().grid_dim)
#define __launch_bounds__(...)

inline void __syncthreads() { cuda_sim::block_sync(); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_sim::warp_sync(); }
inline float __shfl_xor_sync(unsigned lanes, float v, int m) { return cuda_sim::shuffle_xor(v, m, lanes); }
inline int __shfl_xor_sync(unsigned lanes, int v, int m) { return cuda_sim::shuffle_xor(v, m, lanes); }
inline float __shfl_sync(unsigned lanes, float v, int src) { return cuda_sim::shuffle_from(v, src, lanes); }
inline int __shfl_sync(unsigned lanes, int v, int src) { return cuda_sim::shuffle_from(v, src, lanes); }
inline unsigned __ballot_sync(unsigned, int pred) { return cuda_sim::ballot(pred != 0); }
template <class V>
V __ldg(const V *p) {
    return *p;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
// Rounded to nearest, never contracted into an FMA (host builds without -mfma have none).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
// Blocks run one after another and a block's threads one at a time: a plain update is atomic.
inline unsigned atomicMax(unsigned *p, unsigned v) {
    const unsigned old = *p;
    if (v > old) *p = v;
    return old;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

// ---- nvcuda::wmma (16 x 16 x 16 tiles), warp-wide as on the device: every lane holds the
// whole tile in its fragment (the kernels never look inside one), loads and stores wait
// for the whole warp around them, so that no lane stores over what another has yet to
// load. Products are summed in fp32 in k order, so fp16 and bf16 results match the
// device's to rounding, not to the bit.
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "16 x 16 x 16 tiles only");
    float x[16][16];  // [row][column] of the tile (a: M x K, b: K x N, accumulator: M x N)
};

namespace detail {
inline float value(float v) { return v; }
inline float value(__half v) { return __half2float(v); }
inline float value(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class F, class T>
void load(F &f, const T *p, unsigned ld, bool row_major) {
    ::cuda_sim::warp_sync();
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            f.x[r][c] = value(row_major ? p[(size_t)r * ld + c] : p[(size_t)c * ld + r]);
    ::cuda_sim::warp_sync();
}
}  // namespace detail

template <class F>
void fill_fragment(F &f, float v) {
    for (auto &row : f.x)
        for (float &e : row) e = v;
}
template <class Use, class T, class L>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, L> &f, const T *p, unsigned ld) {
    detail::load(f, p, ld, std::is_same<L, row_major>::value);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p,
                             unsigned ld, layout_t layout) {
    detail::load(f, p, ld, layout == mem_row_major);
}
template <class T, class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
              const fragment<matrix_a, 16, 16, 16, T, LA> &a,
              const fragment<matrix_b, 16, 16, 16, T, LB> &b,
              const fragment<accumulator, 16, 16, 16, float> &c) {
    float sum[16][16];
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 16; n++) {
            float s = c.x[r][n];
            for (int k = 0; k < 16; k++) s = std::fma(a.x[r][k], b.x[k][n], s);
            sum[r][n] = s;
        }
    std::memcpy(d.x, sum, sizeof sum);
}
inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                              unsigned ld, layout_t layout) {
    ::cuda_sim::warp_sync();
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            (layout == mem_row_major ? p[(size_t)r * ld + c] : p[(size_t)c * ld + r]) = f.x[r][c];
    ::cuda_sim::warp_sync();
}
}  // namespace nvcuda::wmma

namespace cuda_sim {

// The executor of the launch sequences (cuda/launch.cuh is the device one): kernels run
// here, sorts with std::stable_sort. The kernels' dynamic shared memory (their
// `extern __shared__` array) is the test's to define: shared_bytes is its size.
struct Exec {
    bool reverse = false;
    size_t shared_bytes = 0;
    Order order = Order::kThreads;

    template <class... P, class... A>
    void launch(void (*kernel)(P...), unsigned grid, unsigned block, size_t smem,
                const A &...args) const {
        if (smem > shared_bytes) {
            std::fprintf(stderr, "cuda_sim: %zu bytes of shared memory asked, %zu simulated\n",
                         smem, shared_bytes);
            std::abort();
        }
        run(grid, block, reverse, [&] { kernel(args...); }, order);
    }

    void zero(void *p, size_t bytes) const { std::memset(p, 0, bytes); }

    template <class Key, class Work, class Problem>
    void sort(const Key *keys_in, Key *keys_out, int32_t *values_out, const Problem &p,
              const Work &hw) const {
        std::vector<int64_t> idx;
        for (long long pair = 0; pair < (long long)p.B * p.Hkv; pair++) {
            const int64_t b0 = hw.seg_begin[pair], e0 = hw.seg_end[pair];
            idx.resize((size_t)(e0 - b0));
            std::iota(idx.begin(), idx.end(), b0);
            std::stable_sort(idx.begin(), idx.end(),
                             [&](int64_t x, int64_t y) { return keys_in[x] < keys_in[y]; });
            for (size_t r = 0; r < idx.size(); r++) {
                keys_out[b0 + (int64_t)r] = keys_in[idx[r]];
                values_out[b0 + (int64_t)r] = hw.ident[idx[r]];
            }
        }
    }
};

}  // namespace cuda_sim
