// The CUDA forward of SMYRF and DENSE without the tensor cores' PTX path run on the CPU by
// the simulator of tests/cuda/sim, against the CPU backend's out and lse: masks, causal
// (with SMYRF's fallback keys), GQA, cross-attention, rows without keys, clusters wider
// than a query tile and longer than a key tile, dims that pad to 16; fp32, fp16 (the
// wmma tiles, emulated) and bf16; both layouts. Two ways for SMYRF:
//  - the attention and combine kernels (src/cuda/attention.cuh) on the CPU backend's own
//    clusters: every row must match;
//  - end to end: the CUDA hashing (src/cuda/transform_hash.cuh) and the flat radix sort of
//    cuda/cluster.cu (emulated: a stable sort of each segment's 64-bit keys) make the
//    clusters; rows the float64 reference calls unsure (a cut that float32 hashing may
//    move) are left out, as in test_cuda_vs_cpu, and must be at most a quarter.
// Runs with the threads in the other order between barriers, and with one warp at a
// time, must give the same bits. Needs no GPU; tests/cuda/test_cuda_vs_cpu runs the same
// kernels on a device.
#include "sim/cuda_sim.hpp"

#include "core/directions.hpp"
#include "core/plan.hpp"
#include "cuda/attention.cuh"
#include "cuda/transform_hash.cuh"
#include "ref/ref.h"
#include "sim/cpu_clusters.hpp"
#include "sim/sim_test.hpp"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

namespace smyrf::gpu::fw {
namespace {
alignas(128) unsigned char smem[1 << 18];  // the kernel's dynamic shared memory: 256 KiB
}
}  // namespace smyrf::gpu::fw

namespace {

struct Case : CaseShape {
    smyrf_mode mode;
    int64_t R, cq;
    size_t max_smem;  // the shared memory the tiles are chosen for (a device's opt-in limit)
};

constexpr size_t kH100 = 227 * 1024;
const Case kCases[] = {
    {"dense, mask, GQA", 2, 2, 1, 70, 90, 24, 16, 0, 0.7, SMYRF_MODE_DENSE, 1, 64, kH100},
    {"dense causal, Nq > Nk", 1, 2, 2, 60, 40, 16, 40, 1, 0.9, SMYRF_MODE_DENSE, 1, 64, kH100},
    {"dense causal, Nq < Nk", 1, 1, 1, 40, 100, 16, 16, 1, 0, SMYRF_MODE_DENSE, 1, 64, kH100},
    {"dense batch 0 fully padded", 2, 1, 1, 40, 40, 8, 8, 0, -1, SMYRF_MODE_DENSE, 1, 64, kH100},
    {"dense, 16 x 16 tiles", 1, 2, 1, 50, 70, 20, 12, 0, 0.8, SMYRF_MODE_DENSE, 1, 64, 12 * 1024},
    {"smyrf, mask, cross, GQA", 2, 4, 2, 90, 130, 16, 8, 0, 0.8, SMYRF_MODE_SMYRF, 2, 16, kH100},
    {"smyrf causal (fallback keys)", 1, 2, 1, 100, 100, 16, 16, 1, 0, SMYRF_MODE_SMYRF, 3, 10, kH100},
    {"smyrf, clusters past the tiles", 1, 1, 1, 300, 260, 32, 24, 0, 0.9, SMYRF_MODE_SMYRF, 2, 150, kH100},
    {"smyrf, fewer valid keys than clusters", 2, 1, 1, 64, 64, 8, 8, 0, 0.05, SMYRF_MODE_SMYRF, 2, 8, kH100},
};

smyrf_plan *cpu_plan(const Case &c, smyrf_dtype t, smyrf_layout layout) {
    std::vector<std::pair<smyrf_param, int64_t>> values = shape_values(c, c.mode, t);
    values.insert(values.end(), {{SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU}, {SMYRF_PARAM_THREADS, 1},
                                 {SMYRF_PARAM_LAYOUT, layout}});
    if (c.mode == SMYRF_MODE_SMYRF)
        values.insert(values.end(), {{SMYRF_PARAM_N_HASHES, c.R}, {SMYRF_PARAM_Q_CLUSTER_SIZE, c.cq}});
    return plan_of(values);
}

// The clusters of the CUDA backend's own hashing (cuda/backend.cu, clusters): fw::hash,
// then the flat radix sort of cuda/cluster.cu as a stable sort of each segment's keys
// (the segment sits in the keys' high bits, so one sort of everything orders the same).
// Layout as cpu_clusters: [B*H*R][Nq] and [B*H*R][Nk], valid keys first.
template <class T>
void cuda_clusters(const smyrf::Desc &d, const cuda_sim::Exec &ex, const std::vector<T> &q,
                   const std::vector<T> &k, const std::vector<uint8_t> &mask,
                   std::vector<int32_t> &q_sorted, std::vector<int32_t> &k_sorted) {
    using namespace smyrf::gpu;
    const Problem p = make_problem(d);
    const size_t segs = (size_t)(p.B * p.H * p.R);
    const size_t nq = segs * p.Nq, nk = segs * p.Nk;
    ValidKeys vk(mask, p.B, p.Nk);
    const std::vector<float> dirs = smyrf::hash_directions(d);
    std::vector<float> q_norm((size_t)(p.B * p.H * p.Nq)), k_norm((size_t)(p.B * p.Hkv * p.Nk));
    std::vector<uint32_t> q_max((size_t)(p.B * p.H), 0), k_max((size_t)(p.B * p.Hkv), 0);
    std::vector<float> q_raw(nq), k_raw(nk);
    std::vector<uint64_t> q_key(nq), k_key(nk);
    std::vector<int32_t> q_idx(nq), k_idx(nk);
    Work w{};
    w.valid = vk.valid.data(), w.n_valid = vk.n_valid.data();
    w.q_norm = q_norm.data(), w.k_norm = k_norm.data(), w.q_max = q_max.data(), w.k_max = k_max.data();
    w.q_raw = q_raw.data(), w.k_raw = k_raw.data();
    w.q_key[0] = q_key.data(), w.k_key[0] = k_key.data();
    w.q_idx[0] = q_idx.data(), w.k_idx[0] = k_idx.data();
    fw::hash(ex, p, q.data(), k.data(), mask.empty() ? nullptr : mask.data(), dirs.data(), w);
    const auto sort = [](const std::vector<uint64_t> &key, const std::vector<int32_t> &idx,
                         std::vector<int32_t> &sorted) {
        std::vector<size_t> order(key.size());
        std::iota(order.begin(), order.end(), (size_t)0);
        std::stable_sort(order.begin(), order.end(),
                         [&](size_t a, size_t b) { return key[a] < key[b]; });
        sorted.resize(key.size());
        for (size_t e = 0; e < order.size(); e++) sorted[e] = idx[order[e]];
    };
    sort(q_key, q_idx, q_sorted);
    sort(k_key, k_idx, k_sorted);
}

// The rows of a SMYRF case whose clusters float32 hashing may move (float64 reference).
std::vector<uint8_t> unsure_rows(const Case &c, const std::vector<float> &q,
                                 const std::vector<float> &k, const std::vector<float> &v,
                                 const std::vector<uint8_t> &mask) {
    std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
    smyrf_ref_problem rp{};
    rp.batch = c.B, rp.heads = c.H, rp.kv_heads = c.Hkv, rp.q_len = c.Nq, rp.k_len = c.Nk;
    rp.qk_dim = c.d, rp.v_dim = c.dv, rp.causal = c.causal, rp.scale = 0;
    rp.q = qd.data(), rp.k = kd.data(), rp.v = vd.data();
    rp.key_mask = mask.empty() ? nullptr : mask.data();
    const size_t nl = (size_t)(c.B * c.H * c.Nq);
    std::vector<double> out(nl * (size_t)c.dv), lse(nl);
    std::vector<uint8_t> unsure(nl, 0);
    smyrf_ref_smyrf(&rp, c.R, c.cq, 1234567, out.data(), lse.data(), unsure.data());
    return unsure;
}

// The device's launch sequence (cuda/backend.cu, run; cuda/dense.cu) on the simulator:
// every round's clusters (DENSE: one pass of query tiles), then the combine.
template <class T>
void simulate(const smyrf::Desc &d, const Case &c, const cuda_sim::Exec &ex,
              const std::vector<int32_t> &q_sorted, const std::vector<int32_t> &k_sorted,
              const std::vector<T> &q, const std::vector<T> &k, const std::vector<T> &v,
              const std::vector<uint8_t> &mask, std::vector<T> &out, std::vector<float> &lse) {
    using namespace smyrf::gpu;
    const Problem p = make_problem(d);
    const Tiles t = choose_tiles(d.dtype, p.d, p.dv, c.max_smem);
    CHECK(t.bq > 0, "%s: no tile shape fits %zu bytes", c.name, c.max_smem);
    const size_t rows = (size_t)(p.B * p.H * p.Nq);
    ValidKeys vk(mask, p.B, p.Nk);
    std::vector<float> acc(rows * p.dv, NAN), m(rows, NAN), l(rows, NAN);
    Work w{};
    w.valid = vk.valid.data(), w.n_valid = vk.n_valid.data();
    w.acc = acc.data(), w.m = m.data(), w.l = l.data();
    const bool dense = d.mode == SMYRF_MODE_DENSE;
    for (int r = 0; r < (dense ? 1 : p.R); r++) {
        AttentionJob job{};
        job.dense = dense;
        job.round = r;
        job.last = dense || r == p.R - 1;
        job.q_sorted = dense ? nullptr : q_sorted.data();
        job.k_sorted = dense ? nullptr : k_sorted.data();
        job.max_cluster_queries = (int)((p.Nq + p.C - 1) / p.C);
        fw::attend(ex, p, t, job, q.data(), k.data(), v.data(), w);
    }
    fw::combine(ex, p, q.data(), k.data(), v.data(), out.data(), lse.data(), w);
}

template <class T>
void run_case(const Case &c, smyrf_layout layout) {
    const std::string what = std::string(c.name) + (dtype_of<T>() == SMYRF_DTYPE_F32   ? " [f32"
                                                    : dtype_of<T>() == SMYRF_DTYPE_F16 ? " [f16"
                                                                                       : " [bf16") +
                             (layout == SMYRF_LAYOUT_BHND ? ", BHND]" : ", BNHD]");
    g_rng = 0xf0e + (uint64_t)c.Nq * 31 + (uint64_t)c.d;
    auto draw = [](size_t n) {
        std::vector<float> x(n);
        for (auto &e : x) e = to_float(to_elem<T>((float)normal()));  // exact in T
        return x;
    };
    // Logical BHND values (the float64 reference's), stored in the layout.
    const std::vector<float> qf = draw((size_t)(c.B * c.H * c.Nq * c.d));
    const std::vector<float> kf = draw((size_t)(c.B * c.Hkv * c.Nk * c.d));
    const std::vector<float> vf = draw((size_t)(c.B * c.Hkv * c.Nk * c.dv));
    const std::vector<uint8_t> mask = key_mask(c.B, c.Nk, c.mask_keep);
    const auto q = store<T>(qf, c.B, c.H, c.Nq, c.d, layout);
    const auto k = store<T>(kf, c.B, c.Hkv, c.Nk, c.d, layout);
    const auto v = store<T>(vf, c.B, c.Hkv, c.Nk, c.dv, layout);

    smyrf_plan *plan = cpu_plan(c, dtype_of<T>(), layout);
    const size_t no = (size_t)(c.B * c.H * c.Nq * c.dv), nl = (size_t)(c.B * c.H * c.Nq);
    std::vector<T> out_cpu(no);
    std::vector<float> lse_cpu(nl);
    REQUIRE_OK(smyrf_execute(plan, q.data(), k.data(), v.data(), mask.empty() ? nullptr : mask.data(),
                             out_cpu.data(), lse_cpu.data(), nullptr, 0, nullptr));
    std::vector<int32_t> q_sorted, k_sorted;
    if (c.mode == SMYRF_MODE_SMYRF) {
        std::vector<float> ql = store<float>(qf, c.B, c.H, c.Nq, c.d, layout);
        std::vector<float> kl = store<float>(kf, c.B, c.Hkv, c.Nk, c.d, layout);
        cpu_clusters(plan->desc, ql, kl, mask, q_sorted, k_sorted);
    }
    using cuda_sim::Order;
    const size_t sm = sizeof(smyrf::gpu::fw::smem);
    const cuda_sim::Exec plain{false, sm, Order::kThreads};

    std::vector<T> out(no, to_elem<T>(NAN));
    std::vector<float> lse(nl, NAN);
    simulate(plan->desc, c, plain, q_sorted, k_sorted, q, k, v, mask, out, lse);
    for (const cuda_sim::Exec &ex : {cuda_sim::Exec{true, sm, Order::kThreads},
                                     cuda_sim::Exec{false, sm, Order::kWarps},
                                     cuda_sim::Exec{true, sm, Order::kWarps}}) {
        std::vector<T> out2(no, to_elem<T>(NAN));
        std::vector<float> lse2(nl, NAN);
        simulate(plan->desc, c, ex, q_sorted, k_sorted, q, k, v, mask, out2, lse2);
        CHECK(same_bits(out, out2) && same_bits(lse, lse2),
              "%s: the order of the threads (reverse %d, warp by warp %d) changed the output",
              what.c_str(), ex.reverse, ex.order == Order::kWarps);
    }

    // fp16 and bf16: P is rounded to the dtype before P V (as on the device)
    const double tol = dtype_of<T>() == SMYRF_DTYPE_F32 ? 2e-5 : dtype_of<T>() == SMYRF_DTYPE_F16 ? 4e-3 : 2.5e-2;
    const double ltol = dtype_of<T>() == SMYRF_DTYPE_F32 ? 2e-6 : 1e-5;
    const double wo = compare(what, "out", out, out_cpu, tol);
    const double wl = compare_lse(what, lse, lse_cpu, ltol);
    std::printf("%-48s max |diff|/max|cpu|: out %.1e lse %.1e\n", what.c_str(), wo, wl);

    if (c.mode == SMYRF_MODE_SMYRF) {  // end to end, on the CUDA hashing's clusters
        std::vector<int32_t> q_cuda, k_cuda;
        cuda_clusters(plan->desc, plain, q, k, mask, q_cuda, k_cuda);
        std::vector<T> out_e2e(no, to_elem<T>(NAN));
        std::vector<float> lse_e2e(nl, NAN);
        simulate(plan->desc, c, plain, q_cuda, k_cuda, q, k, v, mask, out_e2e, lse_e2e);
        const std::vector<uint8_t> unsure = unsure_rows(c, qf, kf, vf, mask);
        // The unsure rows take the CPU's values, so that compare() looks at the others.
        size_t skipped = 0, moved = 0;
        for (size_t row = 0; row < nl; row++) {
            if (!unsure[row]) continue;
            skipped++;
            lse_e2e[row] = lse_cpu[row];
            const int64_t b = (int64_t)row / (c.H * c.Nq), h = (int64_t)row / c.Nq % c.H;
            const size_t at = (size_t)(row_in(layout, b, h, (int64_t)row % c.Nq, c.H, c.Nq) * c.dv);
            for (int64_t x = 0; x < c.dv; x++) out_e2e[at + (size_t)x] = out_cpu[at + (size_t)x];
        }
        for (size_t e = 0; e < q_cuda.size(); e++) moved += q_cuda[e] != q_sorted[e];
        CHECK(skipped * 4 <= nl, "%s: %zu of %zu rows unsure: the comparison says little",
              what.c_str(), skipped, nl);
        const double eo = compare(what + " end to end", "out", out_e2e, out_cpu, tol);
        const double el = compare_lse(what + " end to end", lse_e2e, lse_cpu, ltol);
        std::printf("%-48s end to end: out %.1e lse %.1e (%zu rows unsure; %zu of %zu sorted "
                    "query positions differ from the CPU's)\n",
                    what.c_str(), eo, el, skipped, moved, q_cuda.size());
    }
    smyrf_plan_destroy(plan);
}

}  // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    for (const Case &c : kCases)
        for (smyrf_layout layout : {SMYRF_LAYOUT_BHND, SMYRF_LAYOUT_BNHD}) {
            run_case<float>(c, layout);
            run_case<__half>(c, layout);
            run_case<__nv_bfloat16>(c, layout);
        }
    if (g_failures) std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return g_failures ? 1 : 0;
}
