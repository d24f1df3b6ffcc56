/* Two builds of libsmyrf timed against each other in one process, call by call.
 *
 * The machines this project is measured on switch between fast and slow states for
 * seconds to minutes, so two `smyrf bench` runs a minute apart can differ by more than the
 * change being measured. Here both libraries are loaded side by side (dlmopen: each in
 * its own namespace, with its own thread pool) and their calls alternate, A B, B A, ...,
 * on the same inputs; what is reported is the median of the per-pair ratios B / A, with
 * its quartiles. Run a library against itself first: its median should be 1.00 within
 * about 1%. Two builds of the same code can still differ by 1-3% (code placement: a loop
 * that moved by a few bytes), so only trust differences beyond that.
 *
 *   cc -O2 -Iinclude bench/ab_builds.c -ldl -o /tmp/ab_builds
 *   /tmp/ab_builds OLD/libsmyrf.so.0 NEW/libsmyrf.so.0 [n] [mode] [pairs] [threads] [backward]
 *
 * n: sequence length (default 16384); mode: 0 SMYRF (default), 1 DENSE, 2 HYBRID, with
 * the library's defaults otherwise (fp32, one head, d = 64); pairs (default 200);
 * threads (default 2); backward 1: time smyrf_execute_backward instead (out and lse from
 * one forward call of build A, dout fixed values; default 0). Inputs: 32 topics in turn, in fixed runs of 128 tokens, plus uniform
 * noise: topic structure like `smyrf bench`'s inputs, but not the same values (those have
 * runs of random length and normal noise); 2 MiB-aligned on transparent huge pages, as
 * `smyrf bench` allocates its tensors of 4 MiB and more. Not part of the build or the tests.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "smyrf/smyrf.h"

typedef struct {
    smyrf_status (*execute)(const smyrf_plan *, const void *, const void *, const void *,
                            const uint8_t *, void *, float *, void *, size_t, void *);
    smyrf_status (*backward)(const smyrf_plan *, const void *, const void *, const void *,
                             const uint8_t *, const void *, const float *, const void *,
                             void *, void *, void *, void *, size_t, void *);
    const char *(*last_error)(void);
    smyrf_plan *plan;
    void *workspace;
    size_t workspace_bytes;
} Build;

static void *huge_buffer(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, (size_t)1 << 21, bytes)) return NULL;
    madvise(p, bytes, MADV_HUGEPAGE); /* advice only */
    memset(p, 0, bytes);
    return p;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile of sorted x[0..n), interpolated between neighbours: p = 0.5 is the median,
 * the mean of the middle two where n is even. */
static double quantile(const double *x, int n, double p) {
    const double at = p * (n - 1);
    const int i = (int)at;
    return i + 1 < n ? x[i] + (at - i) * (x[i + 1] - x[i]) : x[i];
}

/* Loads one build and makes its plan; 0 on success. */
static int load(Build *b, const char *path, int64_t n, int64_t mode, int64_t threads) {
    void *lib = dlmopen(LM_ID_NEWLM, path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return fprintf(stderr, "ab_builds: %s\n", dlerror()), 1;
    smyrf_status (*config_create)(smyrf_config **) = dlsym(lib, "smyrf_config_create");
    smyrf_status (*config_set)(smyrf_config *, smyrf_param, int64_t) = dlsym(lib, "smyrf_config_set");
    void (*config_destroy)(smyrf_config *) = dlsym(lib, "smyrf_config_destroy");
    smyrf_status (*plan_create)(smyrf_plan **, const smyrf_config *) = dlsym(lib, "smyrf_plan_create");
    size_t (*workspace_size)(const smyrf_plan *) = dlsym(lib, "smyrf_plan_workspace_size");
    size_t (*backward_size)(const smyrf_plan *) = dlsym(lib, "smyrf_plan_backward_workspace_size");
    b->execute = dlsym(lib, "smyrf_execute");
    b->backward = dlsym(lib, "smyrf_execute_backward");
    b->last_error = dlsym(lib, "smyrf_last_error_message");
    smyrf_config *cfg = NULL;
    const int failed = config_create(&cfg) || config_set(cfg, SMYRF_PARAM_Q_LEN, n) ||
                       config_set(cfg, SMYRF_PARAM_QK_DIM, 64) ||
                       config_set(cfg, SMYRF_PARAM_MODE, mode) ||
                       config_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU) ||
                       config_set(cfg, SMYRF_PARAM_THREADS, threads) ||
                       plan_create(&b->plan, cfg);
    config_destroy(cfg);
    if (failed) return fprintf(stderr, "ab_builds: %s: %s\n", path, b->last_error()), 1;
    b->workspace_bytes = workspace_size(b->plan);
    if (backward_size(b->plan) > b->workspace_bytes) b->workspace_bytes = backward_size(b->plan);
    b->workspace = huge_buffer(b->workspace_bytes + 1);
    return b->workspace == NULL;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return fprintf(stderr, "usage: %s LIB_A LIB_B [n] [mode] [pairs] [threads] [backward]\n", argv[0]), 2;
    const int64_t n = argc > 3 ? atoll(argv[3]) : 16384, mode = argc > 4 ? atoll(argv[4]) : 0;
    const int pairs = argc > 5 ? atoi(argv[5]) : 200;
    const int64_t threads = argc > 6 ? atoll(argv[6]) : 2, d = 64;
    const int backward = argc > 7 ? atoi(argv[7]) : 0;
    if (n < 1 || pairs < 4 || threads < 1 || backward < 0 || backward > 1)
        return fprintf(stderr, "ab_builds: bad arguments\n"), 2;
    Build b[2];
    if (load(&b[0], argv[1], n, mode, threads) || load(&b[1], argv[2], n, mode, threads)) return 1;

    const size_t bytes = (size_t)n * d * sizeof(float);
    float *q = huge_buffer(bytes), *k = huge_buffer(bytes), *v = huge_buffer(bytes),
          *out = huge_buffer(bytes), *dout = huge_buffer(bytes), *dq = huge_buffer(bytes),
          *dk = huge_buffer(bytes), *dv = huge_buffer(bytes), *lse = huge_buffer(n * sizeof(float));
    if (!q || !k || !v || !out || !dout || !dq || !dk || !dv || !lse)
        return fprintf(stderr, "ab_builds: out of memory\n"), 1;
    uint64_t state = 1; /* a 64-bit LCG: the same inputs on every run */
#define UNIFORM() ((float)((state = state * 6364136223846793005u + 1442695040888963407u) >> 40) / 16777216.0f - 0.5f)
    float topic[32][64];
    for (int t = 0; t < 32; t++)
        for (int j = 0; j < d; j++) topic[t][j] = 2.0f * UNIFORM();
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            const float *c = topic[(i / 128) % 32];
            q[i * d + j] = c[j] + UNIFORM();
            k[i * d + j] = c[j] + UNIFORM();
            v[i * d + j] = UNIFORM();
            dout[i * d + j] = UNIFORM();
        }
    if (backward && b[0].execute(b[0].plan, q, k, v, NULL, out, lse, b[0].workspace,
                                 b[0].workspace_bytes, NULL))
        return fprintf(stderr, "ab_builds: %s\n", b[0].last_error()), 1;

    double *ms[2] = {malloc(pairs * sizeof(double)), malloc(pairs * sizeof(double))};
    double *ratio = malloc(pairs * sizeof(double));
    for (int call = -1; call < pairs; call++) /* call -1: one warm-up call each */
        for (int j = 0; j < 2; j++) {
            const int x = (call & 1) ? 1 - j : j; /* A B, then B A */
            usleep(1000); /* the other build's idle workers stop spinning first */
            const double t0 = now_ms();
            if (backward ? b[x].backward(b[x].plan, q, k, v, NULL, out, lse, dout, dq, dk, dv,
                                         b[x].workspace, b[x].workspace_bytes, NULL)
                         : b[x].execute(b[x].plan, q, k, v, NULL, out, NULL, b[x].workspace,
                                        b[x].workspace_bytes, NULL))
                return fprintf(stderr, "ab_builds: %s\n", b[x].last_error()), 1;
            if (call >= 0) ms[x][call] = now_ms() - t0;
        }
    for (int c = 0; c < pairs; c++) ratio[c] = ms[1][c] / ms[0][c];
    qsort(ratio, pairs, sizeof(double), by_value);
    for (int x = 0; x < 2; x++) qsort(ms[x], pairs, sizeof(double), by_value);
    printf("A: median %.3f ms, min %.3f | B: median %.3f ms, min %.3f | B / A per pair: "
           "median %.3f, quartiles %.3f-%.3f (%d pairs)\n",
           quantile(ms[0], pairs, 0.5), ms[0][0], quantile(ms[1], pairs, 0.5), ms[1][0],
           quantile(ratio, pairs, 0.5), quantile(ratio, pairs, 0.25),
           quantile(ratio, pairs, 0.75), pairs);
    return 0;
}
