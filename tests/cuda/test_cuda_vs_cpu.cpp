// The CUDA backend against the CPU backend, case by case: fp32, fp16 and bf16, both
// layouts and explicit strides, key-padding masks, causal, GQA, cross-attention, awkward
// sizes, SMYRF and DENSE modes, and HYBRID in a SMYRF_CUDA_HYBRID build. Skips (77) where
// no usable GPU exists.
//
// SMYRF rows whose cluster borders a cut that float32 hashing could place differently
// (the float64 reference flags them) are left out of the comparison, as in
// tests/c/test_smyrf.c; every other row must match the CPU within the dtype's tolerance.
// Also checked: no NaN anywhere, padding of a strided out untouched, lse = -inf exactly
// where the CPU has it, run-to-run bitwise equality (own workspace vs caller workspace on
// a non-default stream), and a workspace of exactly smyrf_plan_workspace_size bytes.
// The backward likewise: dq, dk, dv of both backends from the same out, lse and dout.
#include "cuda_test.hpp"

#include "ref/ref.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

enum class Strided { no, yes };

struct Case : CaseShape {
    smyrf_mode mode;
    int64_t R, cq;
    int64_t budget = 0;  // HYBRID: keys per query (expansion derived)
};

const Case kCases[] = {
    {"smyrf 587, d 32", 1, 2, 2, 587, 587, 32, 32, 0, 0, SMYRF_MODE_SMYRF, 2, 64},
    {"smyrf d 64, 2 batches, mask", 2, 2, 2, 300, 300, 64, 64, 0, 0.7, SMYRF_MODE_SMYRF, 2, 37},
    {"smyrf GQA, cross, dv != d", 1, 4, 2, 200, 333, 40, 24, 0, 0, SMYRF_MODE_SMYRF, 3, 16},
    {"smyrf causal, d 128", 1, 2, 1, 300, 300, 128, 128, 1, 0, SMYRF_MODE_SMYRF, 2, 100},
    {"smyrf causal, padded, Nk > Nq", 2, 2, 1, 150, 260, 8, 8, 1, 0.8, SMYRF_MODE_SMYRF, 4, 16},
    {"smyrf causal, Nq > Nk (rows without keys)", 1, 2, 2, 120, 50, 8, 8, 1, 0, SMYRF_MODE_SMYRF, 2, 16},
    {"smyrf few valid keys, empty clusters", 2, 1, 1, 100, 100, 8, 8, 0, 0.04, SMYRF_MODE_SMYRF, 2, 10},
    {"smyrf one cluster (= dense)", 1, 2, 2, 130, 130, 16, 16, 0, 0, SMYRF_MODE_SMYRF, 2, 1 << 20},
    {"smyrf big clusters (> 64 queries)", 1, 1, 1, 700, 700, 64, 64, 0, 0, SMYRF_MODE_SMYRF, 2, 300},
    {"smyrf Nq = 1", 1, 1, 1, 1, 17, 5, 3, 0, 0, SMYRF_MODE_SMYRF, 2, 64},
    {"smyrf d 256, awkward N", 1, 1, 1, 197, 211, 256, 256, 0, 0, SMYRF_MODE_SMYRF, 1, 16},
    {"smyrf batch 0 fully padded", 2, 1, 1, 64, 64, 16, 16, 0, -1, SMYRF_MODE_SMYRF, 2, 16},
    {"dense 333 x 517, mask", 2, 2, 1, 333, 517, 48, 32, 0, 0.6, SMYRF_MODE_DENSE, 1, 64},
    {"dense causal, d 128", 1, 2, 2, 257, 257, 128, 128, 1, 0, SMYRF_MODE_DENSE, 1, 64},
    {"dense causal, Nq > Nk", 1, 1, 1, 100, 40, 24, 24, 1, 0.9, SMYRF_MODE_DENSE, 1, 64},
    {"dense d 3", 1, 3, 3, 70, 70, 3, 7, 0, 0, SMYRF_MODE_DENSE, 1, 64},
#ifdef SMYRF_CUDA_HYBRID
    // HYBRID: k-means groups, expansion (groups that fit E), causal blocks, the dense limit.
    {"hybrid 587, d 32", 1, 2, 2, 587, 587, 32, 32, 0, 0, SMYRF_MODE_HYBRID, 0, 0, 64},
    {"hybrid expanding, GQA, mask", 2, 2, 1, 300, 300, 64, 64, 0, 0.7, SMYRF_MODE_HYBRID, 0, 0, 128},
    {"hybrid cross, dv != d", 1, 4, 2, 200, 333, 40, 24, 0, 0, SMYRF_MODE_HYBRID, 0, 0, 32},
    {"hybrid d 128, 1500 keys", 1, 2, 1, 1500, 1500, 128, 128, 0, 0, SMYRF_MODE_HYBRID, 0, 0, 128},
    {"hybrid causal, padded, Nk > Nq", 2, 2, 1, 150, 260, 16, 16, 1, 0.8, SMYRF_MODE_HYBRID, 0, 0, 48},
    {"hybrid causal, Nq > Nk (rows without keys)", 1, 2, 2, 120, 50, 8, 8, 1, 0, SMYRF_MODE_HYBRID, 0, 0, 16},
    {"hybrid causal, 700", 1, 1, 1, 700, 700, 64, 64, 1, 0, SMYRF_MODE_HYBRID, 0, 0, 64},
    {"hybrid dense limit", 1, 2, 2, 100, 100, 16, 16, 0, 0.9, SMYRF_MODE_HYBRID, 0, 0, 128},
    // a budget far above the keys: shared memory is sized by the keys (the budget alone
    // would ask for about 240 KB per warp, more than a block has)
    {"hybrid budget 30000 on 100 keys", 1, 2, 1, 100, 100, 16, 16, 0, 0.9, SMYRF_MODE_HYBRID, 0, 0, 30000},
    {"hybrid batch 0 fully padded", 2, 1, 1, 64, 64, 16, 16, 0, -1, SMYRF_MODE_HYBRID, 0, 0, 16},
#endif
};

struct Tol {
    double out, lse;
};
Tol tolerance(smyrf_dtype t) {
    // fp32: only rounding order differs. fp16/bf16: the CUDA kernel rounds the softmax
    // weights to the input dtype for the P V product (as FlashAttention does) and both
    // backends round out to the dtype (one ulp: 2^-11 fp16, 2^-8 bf16).
    switch (t) {
    case SMYRF_DTYPE_F32: return {5e-5, 2e-5};
    case SMYRF_DTYPE_F16: return {4e-3, 5e-4};
    case SMYRF_DTYPE_BF16: return {2.5e-2, 5e-4};
    }
    return {0, 0};
}

const char *dtype_name(smyrf_dtype t) {
    return t == SMYRF_DTYPE_F32 ? "f32" : t == SMYRF_DTYPE_F16 ? "f16" : "bf16";
}

float quantize(float x, smyrf_dtype t) {
    if (t == SMYRF_DTYPE_F16) return __half2float(__float2half_rn(x));
    if (t == SMYRF_DTYPE_BF16) return __bfloat162float(__float2bfloat16_rn(x));
    return x;
}

// A [B, heads, N, dim] tensor in the caller's memory format: its strides and bytes.
struct Format {
    int64_t sb, sh, st;  // element strides
    size_t elems;        // span in elements
};
Format format_of(int64_t B, int64_t heads, int64_t N, int64_t dim, smyrf_layout layout,
                 Strided strided) {
    Format f{};
    if (strided == Strided::yes) {  // padded rows, heads and batches
        f.st = dim + 5;
        f.sh = N * f.st + 3;
        f.sb = heads * f.sh + 11;
    } else if (layout == SMYRF_LAYOUT_BHND) {
        f.st = dim, f.sh = N * dim, f.sb = heads * N * dim;
    } else {
        f.st = heads * dim, f.sh = dim, f.sb = N * heads * dim;
    }
    f.elems = (size_t)((B - 1) * f.sb + (heads - 1) * f.sh + (N - 1) * f.st + dim);
    return f;
}

size_t at(const Format &f, int64_t b, int64_t h, int64_t n) {
    return (size_t)(b * f.sb + h * f.sh + n * f.st);
}

// Host buffer in the dtype: logical BHND fp32 values placed at the format's offsets, the
// gaps filled with `fill` (NaN for inputs: they must never be read).
std::vector<unsigned char> pack(const std::vector<float> &x, int64_t B, int64_t heads, int64_t N,
                                int64_t dim, const Format &f, smyrf_dtype t, float fill) {
    const size_t es = t == SMYRF_DTYPE_F32 ? 4 : 2;
    std::vector<unsigned char> buf(f.elems * es);
    auto put = [&](size_t i, float val) {
        if (t == SMYRF_DTYPE_F32) {
            std::memcpy(&buf[i * 4], &val, 4);
        } else if (t == SMYRF_DTYPE_F16) {
            const __half hv = __float2half_rn(val);
            std::memcpy(&buf[i * 2], &hv, 2);
        } else {
            const __nv_bfloat16 bv = __float2bfloat16_rn(val);
            std::memcpy(&buf[i * 2], &bv, 2);
        }
    };
    for (size_t i = 0; i < f.elems; i++) put(i, fill);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t c = 0; c < dim; c++)
                    put(at(f, b, h, n) + c, x[(size_t)(((b * heads + h) * N + n) * dim + c)]);
    return buf;
}

float get(const std::vector<unsigned char> &buf, size_t i, smyrf_dtype t) {
    if (t == SMYRF_DTYPE_F32) {
        float v;
        std::memcpy(&v, &buf[i * 4], 4);
        return v;
    }
    uint16_t bits;
    std::memcpy(&bits, &buf[i * 2], 2);
    if (t == SMYRF_DTYPE_F16) {
        __half_raw hr;
        hr.x = bits;
        return __half2float(__half(hr));
    }
    __nv_bfloat16_raw br;
    br.x = bits;
    return __bfloat162float(__nv_bfloat16(br));
}

smyrf_plan *make_plan(const Case &c, smyrf_dtype t, smyrf_layout layout, Strided strided,
                      const Format &fq, const Format &fk, const Format &fv, const Format &fo,
                      smyrf_backend backend) {
    std::vector<std::pair<smyrf_param, int64_t>> values = shape_values(c, c.mode, t);
    values.insert(values.end(), {{SMYRF_PARAM_LAYOUT, layout}, {SMYRF_PARAM_BACKEND, backend}});
    if (c.mode == SMYRF_MODE_SMYRF)
        values.insert(values.end(), {{SMYRF_PARAM_N_HASHES, c.R}, {SMYRF_PARAM_Q_CLUSTER_SIZE, c.cq}});
    if (c.mode == SMYRF_MODE_HYBRID) values.push_back({SMYRF_PARAM_BUDGET, c.budget});
    if (strided == Strided::yes) {
        const Format *fs[] = {&fq, &fk, &fv, &fo};
        const smyrf_param first[] = {SMYRF_PARAM_Q_STRIDE_BATCH, SMYRF_PARAM_K_STRIDE_BATCH,
                                     SMYRF_PARAM_V_STRIDE_BATCH, SMYRF_PARAM_OUT_STRIDE_BATCH};
        for (int i = 0; i < 4; i++)
            values.insert(values.end(), {{first[i], fs[i]->sb},
                                         {(smyrf_param)(first[i] + 1), fs[i]->sh},
                                         {(smyrf_param)(first[i] + 2), fs[i]->st}});
    }
    return plan_of(values);
}

template <class T>
T *to_device(const std::vector<T> &x) {
    T *p = nullptr;
    REQUIRE_CUDA(cudaMalloc((void **)&p, x.size() * sizeof(T) + 1));
    if (!x.empty()) REQUIRE_CUDA(cudaMemcpy(p, x.data(), x.size() * sizeof(T), cudaMemcpyHostToDevice));
    return p;
}

// Rows of a [B, heads, N, dim] output (out or a gradient) in format f: every element
// finite and within tol * max |cpu| of the CPU's (rows flagged in skip, if any, left out),
// and the format's padding untouched (still the sentinel).
void compare_rows(const char *name, const std::string &what, const std::vector<unsigned char> &gpu,
                  const std::vector<unsigned char> &cpu, const Format &f, int64_t B, int64_t heads,
                  int64_t N, int64_t dim, const uint8_t *skip, smyrf_dtype t, double tol,
                  float sentinel) {
    double scale = 1e-30, worst = 0;
    std::vector<uint8_t> inside(f.elems, 0);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t n = 0; n < N; n++) {
                std::memset(&inside[at(f, b, h, n)], 1, (size_t)dim);
                for (int64_t e = 0; e < dim; e++)
                    scale = std::fmax(scale, std::fabs(get(cpu, at(f, b, h, n) + (size_t)e, t)));
            }
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t n = 0; n < N; n++) {
                const bool skipped = skip && skip[(size_t)((b * heads + h) * N + n)];
                for (int64_t e = 0; e < dim; e++) {
                    const size_t o = at(f, b, h, n) + (size_t)e;
                    const float g = get(gpu, o, t), r = get(cpu, o, t);
                    CHECK(std::isfinite(g), "%s: %s[%zu] = %g", what.c_str(), name, o, g);
                    if (skipped) continue;
                    const double diff = std::fabs((double)g - r);
                    worst = std::fmax(worst, diff / scale);
                    if (diff > tol * scale)
                        CHECK(false, "%s: %s[%lld,%lld,%lld,%lld]: cuda %.7g cpu %.7g", what.c_str(),
                              name, (long long)b, (long long)h, (long long)n, (long long)e, g, r);
                }
            }
    for (size_t i = 0; i < f.elems; i++)
        if (!inside[i]) CHECK(get(gpu, i, t) == sentinel, "%s: %s padding %zu written", what.c_str(), name, i);
    std::printf("    %s max |diff|/max|cpu| %.2e\n", name, worst);
}

void run_case(const Case &c, smyrf_dtype t, smyrf_layout layout, Strided strided) {
    const std::string what = std::string(c.name) + " [" + dtype_name(t) + ", " +
                             (strided == Strided::yes ? "strided"
                              : layout == SMYRF_LAYOUT_BHND ? "BHND" : "BNHD") + "]";
    g_rng = 0x5eed + (uint64_t)c.Nq * 31 + (uint64_t)c.d;
    const size_t nq = (size_t)(c.B * c.H * c.Nq * c.d), nk = (size_t)(c.B * c.Hkv * c.Nk * c.d);
    const size_t nv = (size_t)(c.B * c.Hkv * c.Nk * c.dv), no = (size_t)(c.B * c.H * c.Nq * c.dv);
    const size_t nl = (size_t)(c.B * c.H * c.Nq);
    std::vector<float> q(nq), k(nk), v(nv);
    for (auto &x : q) x = quantize((float)normal(), t);
    for (auto &x : k) x = quantize((float)normal(), t);
    for (auto &x : v) x = quantize((float)normal(), t);
    const std::vector<uint8_t> mask = key_mask(c.B, c.Nk, c.mask_keep);

    const Format fq = format_of(c.B, c.H, c.Nq, c.d, layout, strided);
    const Format fk = format_of(c.B, c.Hkv, c.Nk, c.d, layout, strided);
    const Format fv = format_of(c.B, c.Hkv, c.Nk, c.dv, layout, strided);
    const Format fo = format_of(c.B, c.H, c.Nq, c.dv, layout, strided);
    const float sentinel = quantize(12345.0f, t);  // exact in every dtype, so == holds
    const auto hq = pack(q, c.B, c.H, c.Nq, c.d, fq, t, NAN);
    const auto hk = pack(k, c.B, c.Hkv, c.Nk, c.d, fk, t, NAN);
    const auto hv = pack(v, c.B, c.Hkv, c.Nk, c.dv, fv, t, NAN);
    const auto ho_init = pack(std::vector<float>(no, NAN), c.B, c.H, c.Nq, c.dv, fo, t, sentinel);
    const uint8_t *hmask = mask.empty() ? nullptr : mask.data();

    // CPU
    smyrf_plan *cpu = make_plan(c, t, layout, strided, fq, fk, fv, fo, SMYRF_BACKEND_CPU);
    std::vector<unsigned char> out_cpu = ho_init;
    std::vector<float> lse_cpu(nl);
    REQUIRE_OK(smyrf_execute(cpu, hq.data(), hk.data(), hv.data(), hmask, out_cpu.data(),
                             lse_cpu.data(), nullptr, 0, nullptr));

    // CUDA: own workspace on the default stream, then a caller workspace on a stream.
    smyrf_plan *gpu = make_plan(c, t, layout, strided, fq, fk, fv, fo, SMYRF_BACKEND_CUDA);
    CHECK(std::strcmp(smyrf_plan_backend_name(gpu), "cuda") == 0, "%s: backend %s", what.c_str(),
          smyrf_plan_backend_name(gpu));
    unsigned char *dq = to_device(hq), *dk = to_device(hk), *dv = to_device(hv);
    unsigned char *dout = to_device(ho_init);
    uint8_t *dmask = mask.empty() ? nullptr : to_device(mask);
    float *dlse = to_device(std::vector<float>(nl, NAN));
    REQUIRE_OK(smyrf_execute(gpu, dq, dk, dv, dmask, dout, dlse, nullptr, 0, nullptr));
    REQUIRE_CUDA(cudaDeviceSynchronize());
    std::vector<unsigned char> out_gpu(ho_init.size());
    std::vector<float> lse_gpu(nl);
    REQUIRE_CUDA(cudaMemcpy(out_gpu.data(), dout, out_gpu.size(), cudaMemcpyDeviceToHost));
    REQUIRE_CUDA(cudaMemcpy(lse_gpu.data(), dlse, nl * sizeof(float), cudaMemcpyDeviceToHost));

    const size_t ws_bytes = smyrf_plan_workspace_size(gpu);
    void *ws = nullptr;
    REQUIRE_CUDA(cudaMalloc(&ws, ws_bytes + 64));
    cudaStream_t stream;
    REQUIRE_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    REQUIRE_CUDA(cudaMemcpy(dout, ho_init.data(), ho_init.size(), cudaMemcpyHostToDevice));
    // An odd offset: execute must realign the caller's workspace itself.
    REQUIRE_OK(smyrf_execute(gpu, dq, dk, dv, dmask, dout, dlse, (char *)ws + 8, ws_bytes,
                             stream));
    REQUIRE_CUDA(cudaStreamSynchronize(stream));
    std::vector<unsigned char> out_gpu2(ho_init.size());
    std::vector<float> lse_gpu2(nl);
    REQUIRE_CUDA(cudaMemcpy(out_gpu2.data(), dout, out_gpu2.size(), cudaMemcpyDeviceToHost));
    REQUIRE_CUDA(cudaMemcpy(lse_gpu2.data(), dlse, nl * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK(out_gpu == out_gpu2, "%s: two CUDA runs differ (out)", what.c_str());
    CHECK(std::memcmp(lse_gpu.data(), lse_gpu2.data(), nl * sizeof(float)) == 0,
          "%s: two CUDA runs differ (lse)", what.c_str());
    REQUIRE_CUDA(cudaFree(ws));

    // Rows to leave out: SMYRF cuts that float32 hashing may move (float64 reference).
    std::vector<uint8_t> unsure(nl, 0);
    if (c.mode == SMYRF_MODE_SMYRF) {
        std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
        smyrf_ref_problem rp{};
        rp.batch = c.B, rp.heads = c.H, rp.kv_heads = c.Hkv, rp.q_len = c.Nq, rp.k_len = c.Nk;
        rp.qk_dim = c.d, rp.v_dim = c.dv, rp.causal = c.causal, rp.scale = 0;
        rp.q = qd.data(), rp.k = kd.data(), rp.v = vd.data(), rp.key_mask = hmask;
        std::vector<double> want(no), want_lse(nl);
        smyrf_ref_smyrf(&rp, c.R, c.cq, 1234567, want.data(), want_lse.data(), unsure.data());
    }

    const Tol tol = tolerance(t);
    double worst_lse = 0;
    size_t skipped = 0;
    for (size_t row = 0; row < nl; row++) {
        if (unsure[row]) {
            skipped++;
            continue;
        }
        const float lg = lse_gpu[row], lc = lse_cpu[row];
        if (std::isinf(lc) || std::isinf(lg)) {
            CHECK(lg == lc, "%s: lse[%zu]: cuda %g cpu %g", what.c_str(), row, lg, lc);
        } else {
            const double d = std::fabs((double)lg - lc) / (1.0 + std::fabs(lc));
            worst_lse = std::fmax(worst_lse, d);
            CHECK(d <= tol.lse, "%s: lse[%zu]: cuda %.8g cpu %.8g", what.c_str(), row, lg, lc);
        }
    }
    CHECK(skipped * 4 <= nl, "%s: %zu of %zu rows unsure: the comparison says little", what.c_str(),
          skipped, nl);
    std::printf("%-55s rows %zu (unsure %zu)  lse max diff %.2e\n", what.c_str(), nl - skipped,
                skipped, worst_lse);
    compare_rows("out", what, out_gpu, out_cpu, fo, c.B, c.H, c.Nq, c.dv, unsure.data(), t,
                 tol.out, sentinel);

    // Backward: both backends from the CPU forward's out and lse and the same dout, so only
    // the backward differs; the CUDA one twice (own workspace; caller workspace on a stream).
    std::vector<float> grad_out(no);
    for (auto &x : grad_out) x = quantize((float)normal(), t);
    const auto hdo = pack(grad_out, c.B, c.H, c.Nq, c.dv, fo, t, NAN);
    const auto hdq_init = pack(std::vector<float>(nq, NAN), c.B, c.H, c.Nq, c.d, fq, t, sentinel);
    const auto hdk_init = pack(std::vector<float>(nk, NAN), c.B, c.Hkv, c.Nk, c.d, fk, t, sentinel);
    const auto hdv_init = pack(std::vector<float>(nv, NAN), c.B, c.Hkv, c.Nk, c.dv, fv, t, sentinel);
    std::vector<unsigned char> gq_cpu = hdq_init, gk_cpu = hdk_init, gv_cpu = hdv_init;
    REQUIRE_OK(smyrf_execute_backward(cpu, hq.data(), hk.data(), hv.data(), hmask, out_cpu.data(),
                                      lse_cpu.data(), hdo.data(), gq_cpu.data(), gk_cpu.data(),
                                      gv_cpu.data(), nullptr, 0, nullptr));
    unsigned char *d_out = to_device(out_cpu), *d_do = to_device(hdo);
    float *d_lse = to_device(lse_cpu);
    unsigned char *d_gq = to_device(hdq_init), *d_gk = to_device(hdk_init), *d_gv = to_device(hdv_init);
    REQUIRE_OK(smyrf_execute_backward(gpu, dq, dk, dv, dmask, d_out, d_lse, d_do, d_gq, d_gk, d_gv,
                                      nullptr, 0, nullptr));
    REQUIRE_CUDA(cudaDeviceSynchronize());
    std::vector<unsigned char> gq(hdq_init.size()), gk(hdk_init.size()), gv(hdv_init.size());
    REQUIRE_CUDA(cudaMemcpy(gq.data(), d_gq, gq.size(), cudaMemcpyDeviceToHost));
    REQUIRE_CUDA(cudaMemcpy(gk.data(), d_gk, gk.size(), cudaMemcpyDeviceToHost));
    REQUIRE_CUDA(cudaMemcpy(gv.data(), d_gv, gv.size(), cudaMemcpyDeviceToHost));
    const size_t bws = smyrf_plan_backward_workspace_size(gpu);
    REQUIRE_CUDA(cudaMalloc(&ws, bws + 64));
    REQUIRE_OK(smyrf_execute_backward(gpu, dq, dk, dv, dmask, d_out, d_lse, d_do, d_gq, d_gk, d_gv,
                                      (char *)ws + 8, bws, stream));
    REQUIRE_CUDA(cudaStreamSynchronize(stream));
    std::vector<unsigned char> gq2(gq.size()), gk2(gk.size()), gv2(gv.size());
    REQUIRE_CUDA(cudaMemcpy(gq2.data(), d_gq, gq2.size(), cudaMemcpyDeviceToHost));
    REQUIRE_CUDA(cudaMemcpy(gk2.data(), d_gk, gk2.size(), cudaMemcpyDeviceToHost));
    REQUIRE_CUDA(cudaMemcpy(gv2.data(), d_gv, gv2.size(), cudaMemcpyDeviceToHost));
    CHECK(gq == gq2 && gk == gk2 && gv == gv2, "%s: two CUDA backward runs differ", what.c_str());
    REQUIRE_CUDA(cudaFree(ws));
    REQUIRE_CUDA(cudaStreamDestroy(stream));
    smyrf_plan_destroy(gpu);
    smyrf_plan_destroy(cpu);
    for (void *p : {(void *)dq, (void *)dk, (void *)dv, (void *)dout, (void *)dmask, (void *)dlse,
                    (void *)d_out, (void *)d_do, (void *)d_lse, (void *)d_gq, (void *)d_gk,
                    (void *)d_gv})
        if (p) REQUIRE_CUDA(cudaFree(p));

    std::vector<uint8_t> q_unsure, k_unsure;
    if (c.mode == SMYRF_MODE_SMYRF) {  // gradient rows float32 clusters could change
        std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
        std::vector<double> gd(grad_out.begin(), grad_out.end()), rq(nq), rk(nk), rv(nv);
        smyrf_ref_problem rp{};
        rp.batch = c.B, rp.heads = c.H, rp.kv_heads = c.Hkv, rp.q_len = c.Nq, rp.k_len = c.Nk;
        rp.qk_dim = c.d, rp.v_dim = c.dv, rp.causal = c.causal, rp.scale = 0;
        rp.q = qd.data(), rp.k = kd.data(), rp.v = vd.data(), rp.key_mask = hmask;
        q_unsure.resize(nl);
        k_unsure.resize((size_t)(c.B * c.Hkv * c.Nk));
        std::vector<uint8_t> fallback(nl);
        smyrf_ref_smyrf_grad(&rp, c.R, c.cq, 1234567, gd.data(), rq.data(), rk.data(), rv.data(),
                             q_unsure.data(), k_unsure.data(), fallback.data());
    }
    const double gtol = t == SMYRF_DTYPE_F32 ? 2e-4 : tol.out;
    const uint8_t *qs = q_unsure.empty() ? nullptr : q_unsure.data();
    const uint8_t *ks = k_unsure.empty() ? nullptr : k_unsure.data();
    compare_rows("dq", what, gq, gq_cpu, fq, c.B, c.H, c.Nq, c.d, qs, t, gtol, sentinel);
    compare_rows("dk", what, gk, gk_cpu, fk, c.B, c.Hkv, c.Nk, c.d, ks, t, gtol, sentinel);
    compare_rows("dv", what, gv, gv_cpu, fv, c.B, c.Hkv, c.Nk, c.dv, ks, t, gtol, sentinel);
}

}  // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a sanitizer run stopped early keeps its lines
    if (usable_devices() == 0) {
        std::printf("SKIP: no CUDA device with compute capability >= 8.0\n");
        return kSkip;
    }
    // SMYRF_CUDA_TEST_SMALL=1: a small grid for compute-sanitizer (memcheck, racecheck).
    const char *small_env = std::getenv("SMYRF_CUDA_TEST_SMALL");
    const bool small = small_env && *small_env && *small_env != '0';
    const smyrf_dtype dtypes[] = {SMYRF_DTYPE_F32, SMYRF_DTYPE_F16, SMYRF_DTYPE_BF16};
    for (const Case &c : kCases) {
        if (small && (c.Nq > 300 || c.Nk > 400 || c.d > 128)) continue;
        for (smyrf_dtype t : dtypes) {
            if (small && t == SMYRF_DTYPE_F16) continue;
            run_case(c, t, SMYRF_LAYOUT_BHND, Strided::no);
            if (small) continue;
            run_case(c, t, SMYRF_LAYOUT_BNHD, Strided::no);
            run_case(c, t, SMYRF_LAYOUT_BHND, Strided::yes);
        }
    }
    if (g_failures) std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return g_failures ? 1 : 0;
}
