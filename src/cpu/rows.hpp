// Rows of a strided tensor handed to a GEMM: in place when their positions are
// consecutive (DENSE tiles without padding), else gathered into a contiguous buffer.
#pragma once

#include "cpu/cpu.hpp"

namespace smyrf::cpu {

struct Rows {
    const float *p;
    int64_t ld;  // leading dimension for the GEMM
};

// The rows at positions rows[0..n) of x[b, h]; dst (n x dim floats) receives them when
// they are not consecutive.
Rows rows_of(const View &x, int64_t b, int64_t h, const int32_t *rows, int64_t n, int64_t dim,
             float *dst);

}  // namespace smyrf::cpu
