// The AVX-512 and AVX2 kernels give the same bits end to end (README, "Reproducibility"):
// every mode's out, lse and gradients, with this CPU's kernel and again in a child process
// with SMYRF_CPU_KERNEL=avx2 (the choice is made once per process). test_stages checks the
// kernels one by one; this checks that nothing between them depends on the choice either.
// Skipped where the CPU has no AVX-512 (then both runs would use the AVX2 kernel).
#include "cpu/tile.hpp"

#include "common.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

struct Case {
    const char *name;
    tc_shape shape;
    smyrf_mode mode;
    double mask_keep;
    int64_t budget;  // HYBRID: keys per query; SMYRF: rounds x cluster 32
    bool bnhd;
};

const Case kCases[] = {
    {"smyrf gqa masked", {2, 4, 2, 300, 257, 64, 0, 0}, SMYRF_MODE_SMYRF, 0.8, 2, false},
    {"smyrf causal d21", {1, 2, 0, 200, 200, 21, 0, 1}, SMYRF_MODE_SMYRF, 0, 1, true},
    {"dense causal cross", {1, 2, 0, 130, 190, 64, 0, 1}, SMYRF_MODE_DENSE, 0, 0, false},
    {"dense decoder step", {2, 8, 2, 1, 700, 64, 0, 1}, SMYRF_MODE_DENSE, 0.8, 0, false},
    {"hybrid gqa masked", {1, 4, 2, 700, 700, 64, 0, 0}, SMYRF_MODE_HYBRID, 0.85, 64, false},
    {"hybrid expanding", {1, 2, 0, 1000, 1000, 32, 48, 0}, SMYRF_MODE_HYBRID, 0, 128, true},
    {"hybrid causal", {1, 2, 0, 500, 500, 64, 0, 1}, SMYRF_MODE_HYBRID, 0, 48, false},
};

// FNV-1a over the bytes of a buffer.
uint64_t digest(uint64_t h, const void *p, size_t bytes) {
    const unsigned char *c = (const unsigned char *)p;
    for (size_t i = 0; i < bytes; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

// Forward and backward of one case; one digest of out, lse, dq, dk and dv.
uint64_t run(const Case &c) {
    tc_inputs *in = tc_inputs_create(&c.shape, 41, c.mask_keep);
    smyrf_config *cfg = tc_config(&c.shape, c.mode);
    if (c.mode == SMYRF_MODE_SMYRF) {
        tc_set(cfg, SMYRF_PARAM_N_HASHES, c.budget);
        tc_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 32);
    }
    if (c.mode == SMYRF_MODE_HYBRID) tc_set(cfg, SMYRF_PARAM_BUDGET, c.budget);
    tc_set(cfg, SMYRF_PARAM_THREADS, 2);
    if (c.bnhd) tc_set(cfg, SMYRF_PARAM_LAYOUT, SMYRF_LAYOUT_BNHD);
    smyrf_plan *plan = tc_plan_from(cfg);
    const tc_shape &s = in->s;
    // The inputs in the plan's layout (BNHD: [B, N, H, D]).
    auto laid = [&](const float *x, int64_t H, int64_t N, int64_t D) {
        std::vector<float> y((size_t)(s.batch * H * N * D));
        if (c.bnhd) tc_scatter(x, s.batch, H, N, D, N * H * D, D, H * D, SMYRF_DTYPE_F32, y.data());
        else y.assign(x, x + y.size());
        return y;
    };
    const std::vector<float> q = laid(in->q, s.heads, s.q_len, s.qk_dim);
    const std::vector<float> k = laid(in->k, s.kv_heads, s.k_len, s.qk_dim);
    const std::vector<float> v = laid(in->v, s.kv_heads, s.k_len, s.v_dim);
    std::vector<float> out(in->no_el), lse(in->nlse), dout(in->no_el);
    tc_rng r = tc_rng_make(43);
    tc_fill_normal(&r, dout.data(), dout.size(), 1.0);
    std::vector<float> dq(in->nq_el), dk(in->nk_el), dv(in->nv_el);
    smyrf_status st = smyrf_execute(plan, q.data(), k.data(), v.data(), in->mask, out.data(),
                                    lse.data(), nullptr, 0, nullptr);
    if (st == SMYRF_OK)
        st = smyrf_execute_backward(plan, q.data(), k.data(), v.data(), in->mask, out.data(),
                                    lse.data(), dout.data(), dq.data(), dk.data(), dv.data(),
                                    nullptr, 0, nullptr);
    if (st != SMYRF_OK) fail_msg("%s: %s: %s", c.name, smyrf_status_string(st), smyrf_last_error_message());
    uint64_t h = 14695981039346656037ull;
    for (const std::vector<float> *x : {&out, &lse, &dq, &dk, &dv})
        h = digest(h, x->data(), x->size() * sizeof(float));
    smyrf_plan_destroy(plan);
    tc_inputs_destroy(in);
    return h;
}

std::string self_path() {
    char path[4096];
    const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    assert_true(n > 0);
    return std::string(path, (size_t)n);
}

void avx2_gives_the_avx512_bits(void **) {
    if (std::string(smyrf::cpu::tile_kernel_name()) != "avx512")
        skip();  // no AVX-512 here: both runs would pick the same kernel
    const std::string cmd = "SMYRF_CPU_KERNEL=avx2 '" + self_path() + "' --digests";
    FILE *child = popen(cmd.c_str(), "r");
    assert_non_null(child);
    for (const Case &c : kCases) {
        unsigned long long theirs = 0;
        char kernel[16] = {0};
        if (std::fscanf(child, "%15s %llx", kernel, &theirs) != 2) fail_msg("%s: no digest from the child", c.name);
        assert_string_equal(kernel, "avx2");
        const unsigned long long ours = run(c);
        if (ours != theirs) fail_msg("%s: avx512 %016llx, avx2 %016llx", c.name, ours, theirs);
    }
    assert_int_equal(pclose(child), 0);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc == 2 && std::string(argv[1]) == "--digests") {  // the child: one line per case
        for (const Case &c : kCases)
            std::printf("%s %016llx\n", smyrf::cpu::tile_kernel_name(), (unsigned long long)run(c));
        return 0;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(avx2_gives_the_avx512_bits)};
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
