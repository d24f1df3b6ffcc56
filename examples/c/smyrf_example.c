/* The smallest useful libsmyrf program: SMYRF attention on one head, N = 1024, d = 64. */
#include <smyrf/smyrf.h>

#include <stdio.h>
#include <stdlib.h>

enum { N = 1024, D = 64 };

/* Any failing call: print the library's reason and stop. */
#define CHECK(call)                                                                 \
    do {                                                                            \
        smyrf_status s_ = (call);                                                   \
        if (s_ != SMYRF_OK) {                                                       \
            fprintf(stderr, "%s: %s: %s\n", #call, smyrf_status_string(s_),         \
                    smyrf_last_error_message());                                    \
            return 1;                                                               \
        }                                                                           \
    } while (0)

int main(void) {
    static float q[N * D], k[N * D], v[N * D], out[N * D];
    for (int i = 0; i < N * D; i++) {
        q[i] = (float)rand() / RAND_MAX - 0.5f;
        k[i] = (float)rand() / RAND_MAX - 0.5f;
        v[i] = (float)rand() / RAND_MAX - 0.5f;
    }

    smyrf_config *cfg;
    CHECK(smyrf_config_create(&cfg));
    CHECK(smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, N));  /* k_len defaults to q_len */
    CHECK(smyrf_config_set(cfg, SMYRF_PARAM_QK_DIM, D)); /* v_dim defaults to qk_dim */
    CHECK(smyrf_config_set(cfg, SMYRF_PARAM_N_HASHES, 2));
    CHECK(smyrf_config_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 64));

    smyrf_plan *plan;
    CHECK(smyrf_plan_create(&plan, cfg)); /* the plan keeps what it needs from cfg */
    smyrf_config_destroy(cfg);

    /* No mask, no lse; workspace NULL: the call allocates its own scratch memory. */
    CHECK(smyrf_execute(plan, q, k, v, NULL, out, NULL, NULL, 0, NULL));
    printf("libsmyrf %u on %s: out[0][0..3] = %.4f %.4f %.4f %.4f\n", smyrf_version_number(),
           smyrf_plan_backend_name(plan), out[0], out[1], out[2], out[3]);
    smyrf_plan_destroy(plan);

    /* Each out row is a weighted mean of v rows (weights >= 0, summing to 1), so every
     * element lies within its column's range over v: a wrong build would show here. */
    for (int c = 0; c < D; c++) {
        float lo = v[c], hi = v[c];
        for (int j = 1; j < N; j++) {
            if (v[j * D + c] < lo) lo = v[j * D + c];
            if (v[j * D + c] > hi) hi = v[j * D + c];
        }
        const float slack = 1e-5f * (hi - lo);
        for (int i = 0; i < N; i++)
            if (!(out[i * D + c] >= lo - slack && out[i * D + c] <= hi + slack)) {
                fprintf(stderr, "out[%d][%d] = %g is not within v's range [%g, %g]\n", i, c,
                        out[i * D + c], lo, hi);
                return 1;
            }
    }
    if (smyrf_version_number() != SMYRF_VERSION_NUMBER) {
        fprintf(stderr, "header version %u, library version %u\n", SMYRF_VERSION_NUMBER,
                smyrf_version_number());
        return 1;
    }
    return 0;
}
