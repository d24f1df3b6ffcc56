/* The machine's single-precision GEMM peak: OpenBLAS sgemm on n x n x n (default 2048),
 * best of several calls, printed as one JSON line. Threads: OPENBLAS_NUM_THREADS. */
#include <cblas.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 2048;
    const int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (argc > 3 || n < 1 || reps < 1) {
        fprintf(stderr, "usage: smyrf_sgemm_peak [n >= 1] [reps >= 1]\n");
        return 2;
    }
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) {
        fprintf(stderr, "smyrf_sgemm_peak: out of memory\n");
        return 1;
    }
    for (long i = 0; i < (long)n * n; i++) {
        a[i] = (float)(i % 7) * 0.25f;
        b[i] = (float)(i % 5) * 0.5f;
    }
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { /* call 0 warms up the thread pool and caches */
        const double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        const double t = now_s() - t0;
        if (r > 0 && t < best) best = t;
    }
    printf("{\"n\": %d, \"threads\": %d, \"best_ms\": %.3f, \"gflops\": %.2f}\n", n,
           openblas_get_num_threads(), best * 1e3, 2.0 * n * n * (double)n / best * 1e-9);
    free(a);
    free(b);
    free(c);
    return 0;
}
