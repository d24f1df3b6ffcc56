// Shared by the fuzz targets: reads an input as a stream of small decisions. Past the end
// of the data every read returns 0, so every input, even an empty one, is a valid case.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fuzz {

class Input {
public:
    Input(const uint8_t *data, size_t size) : p_(data), end_(data + size) {}
    bool more() const { return p_ < end_; }
    uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
    uint64_t u64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v |= (uint64_t)byte() << (8 * i);
        return v;
    }
    // A value in [0, n) from one byte (n <= 256).
    int64_t below(int64_t n) { return n <= 1 ? 0 : byte() % n; }

private:
    const uint8_t *p_, *end_;
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
