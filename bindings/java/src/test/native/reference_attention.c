/* The C side of org.smyrf.MatchesCLibraryTest and BackwardTest: runs libsmyrf on the
 * inputs TestData.java makes and writes out, then lse (then dq, dk, dv with BACKWARD = 1),
 * as raw native-endian float32 to stdout.
 *
 * usage: smyrf_java_reference B H KV_HEADS Q_LEN K_LEN QK_DIM V_DIM MODE N_HASHES
 *                             Q_CLUSTER_SIZE SEED DATA_SEED MASKED [BACKWARD [P=VALUE ...]]
 * Inputs: q, k, v (and dout with BACKWARD = 1) filled in that order by one splitmix64
 * stream from DATA_SEED, each value ((x >> 40) - 2^23) / 2^23; with MASKED = 1, key j of
 * batch b is valid unless (7 b + 3 j) % 5 == 0. Each P=VALUE sets the smyrf_param numbered
 * P (e.g. 19=16 for SMYRF_PARAM_WINDOW) after the others. With BACKWARD = 1 the forward's
 * out and lse feed smyrf_execute_backward. Exit status 1 on a library error (message on
 * stderr). */
#include <smyrf/smyrf.h>

#include <stdio.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill(float *x, size_t n, uint64_t *state) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((int64_t)(splitmix64(state) >> 40) - (1 << 23)) / 8388608.0f;
}

static int check(smyrf_status status) {
    if (status == SMYRF_OK) return 0;
    fprintf(stderr, "%s: %s\n", smyrf_status_string(status), smyrf_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 14) {
        fprintf(stderr, "usage: %s B H KV_HEADS Q_LEN K_LEN QK_DIM V_DIM MODE N_HASHES "
                        "Q_CLUSTER_SIZE SEED DATA_SEED MASKED [BACKWARD [P=VALUE ...]]\n",
                argv[0]);
        return 2;
    }
    const smyrf_param params[] = {SMYRF_PARAM_BATCH, SMYRF_PARAM_HEADS, SMYRF_PARAM_KV_HEADS,
                                  SMYRF_PARAM_Q_LEN, SMYRF_PARAM_K_LEN, SMYRF_PARAM_QK_DIM,
                                  SMYRF_PARAM_V_DIM, SMYRF_PARAM_MODE, SMYRF_PARAM_N_HASHES,
                                  SMYRF_PARAM_Q_CLUSTER_SIZE, SMYRF_PARAM_SEED};
    int64_t value[11];
    for (int i = 0; i < 11; i++) value[i] = strtoll(argv[i + 1], NULL, 10);
    uint64_t state = (uint64_t)strtoll(argv[12], NULL, 10);
    const int masked = atoi(argv[13]);
    const int backward = argc > 14 && atoi(argv[14]) != 0;
    const int64_t b = value[0], h = value[1], hkv = value[2], nq = value[3], nk = value[4],
                  d = value[5], dv = value[6];

    smyrf_config *cfg;
    smyrf_plan *plan;
    if (check(smyrf_config_create(&cfg))) return 1;
    for (int i = 0; i < 11; i++)
        if (check(smyrf_config_set(cfg, params[i], value[i]))) return 1;
    for (int i = 15; i < argc; i++) {
        char *end;
        const long p = strtol(argv[i], &end, 10);
        if (*end != '=') {
            fprintf(stderr, "%s: expected P=VALUE\n", argv[i]);
            return 2;
        }
        if (check(smyrf_config_set(cfg, (smyrf_param)p, strtoll(end + 1, NULL, 10)))) return 1;
    }
    if (check(smyrf_config_set(cfg, SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU))) return 1;
    if (check(smyrf_plan_create(&plan, cfg))) return 1;
    smyrf_config_destroy(cfg);

    const size_t nq_el = (size_t)(b * h * nq * d), nk_el = (size_t)(b * hkv * nk * d),
                 nv_el = (size_t)(b * hkv * nk * dv), no_el = (size_t)(b * h * nq * dv),
                 nl_el = (size_t)(b * h * nq);
    float *q = malloc(nq_el * 4), *k = malloc(nk_el * 4), *v = malloc(nv_el * 4);
    float *out = malloc(no_el * 4), *lse = malloc(nl_el * 4), *grad_out = malloc(no_el * 4);
    float *grad_q = malloc(nq_el * 4), *grad_k = malloc(nk_el * 4), *grad_v = malloc(nv_el * 4);
    uint8_t *mask = malloc((size_t)(b * nk));
    if (!q || !k || !v || !out || !lse || !grad_out || !grad_q || !grad_k || !grad_v || !mask)
        return 1;
    fill(q, nq_el, &state);
    fill(k, nk_el, &state);
    fill(v, nv_el, &state);
    fill(grad_out, no_el, &state);
    for (int64_t bi = 0; bi < b; bi++)
        for (int64_t j = 0; j < nk; j++) mask[bi * nk + j] = (7 * bi + 3 * j) % 5 != 0;

    if (check(smyrf_execute(plan, q, k, v, masked ? mask : NULL, out, lse, NULL, 0, NULL)))
        return 1;
    fwrite(out, 4, no_el, stdout);
    fwrite(lse, 4, nl_el, stdout);
    if (backward) {
        if (check(smyrf_execute_backward(plan, q, k, v, masked ? mask : NULL, out, lse,
                                         grad_out, grad_q, grad_k, grad_v, NULL, 0, NULL)))
            return 1;
        fwrite(grad_q, 4, nq_el, stdout);
        fwrite(grad_k, 4, nk_el, stdout);
        fwrite(grad_v, 4, nv_el, stdout);
    }
    smyrf_plan_destroy(plan);
    free(q), free(k), free(v), free(out), free(lse), free(mask);
    free(grad_out), free(grad_q), free(grad_k), free(grad_v);
    return fflush(stdout) == 0 ? 0 : 1;
}
