/* fork() safety: a child process must be able to run libsmyrf after its parent has, with
 * several threads, and get the parent's bits. Python's multiprocessing, data-loader
 * workers and pre-forking servers all fork a process that has already computed.
 *
 * Cases: (1) the parent has run multi-threaded calls, then forks; the child runs the
 * same call twice (its first starts worker threads afresh). (2) the parent forks while
 * another of its threads is inside a multi-threaded call (the pool busy at the fork).
 * (3) the parent still gets the same bits after forking. A child that hangs is killed by
 * alarm() and counts as a failure (the mode's remaining children are then skipped), so
 * a hang cannot stall the suite. */
#include <smyrf/smyrf.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_SECONDS 20

typedef struct problem {
    smyrf_plan *plan;
    float *q, *k, *v, *want;
    size_t nq, no;
} problem;

static int setup(problem *p, smyrf_mode mode) {
    const int64_t B = 2, H = 4, N = 300, d = 32;
    smyrf_config *cfg;
    if (smyrf_config_create(&cfg) != SMYRF_OK) return 0;
    const int64_t sets[][2] = {{SMYRF_PARAM_BATCH, B},  {SMYRF_PARAM_HEADS, H},
                               {SMYRF_PARAM_Q_LEN, N},  {SMYRF_PARAM_QK_DIM, d},
                               {SMYRF_PARAM_MODE, mode}, {SMYRF_PARAM_THREADS, 2},
                               {SMYRF_PARAM_Q_CLUSTER_SIZE, 32}, {SMYRF_PARAM_BUDGET, 40}};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (smyrf_config_set(cfg, (smyrf_param)sets[i][0], sets[i][1]) != SMYRF_OK) return 0;
    const smyrf_status st = smyrf_plan_create(&p->plan, cfg);
    smyrf_config_destroy(cfg);
    if (st != SMYRF_OK) return 0;
    p->nq = (size_t)(B * H * N * d), p->no = p->nq;
    p->q = malloc(p->nq * 4), p->k = malloc(p->nq * 4), p->v = malloc(p->nq * 4);
    p->want = malloc(p->no * 4);
    if (!p->q || !p->k || !p->v || !p->want) return 0;
    uint64_t x = 0x2545f4914f6cdd1dULL;
    for (size_t i = 0; i < p->nq; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const float f = (float)((double)(x >> 11) * 0x1.0p-53 * 2.0 - 1.0);
        p->q[i] = f, p->k[i] = 0.5f * f + 0.25f, p->v[i] = -f;
    }
    return smyrf_execute(p->plan, p->q, p->k, p->v, NULL, p->want, NULL, NULL, 0, NULL) ==
           SMYRF_OK;
}

/* 1 when a call gives the wanted bits. */
static int same_again(const problem *p) {
    float *out = malloc(p->no * 4);
    if (!out) return 0;
    const int ok = smyrf_execute(p->plan, p->q, p->k, p->v, NULL, out, NULL, NULL, 0, NULL) ==
                       SMYRF_OK &&
                   memcmp(out, p->want, p->no * 4) == 0;
    free(out);
    return ok;
}

/* Forks; the child makes two calls and exits 0 when both give the wanted bits. Returns 1
 * when the child did so. */
static int child_agrees(const problem *p, const char *label) {
    const pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork failed\n", label);
        return 0;
    }
    if (pid == 0) {
        alarm(CHILD_SECONDS);
        _exit(same_again(p) && same_again(p) ? 0 : 3);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 0;
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "%s: the child was killed by signal %d%s\n", label, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (it hung)" : "");
        return 0;
    }
    if (WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: the child's results differ from the parent's\n", label);
        return 0;
    }
    return 1;
}

typedef struct busy_loop {
    const problem *p;
    int stop; /* read and written with __atomic builtins */
    int failures;
} busy_loop;

static void *keep_executing(void *arg) {
    busy_loop *b = arg;
    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE))
        if (!same_again(b->p)) b->failures++;
    return NULL;
}

int main(void) {
    const smyrf_mode modes[] = {SMYRF_MODE_SMYRF, SMYRF_MODE_DENSE, SMYRF_MODE_HYBRID};
    const char *names[] = {"SMYRF", "DENSE", "HYBRID"};
    int failures = 0;
    for (int m = 0; m < 3; m++) {
        problem p;
        memset(&p, 0, sizeof p);
        if (!setup(&p, modes[m])) {
            fprintf(stderr, "%s: setup failed: %s\n", names[m], smyrf_last_error_message());
            return 1;
        }
        int ok = child_agrees(&p, names[m]);

        busy_loop b = {&p, 0, 0};
        pthread_t t;
        if (pthread_create(&t, NULL, keep_executing, &b) != 0) return 1;
        for (int i = 0; i < 5 && ok; i++) ok = child_agrees(&p, names[m]);
        __atomic_store_n(&b.stop, 1, __ATOMIC_RELEASE);
        pthread_join(t, NULL);
        ok &= b.failures == 0 && same_again(&p);

        printf("%-6s forked children (one while a call runs): %s\n", names[m],
               ok ? "same bits" : "FAILED");
        failures += !ok;
        smyrf_plan_destroy(p.plan);
        free(p.q), free(p.k), free(p.v), free(p.want);
    }
    return failures ? 1 : 0;
}
