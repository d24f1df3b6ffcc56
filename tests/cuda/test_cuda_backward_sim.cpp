// The CUDA backward pass of SMYRF and DENSE (src/cuda/backward.cuh) run on the CPU by the
// simulator of tests/cuda/sim, against the CPU backend's backward from the same out, lse
// and dout: masks, causal (with SMYRF's fallback keys), GQA, cross-attention, rows without
// keys; DENSE in fp32, fp16 and bf16, SMYRF in fp32 on the CPU backend's own clusters
// (the simulator has no CUB sort, and the clusters are the forward's constants anyway).
// A second run with the threads and warps in the other order, a warp at a time
// (sim_test.hpp, sim_exec), must give the same bits. Needs no GPU;
// tests/cuda/test_cuda_vs_cpu runs the same kernels on a device.
#include "sim/cuda_sim.hpp"

#include "core/plan.hpp"
#include "cuda/backward.cuh"
#include "sim/cpu_clusters.hpp"
#include "sim/sim_test.hpp"

#include <cstring>
#include <string>
#include <vector>

namespace smyrf::gpu::bw {
namespace {
alignas(16) float sm[1 << 16];  // the kernel's dynamic shared memory: 256 KiB
}
}  // namespace smyrf::gpu::bw

namespace {

struct Case : CaseShape {
    smyrf_mode mode;
    int64_t R, cq;
};

const Case kCases[] = {
    {"dense, mask, GQA", 2, 2, 1, 70, 90, 24, 16, 0, 0.7, SMYRF_MODE_DENSE, 1, 64},
    {"dense causal, Nq > Nk", 1, 2, 2, 60, 40, 16, 40, 1, 0.9, SMYRF_MODE_DENSE, 1, 64},
    {"dense batch 0 fully padded", 2, 1, 1, 40, 40, 8, 8, 0, -1, SMYRF_MODE_DENSE, 1, 64},
    {"smyrf, mask, cross, GQA", 2, 4, 2, 90, 130, 16, 8, 0, 0.8, SMYRF_MODE_SMYRF, 2, 16},
    {"smyrf causal (fallback keys)", 1, 2, 1, 100, 100, 16, 16, 1, 0, SMYRF_MODE_SMYRF, 3, 10},
    // rows wider than one pass of the products (256 columns)
    {"dense, qk_dim 300", 1, 1, 1, 20, 30, 300, 8, 0, 0, SMYRF_MODE_DENSE, 1, 64},
    {"smyrf, v_dim 300", 1, 2, 1, 40, 50, 8, 300, 0, 0, SMYRF_MODE_SMYRF, 2, 16},
};

smyrf_plan *cpu_plan(const Case &c, smyrf_dtype t) {
    std::vector<std::pair<smyrf_param, int64_t>> values = shape_values(c, c.mode, t);
    values.insert(values.end(), {{SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU}, {SMYRF_PARAM_THREADS, 1}});
    if (c.mode == SMYRF_MODE_SMYRF)
        values.insert(values.end(), {{SMYRF_PARAM_N_HASHES, c.R}, {SMYRF_PARAM_Q_CLUSTER_SIZE, c.cq}});
    return plan_of(values);
}

template <class T>
void simulate(const smyrf::Desc &d, bool reverse, const std::vector<int32_t> &q_sorted,
              const std::vector<int32_t> &k_sorted, const std::vector<T> &q,
              const std::vector<T> &k, const std::vector<T> &v, const std::vector<uint8_t> &mask,
              const std::vector<T> &out, const std::vector<float> &lse, const std::vector<T> &dout,
              std::vector<T> &dq, std::vector<T> &dk, std::vector<T> &dv) {
    using namespace smyrf::gpu;
    const Problem p = make_problem(d);
    const size_t H = (size_t)(p.B * p.H);
    ValidKeys vk(mask, p.B, p.Nk);
    std::vector<int32_t> met(H * p.Nq);
    std::vector<float> sq(H * p.Nq * p.d, NAN), sk(H * p.Nk * p.d, NAN), sv(H * p.Nk * p.dv, NAN);
    std::vector<float> delta(H * p.Nq, NAN);
    Work w{};
    w.valid = vk.valid.data(), w.n_valid = vk.n_valid.data(), w.met = met.data();
    w.dq = sq.data(), w.dk = sk.data(), w.dv = sv.data(), w.delta = delta.data();
    const bool dense = d.mode == SMYRF_MODE_DENSE;
    bw::run(sim_exec(reverse, sizeof(bw::sm)), p, dense,
            dense ? nullptr : q_sorted.data(), dense ? nullptr : k_sorted.data(), q.data(),
            k.data(), v.data(), out.data(), lse.data(), dout.data(), dq.data(), dk.data(),
            dv.data(), w);
}

template <class T>
void run_case(const Case &c) {
    const std::string what = std::string(c.name) + (dtype_of<T>() == SMYRF_DTYPE_F32   ? " [f32]"
                                                    : dtype_of<T>() == SMYRF_DTYPE_F16 ? " [f16]"
                                                                                       : " [bf16]");
    g_rng = 0x5eed + (uint64_t)c.Nq * 31 + (uint64_t)c.d;
    auto draw = [](size_t n) {
        std::vector<float> x(n);
        for (auto &e : x) e = to_float(to_elem<T>((float)normal()));  // exact in T
        return x;
    };
    auto as_t = [](const std::vector<float> &x) {
        std::vector<T> y(x.size());
        for (size_t i = 0; i < x.size(); i++) y[i] = to_elem<T>(x[i]);
        return y;
    };
    std::vector<float> qf = draw((size_t)(c.B * c.H * c.Nq * c.d));
    std::vector<float> kf = draw((size_t)(c.B * c.Hkv * c.Nk * c.d));
    const std::vector<float> vf = draw((size_t)(c.B * c.Hkv * c.Nk * c.dv));
    const std::vector<float> gf = draw((size_t)(c.B * c.H * c.Nq * c.dv));
    const std::vector<uint8_t> mask = key_mask(c.B, c.Nk, c.mask_keep);
    const uint8_t *hmask = mask.empty() ? nullptr : mask.data();
    const auto q = as_t(qf), k = as_t(kf), v = as_t(vf), dout = as_t(gf);

    smyrf_plan *plan = cpu_plan(c, dtype_of<T>());
    std::vector<T> out(dout.size());
    std::vector<float> lse((size_t)(c.B * c.H * c.Nq));
    REQUIRE_OK(smyrf_execute(plan, q.data(), k.data(), v.data(), hmask, out.data(), lse.data(),
                             nullptr, 0, nullptr));
    std::vector<T> dq_cpu(q.size()), dk_cpu(k.size()), dv_cpu(v.size());
    REQUIRE_OK(smyrf_execute_backward(plan, q.data(), k.data(), v.data(), hmask, out.data(),
                                      lse.data(), dout.data(), dq_cpu.data(), dk_cpu.data(),
                                      dv_cpu.data(), nullptr, 0, nullptr));
    std::vector<int32_t> q_sorted, k_sorted;
    if (c.mode == SMYRF_MODE_SMYRF) cpu_clusters(plan->desc, qf, kf, mask, q_sorted, k_sorted);

    std::vector<T> dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<T> dq2(q.size()), dk2(k.size()), dv2(v.size());
    simulate(plan->desc, false, q_sorted, k_sorted, q, k, v, mask, out, lse, dout, dq, dk, dv);
    simulate(plan->desc, true, q_sorted, k_sorted, q, k, v, mask, out, lse, dout, dq2, dk2, dv2);
    CHECK(same_bits(dq, dq2) && same_bits(dk, dk2) && same_bits(dv, dv2),
          "%s: the thread order between barriers changed the gradients", what.c_str());
    smyrf_plan_destroy(plan);

    const double tol = dtype_of<T>() == SMYRF_DTYPE_F32 ? 2e-4 : dtype_of<T>() == SMYRF_DTYPE_F16 ? 4e-3 : 2.5e-2;
    const double wq = compare(what, "dq", dq, dq_cpu, tol), wk = compare(what, "dk", dk, dk_cpu, tol);
    const double wv = compare(what, "dv", dv, dv_cpu, tol);
    std::printf("%-40s max |diff|/max|cpu|: dq %.1e dk %.1e dv %.1e\n", what.c_str(), wq, wk, wv);
}

}  // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    for (const Case &c : kCases) {
        run_case<float>(c);
        if (c.mode == SMYRF_MODE_SMYRF) continue;  // clusters come from fp32 q and k
        run_case<__half>(c);
        run_case<__nv_bfloat16>(c);
    }
    if (g_failures) std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return g_failures ? 1 : 0;
}
