/* SMYRF_ERR_OUT_OF_MEMORY from an execute under a tight address-space limit. Its own
 * suite because it is skipped where the limit is not enforced (qemu-user), and CTest then
 * reports this one test as skipped (SKIP_REGULAR_EXPRESSION) without hiding another's
 * failure. tests/reliability/test_oom injects allocation failures everywhere else. */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static long vm_bytes(void) {
    FILE *fp = fopen("/proc/self/statm", "r");
    long pages = -1;
    if (fp) {
        if (fscanf(fp, "%ld", &pages) != 1) pages = -1;
        fclose(fp);
    }
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

/* An execute that cannot get its workspace reports out of memory, writes nothing, and
 * leaves the plan usable: once memory is back the same plan gives the usual result.
 * The plan: f16 DENSE, one query against 2^21 keys, cheap to compute but with a large
 * workspace (the float32 staging copies of k and v, about 64 MiB). */
static void out_of_memory_leaves_plan_usable(void **state) {
    (void)state;
    const tc_shape s = {1, 1, 0, 1, 1 << 21, 4, 0, 0};
    const size_t nk = (size_t)s.k_len * 4;
    uint16_t *q = (uint16_t *)tc_alloc(4 * 2), *k = (uint16_t *)tc_alloc(nk * 2);
    uint16_t *v = (uint16_t *)tc_alloc(nk * 2), *want = (uint16_t *)tc_alloc(4 * 2);
    uint16_t *out = (uint16_t *)tc_alloc(4 * 2);
    for (int i = 0; i < 4; i++) q[i] = tc_f32_to_f16(0.25f * (float)i);
    for (size_t i = 0; i < nk; i++) {
        k[i] = tc_f32_to_f16(0.01f * (float)(i % 17));
        v[i] = tc_f32_to_f16(0.1f * (float)(i % 5));
    }
    smyrf_config *cfg = tc_config(&s, SMYRF_MODE_DENSE);
    tc_set(cfg, SMYRF_PARAM_DTYPE, SMYRF_DTYPE_F16);
    tc_set(cfg, SMYRF_PARAM_THREADS, 1);
    smyrf_plan *plan = tc_plan(cfg);
    smyrf_config_destroy(cfg);
    assert_true(smyrf_plan_workspace_size(plan) > ((size_t)48 << 20));
    float lse_want, lse = NAN;
    assert_int_equal(smyrf_execute(plan, q, k, v, NULL, want, &lse_want, NULL, 0, NULL), SMYRF_OK);

    const long vm = vm_bytes();
    struct rlimit old = {0};  /* skip() below does not return; clang cannot tell */
    if (vm < 0 || getrlimit(RLIMIT_AS, &old) != 0) skip();
    struct rlimit tight = old;
    tight.rlim_cur = (rlim_t)vm + ((rlim_t)16 << 20);
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < tight.rlim_cur) skip();
    memset(out, 0x5a, 4 * 2);
    assert_int_equal(setrlimit(RLIMIT_AS, &tight), 0);
    /* Where the limit is not enforced (qemu-user ignores RLIMIT_AS) there is nothing to test. */
    void *probe = malloc((size_t)32 << 20);
    if (probe) {
        free(probe);
        assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
        skip();
    }
    const smyrf_status st = smyrf_execute(plan, q, k, v, NULL, out, &lse, NULL, 0, NULL);
    char message[256];
    snprintf(message, sizeof message, "%s", smyrf_last_error_message());
    assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
    if (st != SMYRF_ERR_OUT_OF_MEMORY)
        fail_msg("status %s under a tight address-space limit; message %s", smyrf_status_string(st), message);
    assert_true(strlen(message) > 0);
    for (int i = 0; i < 4; i++) assert_int_equal(out[i], 0x5a5a);
    assert_true(isnan(lse));

    assert_int_equal(smyrf_execute(plan, q, k, v, NULL, out, &lse, NULL, 0, NULL), SMYRF_OK);
    assert_memory_equal(out, want, 4 * 2);
    assert_true(lse == lse_want);
    smyrf_plan_destroy(plan);
    free(q), free(k), free(v), free(want), free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(out_of_memory_leaves_plan_usable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
