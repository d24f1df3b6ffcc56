/* Concurrency stress (issue 8): 8 threads x 100 smyrf_execute calls on one shared plan
 * per mode (SMYRF, DENSE, HYBRID), each call with its own out, lse and (every other call)
 * its own workspace, out and lse reset to NaN before each. Every result must equal, bit
 * for bit, the result of a plan of the same config with SMYRF_PARAM_THREADS = 1, run
 * before the threads start. Between executes each thread also makes a failing call and
 * checks that smyrf_last_error_message() is its own message (per-thread).
 *
 * In the normal build this checks the thread-safety contract of smyrf.h functionally;
 * scripts/reliability.sh also builds it with -fsanitize=thread, where any data race in
 * libsmyrf is a report (and a failure). Plans use SMYRF_PARAM_THREADS = 3, so each caller
 * also runs its calls on worker threads of its own (cpu/thread_pool.hpp), and all must
 * give the same bits. */
#include <smyrf/smyrf.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define CALLS 100

typedef struct problem {
    const char *name;
    smyrf_plan *plan;
    float *q, *k, *v, *want_out, *want_lse;
    uint8_t *mask;
    size_t nq, nk, nv, no, nl, ws;
} problem;

typedef struct worker {
    const problem *p;
    int id;
    int failures;
} worker;

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static float next_float(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) * 0x1.0p-53 * 4.0 - 2.0);
}

static void *xalloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static int setup(problem *p, const char *name, smyrf_mode mode) {
    const int64_t B = 2, H = 4, Hkv = 2, Nq = 96, Nk = 80, d = 16, dv = 8;
    smyrf_config *cfg;
    if (smyrf_config_create(&cfg) != SMYRF_OK) return 0;
    const int64_t sets[][2] = {
        {SMYRF_PARAM_BATCH, B},       {SMYRF_PARAM_HEADS, H},    {SMYRF_PARAM_KV_HEADS, Hkv},
        {SMYRF_PARAM_Q_LEN, Nq},      {SMYRF_PARAM_K_LEN, Nk},   {SMYRF_PARAM_QK_DIM, d},
        {SMYRF_PARAM_V_DIM, dv},      {SMYRF_PARAM_MODE, mode},  {SMYRF_PARAM_THREADS, 3},
        {SMYRF_PARAM_Q_CLUSTER_SIZE, 16}, {SMYRF_PARAM_N_HASHES, 3}, {SMYRF_PARAM_BUDGET, 24},
        {SMYRF_PARAM_SEED, 11}};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (smyrf_config_set(cfg, (smyrf_param)sets[i][0], sets[i][1]) != SMYRF_OK) {
            fprintf(stderr, "%s: config_set: %s\n", name, smyrf_last_error_message());
            return 0;
        }
    /* the expected result: THREADS = 1, else the same config */
    smyrf_plan *serial = NULL;
    smyrf_status st = smyrf_plan_create(&p->plan, cfg);
    if (st == SMYRF_OK) st = smyrf_config_set(cfg, SMYRF_PARAM_THREADS, 1);
    if (st == SMYRF_OK) st = smyrf_plan_create(&serial, cfg);
    smyrf_config_destroy(cfg);
    if (st != SMYRF_OK) {
        fprintf(stderr, "%s: plan_create: %s\n", name, smyrf_last_error_message());
        return 0;
    }
    p->name = name;
    p->nq = (size_t)(B * H * Nq * d), p->nk = (size_t)(B * Hkv * Nk * d);
    p->nv = (size_t)(B * Hkv * Nk * dv), p->no = (size_t)(B * H * Nq * dv);
    p->nl = (size_t)(B * H * Nq);
    p->ws = smyrf_plan_workspace_size(p->plan);
    p->q = xalloc(p->nq * 4), p->k = xalloc(p->nk * 4), p->v = xalloc(p->nv * 4);
    for (size_t i = 0; i < p->nq; i++) p->q[i] = next_float();
    for (size_t i = 0; i < p->nk; i++) p->k[i] = next_float();
    for (size_t i = 0; i < p->nv; i++) p->v[i] = next_float();
    p->mask = xalloc((size_t)(B * Nk));
    for (int64_t j = 0; j < B * Nk; j++) p->mask[j] = (uint8_t)(j % 7 != 3);
    p->want_out = xalloc(p->no * 4), p->want_lse = xalloc(p->nl * 4);
    st = smyrf_execute(serial, p->q, p->k, p->v, p->mask, p->want_out, p->want_lse, NULL, 0, NULL);
    smyrf_plan_destroy(serial);
    if (st != SMYRF_OK) {
        fprintf(stderr, "%s: execute: %s\n", name, smyrf_last_error_message());
        return 0;
    }
    return 1;
}

static void *work(void *arg) {
    worker *w = (worker *)arg;
    const problem *p = w->p;
    float *out = xalloc(p->no * 4), *lse = xalloc(p->nl * 4);
    void *ws = xalloc(p->ws);
    char mine[64];
    for (int i = 0; i < CALLS; i++) {
        /* NaN everywhere: an element a call leaves unwritten cannot match */
        memset(out, 0xff, p->no * 4);
        memset(lse, 0xff, p->nl * 4);
        const int own_ws = (i + w->id) % 2;
        const smyrf_status st = smyrf_execute(p->plan, p->q, p->k, p->v, p->mask, out, lse,
                                              own_ws ? ws : NULL, own_ws ? p->ws : 0, NULL);
        if (st != SMYRF_OK) {
            fprintf(stderr, "%s thread %d call %d: %s\n", p->name, w->id, i,
                    smyrf_last_error_message());
            w->failures++;
            break;
        }
        if (memcmp(out, p->want_out, p->no * 4) != 0 || memcmp(lse, p->want_lse, p->nl * 4) != 0) {
            fprintf(stderr, "%s thread %d call %d: result differs from the serial one\n",
                    p->name, w->id, i);
            w->failures++;
            break;
        }
        /* A failing call names this thread's bad value; no other thread's message leaks in. */
        int64_t value;
        const smyrf_param bad = (smyrf_param)(1000 + w->id);
        snprintf(mine, sizeof mine, "p = %d", 1000 + w->id);
        if (smyrf_plan_get(p->plan, bad, &value) != SMYRF_ERR_INVALID_ARGUMENT ||
            strstr(smyrf_last_error_message(), mine) == NULL) {
            fprintf(stderr, "%s thread %d: last error '%s' is not this thread's ('%s')\n",
                    p->name, w->id, smyrf_last_error_message(), mine);
            w->failures++;
            break;
        }
    }
    free(out), free(lse), free(ws);
    return NULL;
}

int main(void) {
    const struct {
        const char *name;
        smyrf_mode mode;
    } modes[] = {{"SMYRF", SMYRF_MODE_SMYRF}, {"DENSE", SMYRF_MODE_DENSE}, {"HYBRID", SMYRF_MODE_HYBRID}};
    int failures = 0;
    for (size_t m = 0; m < 3; m++) {
        problem p;
        memset(&p, 0, sizeof p);
        if (!setup(&p, modes[m].name, modes[m].mode)) return 1;
        pthread_t t[THREADS];
        worker w[THREADS];
        for (int i = 0; i < THREADS; i++) {
            w[i].p = &p, w[i].id = i, w[i].failures = 0;
            if (pthread_create(&t[i], NULL, work, &w[i]) != 0) return 1;
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            failures += w[i].failures;
        }
        printf("%-6s %d threads x %d executes on one plan: %s\n", p.name, THREADS, CALLS,
               failures ? "FAILED" : "identical bits");
        smyrf_plan_destroy(p.plan);
        free(p.q), free(p.k), free(p.v), free(p.mask), free(p.want_out), free(p.want_lse);
    }
    return failures ? 1 : 0;
}
