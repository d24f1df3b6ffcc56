// Shared pieces of the CPU backend: fp32 tensor views, the workspace arena.
#pragma once

#include "core/bump.hpp"
#include "core/error.hpp"
#include "core/params.hpp"

#include <cstddef>
#include <cstdint>

// Hot elementwise loops are also compiled for AVX2 and AVX-512 and picked at load time
// (an ifunc), on x86-64 only; other CPUs get the one version for their baseline.
// Only on functions of one file (an anonymous namespace) declared nowhere else; other
// files call a plain function that forwards to it. clang 14 compiles a function that a
// header declared without the attribute once, for the first target (AVX-512), under its
// plain name: an illegal instruction on every other CPU (the fuzzer's clang build found
// it in HYBRID on an AVX2 machine); tests/reliability/check_isa.sh now looks for that.
// ThreadSanitizer cannot run an ifunc resolver before its runtime starts, so its builds
// keep the portable version only.
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define SMYRF_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SMYRF_VECTOR_CLONES
#endif

namespace smyrf::cpu {

// Starts loading a row of n floats into L2, a cache line at a time: rows read in hash
// order sit at random positions, and asking for them one task ahead hides the misses.
inline void prefetch_row(const float *row, int64_t n) {
    for (int64_t at = 0; at < n; at += 16) __builtin_prefetch(row + at, 0, 2);
}

// A strided [B, H, N, dim] fp32 tensor; rows are contiguous.
struct View {
    float *base;
    Strides s;
    float *row(int64_t b, int64_t h, int64_t n) const {
        return base + b * s.batch + h * s.head + n * s.token;
    }
};

// The execute arguments as fp32 views (inputs converted first when dtype != f32).
struct Args {
    View q, k, v, out;
    const uint8_t *key_mask;  // [B, Nk] or null
    float *lse;               // [B, H, Nq] or null
};

// The backward arguments as fp32 views.
struct GradArgs {
    View q, k, v, out, dout, dq, dk, dv;
    const uint8_t *key_mask;  // [B, Nk] or null
    const float *lse;         // [B, H, Nq]
};

// Bump allocator over the workspace. Sizing pass: base == nullptr, only counts; sizes
// past 2^62 bytes are refused there (core/bump.hpp).
class Arena {
public:
    explicit Arena(void *base = nullptr) : base_((char *)base) {}
    template <class T>
    T *take(size_t count) {
        // 64-byte pieces: whole cache lines, aligned for any vector load
        const size_t at = take_bytes(used_, bytes_times(count, sizeof(T)), 64, "");
        return base_ ? (T *)(base_ + at) : nullptr;
    }
    size_t used() const { return used_; }

private:
    char *base_;
    size_t used_ = 0;
};

// One scratch S per thread, each laid out by make(arena) after the array of them (in a
// sizing pass only counted).
template <class S, class Make>
S *per_thread(Arena &arena, int64_t threads, Make make) {
    S *all = arena.take<S>((size_t)threads);
    for (int64_t t = 0; t < threads; t++) {
        const S s = make(arena);
        if (all) all[t] = s;
    }
    return all;
}

// The workspace bytes of a mode: its layout function run on an Arena that only counts.
template <class Layout>
size_t layout_bytes(Layout layout, const Desc &d) {
    Arena sizing;
    layout(sizing, d);
    return sizing.used();
}

// The position list 0..Nq-1 and every batch's valid keys, as the DENSE passes read them.
struct DenseKeys {
    int32_t *positions;  // [Nq]
    int32_t *valid;      // [B][Nk]
    int64_t *n_valid;    // [B]
};
DenseKeys dense_keys_layout(Arena &arena, const Desc &d);
void dense_keys_fill(const DenseKeys &k, const Desc &d, const uint8_t *key_mask);

// The key positions of batch b that are valid (mask nonzero, or all), ascending.
// Returns how many; idx must hold k_len entries.
int64_t valid_keys(const uint8_t *key_mask, int64_t b, int64_t k_len, int32_t *idx);

// The latest valid key at or before `limit` (binary search in the ascending list), or -1.
int64_t latest_valid_key(const int32_t *valid, int64_t n_valid, int64_t limit);

}  // namespace smyrf::cpu
