// The only door to OpenBLAS (row-major single-precision GEMM).
#pragma once

#include <cstdint>

namespace smyrf::cpu {

// C[m x n] = alpha * A[m x k] * B[k x n] + beta * C   (row-major, leading dims given;
// HYBRID's k-means assignment)
void gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

}  // namespace smyrf::cpu
