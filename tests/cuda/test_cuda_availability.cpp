// Backend selection, with or without a GPU (this suite never skips):
// - no usable device: SMYRF_BACKEND_CUDA gives SMYRF_ERR_BACKEND_UNAVAILABLE with a message
//   that says why, AUTO picks "cpu" and runs on host pointers like an explicit CPU plan;
// - a usable device 0: CUDA and AUTO give "cuda", AUTO with HYBRID gives "cpu", CUDA with
//   HYBRID is unsupported (in a SMYRF_CUDA_HYBRID build: "cuda"), and a device ordinal
//   past the last device is unavailable.
#include "cuda_test.hpp"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace {

smyrf_config *config(smyrf_backend backend, smyrf_mode mode) {
    smyrf_config *cfg = nullptr;
    REQUIRE_OK(smyrf_config_create(&cfg));
    REQUIRE_OK(smyrf_config_set(cfg, SMYRF_PARAM_HEADS, 2));
    REQUIRE_OK(smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, 100));
    REQUIRE_OK(smyrf_config_set(cfg, SMYRF_PARAM_QK_DIM, 16));
    REQUIRE_OK(smyrf_config_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 16));
    REQUIRE_OK(smyrf_config_set(cfg, SMYRF_PARAM_MODE, mode));
    REQUIRE_OK(smyrf_config_set(cfg, SMYRF_PARAM_BACKEND, backend));
    return cfg;
}

// plan_create's status (and the plan when OK).
smyrf_status try_plan(smyrf_backend backend, smyrf_mode mode, smyrf_plan **plan,
                      int64_t device = 0) {
    smyrf_config *cfg = config(backend, mode);
    REQUIRE_OK(smyrf_config_set(cfg, SMYRF_PARAM_DEVICE, device));
    *plan = nullptr;
    const smyrf_status st = smyrf_plan_create(plan, cfg);
    smyrf_config_destroy(cfg);
    return st;
}

void without_device() {
    smyrf_plan *plan = nullptr;
    const smyrf_status st = try_plan(SMYRF_BACKEND_CUDA, SMYRF_MODE_SMYRF, &plan);
    const std::string msg = smyrf_last_error_message();
    CHECK(st == SMYRF_ERR_BACKEND_UNAVAILABLE, "CUDA plan without a device: status %s (%s)",
          smyrf_status_string(st), msg.c_str());
    CHECK(plan == nullptr, "no plan may be written on failure");
    CHECK(msg.find("CUDA") != std::string::npos && msg.size() > 20,
          "the message must say why CUDA is unavailable: \"%s\"", msg.c_str());
    std::printf("CUDA without a device: %s: %s\n", smyrf_status_string(st), msg.c_str());

    // AUTO: the CPU, on host pointers, the same bits as an explicit CPU plan.
    smyrf_plan *autop = nullptr, *cpup = nullptr;
    REQUIRE_OK(try_plan(SMYRF_BACKEND_AUTO, SMYRF_MODE_SMYRF, &autop));
    REQUIRE_OK(try_plan(SMYRF_BACKEND_CPU, SMYRF_MODE_SMYRF, &cpup));
    CHECK(std::strcmp(smyrf_plan_backend_name(autop), "cpu") == 0, "AUTO picked \"%s\"",
          smyrf_plan_backend_name(autop));
    const size_t n = 2 * 100 * 16;
    std::vector<float> q(n), k(n), v(n), o1(n), o2(n), l1(200), l2(200);
    for (size_t i = 0; i < n; i++) {
        q[i] = std::sin(0.37f * (float)i);
        k[i] = std::cos(0.11f * (float)i);
        v[i] = std::sin(0.05f * (float)i + 1.0f);
    }
    REQUIRE_OK(smyrf_execute(autop, q.data(), k.data(), v.data(), nullptr, o1.data(), l1.data(),
                             nullptr, 0, nullptr));
    REQUIRE_OK(smyrf_execute(cpup, q.data(), k.data(), v.data(), nullptr, o2.data(), l2.data(),
                             nullptr, 0, nullptr));
    CHECK(std::memcmp(o1.data(), o2.data(), n * sizeof(float)) == 0, "AUTO out != CPU out");
    CHECK(std::memcmp(l1.data(), l2.data(), 200 * sizeof(float)) == 0, "AUTO lse != CPU lse");
    smyrf_plan_destroy(autop);
    smyrf_plan_destroy(cpup);

    // DENSE too.
    REQUIRE_OK(try_plan(SMYRF_BACKEND_AUTO, SMYRF_MODE_DENSE, &autop));
    CHECK(std::strcmp(smyrf_plan_backend_name(autop), "cpu") == 0, "AUTO (dense) picked \"%s\"",
          smyrf_plan_backend_name(autop));
    smyrf_plan_destroy(autop);
}

void with_device() {
    smyrf_plan *plan = nullptr;
    REQUIRE_OK(try_plan(SMYRF_BACKEND_CUDA, SMYRF_MODE_SMYRF, &plan));
    CHECK(std::strcmp(smyrf_plan_backend_name(plan), "cuda") == 0, "CUDA plan is \"%s\"",
          smyrf_plan_backend_name(plan));
    CHECK(smyrf_plan_workspace_size(plan) > 0, "a CUDA plan needs a workspace");
    smyrf_plan_destroy(plan);

    REQUIRE_OK(try_plan(SMYRF_BACKEND_AUTO, SMYRF_MODE_SMYRF, &plan));
    CHECK(std::strcmp(smyrf_plan_backend_name(plan), "cuda") == 0, "AUTO picked \"%s\"",
          smyrf_plan_backend_name(plan));
    smyrf_plan_destroy(plan);

    REQUIRE_OK(try_plan(SMYRF_BACKEND_AUTO, SMYRF_MODE_HYBRID, &plan));
    CHECK(std::strcmp(smyrf_plan_backend_name(plan), "cpu") == 0, "AUTO + HYBRID picked \"%s\"",
          smyrf_plan_backend_name(plan));
    smyrf_plan_destroy(plan);

    smyrf_status st = try_plan(SMYRF_BACKEND_CUDA, SMYRF_MODE_HYBRID, &plan);
#ifdef SMYRF_CUDA_HYBRID  // the experimental kernels: only on request
    CHECK(st == SMYRF_OK && std::strcmp(smyrf_plan_backend_name(plan), "cuda") == 0,
          "CUDA + HYBRID (SMYRF_CUDA_HYBRID build): %s", smyrf_status_string(st));
    smyrf_plan_destroy(plan);
#else
    CHECK(st == SMYRF_ERR_UNSUPPORTED, "CUDA + HYBRID: %s", smyrf_status_string(st));
#endif

    st = try_plan(SMYRF_BACKEND_CUDA, SMYRF_MODE_SMYRF, &plan, 1023);
    CHECK(st == SMYRF_ERR_BACKEND_UNAVAILABLE, "device 1023: %s", smyrf_status_string(st));
    CHECK(plan == nullptr, "no plan may be written on failure");
}

}  // namespace

int main() {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    (void)cudaGetLastError();
    int major = 0;
    const bool usable = e == cudaSuccess && count > 0 &&
                        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) ==
                            cudaSuccess &&
                        major >= 8;
    std::printf("CUDA devices: %d (%s); device 0 usable: %s\n", e == cudaSuccess ? count : 0,
                cudaGetErrorName(e), usable ? "yes" : "no");
    if (usable) with_device(); else without_device();
    if (g_failures) std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return g_failures ? 1 : 0;
}
