/* A thread's first multi-threaded call while small allocations fail on that thread: the
 * call computes (with fewer threads if the system refuses one) or returns a status; it
 * never aborts. glibc registers a thread_local's destructor through a small calloc at its
 * first use in a thread and aborts the process when that fails, which is why libsmyrf
 * keeps each thread's pool in a pthread key (cpu/thread_pool.cpp).
 *
 * calloc is interposed in this executable (glibc's own calls reach it too); sanitizer
 * builds bring their own allocator, so there the test is skipped (exit 77). */
#define _GNU_SOURCE
#include <smyrf/smyrf.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
int main(void) {
    puts("skipped: a sanitizer's allocator replaces calloc");
    return 77;
}
#else
static __thread int t_fail_small;
extern void *__libc_calloc(size_t, size_t);
void *calloc(size_t n, size_t size) {
    if (t_fail_small && n * size <= 64) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}

enum { N = 256, D = 16 };
static smyrf_plan *g_plan;
static float g_q[N * D], g_out[N * D], g_want[N * D];
static smyrf_status g_status;

static void *first_call(void *arg) {
    (void)arg;
    t_fail_small = 1;
    g_status = smyrf_execute(g_plan, g_q, g_q, g_q, NULL, g_out, NULL, NULL, 0, NULL);
    t_fail_small = 0;
    return NULL;
}

int main(void) {
    smyrf_config *cfg;
    if (smyrf_config_create(&cfg) != SMYRF_OK) return 1;
    smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, N);
    smyrf_config_set(cfg, SMYRF_PARAM_QK_DIM, D);
    smyrf_config_set(cfg, SMYRF_PARAM_MODE, SMYRF_MODE_DENSE);
    smyrf_config_set(cfg, SMYRF_PARAM_THREADS, 2);
    if (smyrf_plan_create(&g_plan, cfg) != SMYRF_OK) return 1;
    /* the reference on one thread: this thread makes no multi-threaded call */
    smyrf_plan *serial;
    smyrf_config_set(cfg, SMYRF_PARAM_THREADS, 1);
    if (smyrf_plan_create(&serial, cfg) != SMYRF_OK) return 1;
    smyrf_config_destroy(cfg);
    for (int i = 0; i < N * D; i++) g_q[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    if (smyrf_execute(serial, g_q, g_q, g_q, NULL, g_want, NULL, NULL, 0, NULL) != SMYRF_OK)
        return 1;
    smyrf_plan_destroy(serial);

    pthread_t t;
    if (pthread_create(&t, NULL, first_call, NULL) != 0 || pthread_join(t, NULL) != 0) return 1;
    if (g_status != SMYRF_OK && g_status != SMYRF_ERR_OUT_OF_MEMORY) {
        fprintf(stderr, "status %s: %s\n", smyrf_status_string(g_status),
                smyrf_last_error_message());
        return 1;
    }
    if (g_status == SMYRF_OK && memcmp(g_out, g_want, sizeof g_out) != 0) {
        fprintf(stderr, "the call on the starved thread changed the bits\n");
        return 1;
    }
    printf("first call on a thread without small allocations: %s\n",
           smyrf_status_string(g_status));
    smyrf_plan_destroy(g_plan);
    return 0;
}
#endif
