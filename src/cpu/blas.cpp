#include "cpu/blas.hpp"

#include <cblas.h>

namespace smyrf::cpu {
namespace {

// The pthreads build of OpenBLAS hands a GEMM with m*n*k >= 2^18 to its own thread pool.
// Our callers already run on their own threads, and concurrent calls into that pool
// contend, so there each call is cut into equal row blocks below that size. (The OpenMP
// build runs calls made inside a parallel region on the calling thread by itself, and a
// pool of one thread has nothing to contend for.) Results do not depend on the blocking:
// each row of C is computed the same way.
constexpr int64_t kPoolThreshold = int64_t(1) << 18;

int64_t rows_per_call(int64_t m, int64_t n, int64_t k) {
    if (openblas_get_parallel() != 1 || openblas_get_num_threads() <= 1) return m;
    const int64_t per_row = (n * k > 0) ? n * k : 1;
    const int64_t max_rows = (kPoolThreshold - 1) / per_row;
    if (max_rows < 1) return 1;
    const int64_t pieces = (m + max_rows - 1) / max_rows;
    return (m + pieces - 1) / pieces;
}

}  // namespace

void gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    const int64_t step = rows_per_call(m, n, k);
    for (int64_t i = 0; i < m; i += step) {
        const int64_t rows = (m - i < step) ? m - i : step;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)n,
                    (blasint)k, alpha, a + i * lda, (blasint)lda, b, (blasint)ldb, beta,
                    c + i * ldc, (blasint)ldc);
    }
}

}  // namespace smyrf::cpu
