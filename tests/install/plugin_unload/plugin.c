/* A plugin that links libsmyrf statically (pkg-config --static): one execute on two
 * threads, which leaves the calling thread a pool of workers in the library's code. */
#include <smyrf/smyrf.h>

#include <stddef.h>

int plugin_run(void) {
    enum { N = 256, D = 16 };
    static float q[N * D], k[N * D], v[N * D], out[N * D];
    for (int i = 0; i < N * D; i++) q[i] = k[i] = v[i] = (float)(i % 7) / 7.0f;
    smyrf_config *cfg;
    smyrf_plan *plan = NULL;
    if (smyrf_config_create(&cfg) != SMYRF_OK) return 1;
    int failed = smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, N) != SMYRF_OK ||
                 smyrf_config_set(cfg, SMYRF_PARAM_QK_DIM, D) != SMYRF_OK ||
                 smyrf_config_set(cfg, SMYRF_PARAM_THREADS, 2) != SMYRF_OK ||
                 smyrf_config_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU) != SMYRF_OK ||
                 smyrf_plan_create(&plan, cfg) != SMYRF_OK;
    smyrf_config_destroy(cfg);
    if (!failed) failed = smyrf_execute(plan, q, k, v, NULL, out, NULL, NULL, 0, NULL) != SMYRF_OK;
    smyrf_plan_destroy(plan);
    return failed;
}
