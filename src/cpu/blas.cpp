#include "cpu/blas.hpp"

#include <cblas.h>

namespace smyrf::cpu {
namespace {

// OpenBLAS starts its own threads above m*n*k = 2^18; our callers already run on their
// own threads, so each call is cut into row blocks below that size. The row blocking
// depends only on the shape, so results stay the same for every thread count.
constexpr int64_t kSingleThreadWork = int64_t(1) << 18;

int64_t rows_per_call(int64_t m, int64_t n, int64_t k) {
    const int64_t per_row = (n * k > 0) ? n * k : 1;
    int64_t rows = kSingleThreadWork / per_row;
    if (rows < 1) rows = 1;
    return rows < m ? rows : m;
}

void gemm(CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
          int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    const int64_t step = rows_per_call(m, n, k);
    for (int64_t i = 0; i < m; i += step) {
        const int64_t rows = (m - i < step) ? m - i : step;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (blasint)rows, (blasint)n, (blasint)k,
                    alpha, a + i * lda, (blasint)lda, b, (blasint)ldb, beta, c + i * ldc,
                    (blasint)ldc);
    }
}

}  // namespace

void gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    gemm(CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    gemm(CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace smyrf::cpu
