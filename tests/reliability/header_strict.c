/* The public header alone, compiled as strict C99 and as C++17 with -Wall -Wextra
 * -pedantic -Werror (tests/reliability/CMakeLists.txt, tests header.c99 / header.cxx17).
 * Included twice: the include guard must hold. Every type and enum is used once so that
 * the compiler sees all of it, and every enumerator's value is pinned. */
#include <smyrf/smyrf.h>
#include <smyrf/smyrf.h>

/* Every enumerator's value is part of the ABI (bindings and programs pass them as
 * integers, so abidiff does not see most of these enums): a changed value fails to
 * compile. C99 has no static_assert; an array of negative size does the same. */
#define PIN(name, value) typedef char pinned_##name[(name) == (value) ? 1 : -1]
PIN(SMYRF_OK, 0);
PIN(SMYRF_ERR_INVALID_ARGUMENT, 1);
PIN(SMYRF_ERR_UNSUPPORTED, 2);
PIN(SMYRF_ERR_OUT_OF_MEMORY, 3);
PIN(SMYRF_ERR_BACKEND_UNAVAILABLE, 4);
PIN(SMYRF_ERR_DEVICE, 5);
PIN(SMYRF_ERR_INTERNAL, 6);
PIN(SMYRF_PARAM_BATCH, 0);
PIN(SMYRF_PARAM_HEADS, 1);
PIN(SMYRF_PARAM_KV_HEADS, 2);
PIN(SMYRF_PARAM_Q_LEN, 3);
PIN(SMYRF_PARAM_K_LEN, 4);
PIN(SMYRF_PARAM_QK_DIM, 5);
PIN(SMYRF_PARAM_V_DIM, 6);
PIN(SMYRF_PARAM_MODE, 7);
PIN(SMYRF_PARAM_N_HASHES, 8);
PIN(SMYRF_PARAM_Q_CLUSTER_SIZE, 9);
PIN(SMYRF_PARAM_K_CLUSTER_SIZE, 10);
PIN(SMYRF_PARAM_CAUSAL, 11);
PIN(SMYRF_PARAM_SEED, 12);
PIN(SMYRF_PARAM_DTYPE, 13);
PIN(SMYRF_PARAM_BACKEND, 14);
PIN(SMYRF_PARAM_DEVICE, 15);
PIN(SMYRF_PARAM_THREADS, 16);
PIN(SMYRF_PARAM_LAYOUT, 17);
PIN(SMYRF_PARAM_BUDGET, 18);
PIN(SMYRF_PARAM_WINDOW, 19);
PIN(SMYRF_PARAM_SUMMARIES, 20);
PIN(SMYRF_PARAM_SINKS, 21);
PIN(SMYRF_PARAM_KMEANS_ITERS, 22);
PIN(SMYRF_PARAM_Q_STRIDE_BATCH, 23);
PIN(SMYRF_PARAM_Q_STRIDE_HEAD, 24);
PIN(SMYRF_PARAM_Q_STRIDE_TOKEN, 25);
PIN(SMYRF_PARAM_K_STRIDE_BATCH, 26);
PIN(SMYRF_PARAM_K_STRIDE_HEAD, 27);
PIN(SMYRF_PARAM_K_STRIDE_TOKEN, 28);
PIN(SMYRF_PARAM_V_STRIDE_BATCH, 29);
PIN(SMYRF_PARAM_V_STRIDE_HEAD, 30);
PIN(SMYRF_PARAM_V_STRIDE_TOKEN, 31);
PIN(SMYRF_PARAM_OUT_STRIDE_BATCH, 32);
PIN(SMYRF_PARAM_OUT_STRIDE_HEAD, 33);
PIN(SMYRF_PARAM_OUT_STRIDE_TOKEN, 34);
PIN(SMYRF_PARAM_EXPAND, 35);
PIN(SMYRF_MODE_SMYRF, 0);
PIN(SMYRF_MODE_DENSE, 1);
PIN(SMYRF_MODE_HYBRID, 2);
PIN(SMYRF_DTYPE_F32, 0);
PIN(SMYRF_DTYPE_F16, 1);
PIN(SMYRF_DTYPE_BF16, 2);
PIN(SMYRF_BACKEND_AUTO, 0);
PIN(SMYRF_BACKEND_CPU, 1);
PIN(SMYRF_BACKEND_CUDA, 2);
PIN(SMYRF_LAYOUT_BHND, 0);
PIN(SMYRF_LAYOUT_BNHD, 1);

int main(void) {
    smyrf_config *cfg = 0;
    smyrf_plan *plan = 0;
    smyrf_status st = SMYRF_OK;
    smyrf_param p = SMYRF_PARAM_EXPAND;
    smyrf_mode m = SMYRF_MODE_HYBRID;
    smyrf_dtype dt = SMYRF_DTYPE_BF16;
    smyrf_backend be = SMYRF_BACKEND_CUDA;
    smyrf_layout lay = SMYRF_LAYOUT_BNHD;
    unsigned (*version)(void) = smyrf_version_number;
    smyrf_status (*execute)(const smyrf_plan *, const void *, const void *, const void *,
                            const uint8_t *, void *, float *, void *, size_t, void *) =
        smyrf_execute;
    (void)cfg, (void)plan, (void)version, (void)execute;
    return (int)st + (int)p + (int)m + (int)dt + (int)be + (int)lay +
           (SMYRF_VERSION_NUMBER < 0);
}
