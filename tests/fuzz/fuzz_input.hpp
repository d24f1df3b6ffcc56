// Shared by the fuzz targets: reads an input as a stream of small decisions. Past the end
// of the data every read returns 0, so every input, even an empty one, is a valid case.
// Bulk data (tensor values, mask bytes) reads fill(): the input's bytes while they last,
// then a generator seeded by the whole input, so that a short input still gives a large
// tensor varied values (and a mask with valid keys) rather than one constant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fuzz {

class Input {
public:
    Input(const uint8_t *data, size_t size) : p_(data), end_(data + size) {
        uint64_t h = 0xcbf29ce484222325ull ^ size;  // FNV-1a of the input
        for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 0x100000001b3ull;
        rng_ = h | 1;
    }
    bool more() const { return p_ < end_; }
    uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
    uint64_t u64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v |= (uint64_t)byte() << (8 * i);
        return v;
    }
    // A value in [0, n) from one byte (n <= 256).
    int64_t below(int64_t n) { return n <= 1 ? 0 : byte() % n; }
    // A bulk byte: the next input byte, or past the end one from the generator.
    uint8_t fill() {
        if (p_ < end_) return *p_++;
        rng_ ^= rng_ << 13, rng_ ^= rng_ >> 7, rng_ ^= rng_ << 17;  // xorshift64
        return (uint8_t)(rng_ >> 24);
    }

private:
    const uint8_t *p_, *end_;
    uint64_t rng_;
};

// A contract violation: print it and abort, so that libFuzzer records the input (and the
// replay test fails).
[[noreturn]] inline void violation(const char *what, const char *detail) {
    std::fprintf(stderr, "CONTRACT VIOLATION: %s (%s)\n", what, detail ? detail : "");
    std::abort();
}

}  // namespace fuzz

#define FUZZ_REQUIRE(cond, detail) \
    do {                           \
        if (!(cond)) ::fuzz::violation(#cond, detail); \
    } while (0)
