// The CUDA backend's HYBRID kernels (src/cuda/hybrid_groups.cuh, hybrid_attention.cuh,
// hybrid_backward.cuh) run on the CPU by the simulator of tests/cuda/sim, against the CPU
// backend, forward (out, lse) and backward (dq, dk, dv from the same out, lse, dout): k-means
// groups, expansion, causal blocks, masks, GQA, cross-attention, the dense limit, rows
// without keys; fp32, fp16 and bf16; both layouts. Every element must match the CPU within
// the dtype's tolerance, lse = -inf exactly where the CPU has it, and a run whose threads
// and warps go the other way round, a warp at a time (sim_test.hpp, sim_exec), must give
// the same bits (a read that no barrier orders after its write would differ). Needs no GPU, so it runs everywhere the
// CUDA headers are; tests/cuda/test_cuda_vs_cpu runs the same kernels on a device.
#include "sim/cuda_sim.hpp"

#include "core/plan.hpp"
#include "sim/sim_test.hpp"
#include "cuda/hybrid_attention.cuh"
#include "cuda/hybrid_backward.cuh"
#include "cuda/hybrid_groups.cuh"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace smyrf::gpu::hy {
namespace {
alignas(16) float smem[1 << 16];  // the kernels' dynamic shared memory: 256 KiB
}
}  // namespace smyrf::gpu::hy

namespace {

struct Case : CaseShape {
    int64_t budget;
    int64_t summaries = 0, iters = 0, expand = -1;  // 0 / -1: derived from the budget
    // The backward gets lse = -inf on every 5th row (a row the caller's forward did not
    // reach): such a row must contribute nothing, as on the CPU.
    bool lse_gaps = false;
};

const Case kCases[] = {
    {"groups, 300 keys", 1, 2, 2, 300, 300, 32, 32, 0, 0, 64},
    {"51 groups (lanes own two), expanding, d 40", 1, 1, 1, 320, 320, 40, 72, 0, 0, 256},
    {"expanding, GQA, mask", 2, 2, 1, 200, 200, 16, 16, 0, 0.7, 64},
    {"cross, dv != d", 1, 2, 1, 120, 250, 24, 8, 0, 0, 32},
    {"3 iterations, 20 summaries, no expansion", 1, 1, 1, 300, 300, 32, 32, 0, 0, 96, 20, 3, 0},
    {"causal, padded, Nk > Nq", 2, 2, 1, 100, 180, 16, 16, 1, 0.8, 32},
    {"causal, Nq > Nk (rows without keys)", 1, 1, 1, 80, 30, 8, 8, 1, 0, 16},
    {"dense limit", 1, 1, 1, 60, 60, 16, 16, 0, 0.9, 128},
    {"batch 0 fully padded", 2, 1, 1, 40, 40, 16, 16, 0, -1, 16},
    // Every key exact: the per-warp scratch is sized by the keys, not by the budget.
    {"budget 5000 on 100 keys, padded", 2, 2, 1, 90, 100, 16, 16, 0, 0.8, 5000},
    {"given lse -inf on some rows", 1, 2, 1, 150, 150, 16, 16, 0, 0, 32, 0, 0, -1, true},
    {"given lse -inf on some rows, causal", 1, 1, 1, 100, 100, 16, 16, 1, 0, 32, 0, 0, -1, true},
};

struct Tol {
    double out, lse;
};
template <class T> Tol tolerance();  // as tests/cuda/test_cuda_vs_cpu.cpp
template <> Tol tolerance<float>() { return {5e-5, 2e-5}; }
template <> Tol tolerance<__half>() { return {4e-3, 5e-4}; }
template <> Tol tolerance<__nv_bfloat16>() { return {2.5e-2, 5e-4}; }

smyrf_plan *cpu_plan(const Case &c, smyrf_dtype t, smyrf_layout layout) {
    std::vector<std::pair<smyrf_param, int64_t>> values = shape_values(c, SMYRF_MODE_HYBRID, t);
    values.insert(values.end(), {
        {SMYRF_PARAM_LAYOUT, layout},     {SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU},
        {SMYRF_PARAM_BUDGET, c.budget},   {SMYRF_PARAM_SUMMARIES, c.summaries},
        {SMYRF_PARAM_KMEANS_ITERS, c.iters}, {SMYRF_PARAM_EXPAND, c.expand},
        {SMYRF_PARAM_THREADS, 1},
    });
    return plan_of(values);
}

// The host buffers of a simulated execute: valid keys (as valid_keys in cluster.cu leaves
// them), and HYBRID's workspace, NaN-filled so that a read of something never written
// shows.
struct SimWork {
    smyrf::gpu::Problem p;
    smyrf::gpu::HybridParams hp;
    ValidKeys vk;
    std::vector<unsigned char> ws;
    smyrf::gpu::HybridWork hw;
    smyrf::gpu::HybridGrads hg;

    SimWork(const smyrf::Desc &d, const std::vector<uint8_t> &mask, bool grads)
        : p(smyrf::gpu::make_problem(d)), hp(smyrf::gpu::make_hybrid_params(d)),
          vk(mask, p.B, p.Nk) {
        using namespace smyrf::gpu;
        Carver sizing(nullptr);
        carve_hybrid(sizing, d, hp, 0);
        if (grads) carve_hybrid_grads(sizing, d, hp);
        ws.assign(sizing.used() + 256, 0xff);
        Carver carver((void *)(((uintptr_t)ws.data() + 255) & ~(uintptr_t)255));
        hw = carve_hybrid(carver, d, hp, 0);
        if (grads) hg = carve_hybrid_grads(carver, d, hp);
    }

    // Step 3 (the groups), which the forward and the backward both start with.
    template <class T>
    void build_groups(const cuda_sim::Exec &ex, const std::vector<T> &k, const std::vector<T> &v) {
        smyrf::gpu::hy::build_groups(ex, p, hp, k.data(), v.data(), vk.valid.data(),
                                     vk.n_valid.data(), hw);
    }
};

constexpr int kWarps = 2;  // two warps per block: their rows must not interfere

// The simulated CUDA forward: out (in the plan's layout) and lse.
template <class T>
void simulate(const smyrf::Desc &d, bool reverse, const std::vector<T> &q, const std::vector<T> &k,
              const std::vector<T> &v, const std::vector<uint8_t> &mask, std::vector<T> &out,
              std::vector<float> &lse) {
    using namespace smyrf::gpu;
    SimWork sw(d, mask, false);
    const cuda_sim::Exec ex = sim_exec(reverse, sizeof(hy::smem));
    sw.build_groups(ex, k, v);
    hy::attend(ex, sw.p, sw.hp, kWarps, q.data(), k.data(), v.data(), out.data(), lse.data(),
               sw.vk.valid.data(), sw.hw);
}

// The simulated CUDA backward: dq, dk, dv from out, lse and dout.
template <class T>
void simulate_backward(const smyrf::Desc &d, bool reverse, const std::vector<T> &q,
                       const std::vector<T> &k, const std::vector<T> &v,
                       const std::vector<uint8_t> &mask, const std::vector<T> &out,
                       const std::vector<float> &lse, const std::vector<T> &dout,
                       std::vector<T> &dq, std::vector<T> &dk, std::vector<T> &dv) {
    using namespace smyrf::gpu;
    SimWork sw(d, mask, true);
    const cuda_sim::Exec ex = sim_exec(reverse, sizeof(hy::smem));
    sw.build_groups(ex, k, v);
    hy::backward(ex, sw.p, sw.hp, kWarps, q.data(), k.data(), v.data(), out.data(), lse.data(),
                 dout.data(), dq.data(), dk.data(), dv.data(), sw.vk.valid.data(), sw.hw, sw.hg);
}

template <class T>
void run_case(const Case &c, smyrf_layout layout, bool both_orders) {
    const Tol tol = tolerance<T>();
    const std::string what = std::string(c.name) + " [" +
                             (dtype_of<T>() == SMYRF_DTYPE_F32   ? "f32"
                              : dtype_of<T>() == SMYRF_DTYPE_F16 ? "f16" : "bf16") +
                             (layout == SMYRF_LAYOUT_BHND ? ", BHND]" : ", BNHD]");
    g_rng = 0x5eed + (uint64_t)c.Nq * 31 + (uint64_t)c.d;
    auto draw = [](size_t n) {
        std::vector<float> x(n);
        for (auto &e : x) e = (float)normal();
        return x;
    };
    const auto q = store<T>(draw((size_t)(c.B * c.H * c.Nq * c.d)), c.B, c.H, c.Nq, c.d, layout);
    const auto k = store<T>(draw((size_t)(c.B * c.Hkv * c.Nk * c.d)), c.B, c.Hkv, c.Nk, c.d, layout);
    const auto v = store<T>(draw((size_t)(c.B * c.Hkv * c.Nk * c.dv)), c.B, c.Hkv, c.Nk, c.dv, layout);
    const std::vector<uint8_t> mask = key_mask(c.B, c.Nk, c.mask_keep);
    const size_t no = (size_t)(c.B * c.H * c.Nq * c.dv), nl = (size_t)(c.B * c.H * c.Nq);

    smyrf_plan *plan = cpu_plan(c, dtype_of<T>(), layout);
    std::vector<T> out_cpu(no, to_elem<T>(NAN));
    std::vector<float> lse_cpu(nl, NAN);
    CHECK(smyrf_execute(plan, q.data(), k.data(), v.data(), mask.empty() ? nullptr : mask.data(),
                        out_cpu.data(), lse_cpu.data(), nullptr, 0, nullptr) == SMYRF_OK,
          "%s: CPU execute: %s", what.c_str(), smyrf_last_error_message());

    std::vector<T> out(no, to_elem<T>(NAN));
    std::vector<float> lse(nl, NAN);
    simulate(plan->desc, false, q, k, v, mask, out, lse);
    if (both_orders) {
        std::vector<T> out2(no, to_elem<T>(NAN));
        std::vector<float> lse2(nl, NAN);
        simulate(plan->desc, true, q, k, v, mask, out2, lse2);
        CHECK(same_bits(out, out2) && same_bits(lse, lse2),
              "%s: the thread order between barriers changed the result", what.c_str());
    }

    // Backward: both from the CPU forward's out and lse and the same dout.
    std::vector<float> lse_given = lse_cpu;
    if (c.lse_gaps)
        for (size_t row = 0; row < nl; row += 5) lse_given[row] = -INFINITY;
    const size_t nq = q.size(), nk = k.size(), nv = v.size();
    const auto dout = store<T>(draw(no), c.B, c.H, c.Nq, c.dv, layout);
    std::vector<T> dq_cpu(nq), dk_cpu(nk), dv_cpu(nv), dq(nq), dk(nk), dv(nv);
    CHECK(smyrf_execute_backward(plan, q.data(), k.data(), v.data(),
                                 mask.empty() ? nullptr : mask.data(), out_cpu.data(),
                                 lse_given.data(), dout.data(), dq_cpu.data(), dk_cpu.data(),
                                 dv_cpu.data(), nullptr, 0, nullptr) == SMYRF_OK,
          "%s: CPU backward: %s", what.c_str(), smyrf_last_error_message());
    simulate_backward(plan->desc, false, q, k, v, mask, out_cpu, lse_given, dout, dq, dk, dv);
    if (both_orders) {
        std::vector<T> dq2(nq), dk2(nk), dv2(nv);
        simulate_backward(plan->desc, true, q, k, v, mask, out_cpu, lse_given, dout, dq2, dk2, dv2);
        CHECK(same_bits(dq, dq2) && same_bits(dk, dk2) && same_bits(dv, dv2),
              "%s: the thread order between barriers changed the gradients", what.c_str());
    }
    smyrf_plan_destroy(plan);

    const double worst = compare(what, "out", out, out_cpu, tol.out);
    const double gtol = dtype_of<T>() == SMYRF_DTYPE_F32 ? 2e-4 : tol.out;  // as on the GPU
    const double wq = compare(what, "dq", dq, dq_cpu, gtol), wk = compare(what, "dk", dk, dk_cpu, gtol);
    const double wv = compare(what, "dv", dv, dv_cpu, gtol);
    const double worst_lse = compare_lse(what, lse, lse_cpu, tol.lse);
    std::printf("%-52s max |diff|/max|cpu|: out %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n",
                what.c_str(), worst, worst_lse, wq, wk, wv);
}

// A layout larger than any machine is refused as out of memory, not wrapped around 2^64:
// here rows * G * 4 bytes = 2^16 * (2^31 - 1) * 2^20 * 4 (a wrapped size came out small,
// and the kernels would have written far past the workspace).
void workspace_overflow_is_refused() {
    smyrf::Desc d{};
    d.batch = 1, d.heads = 1 << 16, d.kv_heads = 1;
    d.q_len = INT32_MAX, d.k_len = 1 << 20, d.qk_dim = d.v_dim = 64;
    d.mode = SMYRF_MODE_HYBRID;
    d.budget = (1 << 20) + 64, d.window = 64, d.summaries = 1 << 20;
    const smyrf::gpu::HybridParams hp = smyrf::gpu::make_hybrid_params(d);
    smyrf::gpu::Carver sizing(nullptr);
    smyrf_status status = SMYRF_OK;
    try {
        smyrf::gpu::carve_hybrid(sizing, d, hp, 0);
        smyrf::gpu::carve_hybrid_grads(sizing, d, hp);
    } catch (const smyrf::Error &e) {
        status = e.status();
    }
    CHECK(status == SMYRF_ERR_OUT_OF_MEMORY,
          "a workspace beyond 2^62 bytes: status %s, %zu bytes carved",
          smyrf_status_string(status), sizing.used());
}

}  // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    workspace_overflow_is_refused();
    for (const Case &c : kCases) {  // each dtype once, both layouts, both thread orders
        run_case<float>(c, SMYRF_LAYOUT_BHND, true);
        run_case<__half>(c, SMYRF_LAYOUT_BNHD, false);
        run_case<__nv_bfloat16>(c, SMYRF_LAYOUT_BHND, false);
    }
    if (g_failures) std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return g_failures ? 1 : 0;
}
