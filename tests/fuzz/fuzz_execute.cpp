// Fuzz targets 2-4: smyrf_execute on small arbitrary problems, values included (NaN,
// infinities, huge, tiny, subnormal), in the mode FUZZ_MODE (SMYRF, DENSE or HYBRID; one
// executable each). The input picks the shape, GQA grouping, dtype, layout, explicit
// strides with gaps, causal flag, key mask, mode parameters, scale, and every value.
// Checked for every input:
//  - no crash, no sanitizer report;
//  - nothing written outside the output: out and lse sit between guard zones, and with
//    strided outputs every gap element keeps its guard pattern;
//  - a finite input (every q, k, v finite, magnitude <= kFiniteBound) gives a finite out
//    and an lse that is finite or -inf (a row with no allowed key: zeros);
//  - the result is the same bits run after run, with or without a caller workspace
//    (at an odd address), and for SMYRF_PARAM_THREADS 1 and 2, whatever the outputs held
//    before (the guard pattern, NaN, zeros);
//  - with lse, smyrf_execute_backward on that forward and a dout from the input: OK,
//    nothing written outside dq, dk and dv or into their gaps, and the same bits in the
//    same three runs. (Gradients may overflow for finite inputs at these magnitudes, so
//    their finiteness is not checked.)
#include <smyrf/smyrf.h>

#include "fuzz_input.hpp"

#include <cmath>
#include <vector>

#ifndef FUZZ_MODE
#define FUZZ_MODE SMYRF_MODE_SMYRF
#endif

namespace {

// Finite inputs up to this magnitude keep every score scale * q.k and squared norm far
// inside fp32 range for d <= 16; docs/guarantees.md states the bound.
#ifndef FUZZ_FINITE_BOUND
#define FUZZ_FINITE_BOUND 1e15f
#endif
constexpr float kFiniteBound = FUZZ_FINITE_BOUND;
constexpr uint8_t kGuard = 0xcd;
constexpr size_t kGuardBytes = 64;

float pick_float(fuzz::Input &in) {
    static const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, NAN, INFINITY, -INFINITY,
                                    1e4f, -1e4f, 3e4f, 65504.0f, 1e-40f, -1e-45f, 1e-8f,
                                    1e30f, -1e38f, 3.4e38f, 1e15f, -1e15f, 1e12f};
    const uint8_t b = in.byte();
    if (b < 200) return ((float)b - 100.0f) / 25.0f;  // [-4, 4]
    if (b < 220) return special[b - 200];
    if (b < 250) return ((float)(b - 220) - 15.0f) * 37.0f;  // a wider plain range
    uint32_t bits = (uint32_t)in.u64();
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
float from_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
uint16_t to_f16(float f) {  // round to nearest even, overflow to inf, NaN kept
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    u &= 0x7fffffff;
    if (u > 0x7f800000) return sign | 0x7e00;
    if (u >= 0x477ff000) return sign | 0x7c00;  // >= 65520: inf
    if (u < 0x33000000) return sign;            // below half the smallest subnormal
    float a;
    std::memcpy(&a, &u, 4);
    if (u < 0x38800000) {  // subnormal half
        return sign | (uint16_t)std::nearbyint(a * 16777216.0f);
    }
    const uint32_t m = u & 0x7fffff, e = (u >> 23) - 112;
    uint32_t h = (e << 10) | (m >> 13);
    const uint32_t rest = m & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}
float from_f16(uint16_t h) {
    const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float f;
    if (e == 0) f = std::ldexp((float)m, -24);
    else if (e == 31) f = m ? NAN : INFINITY;
    else f = std::ldexp((float)(m | 0x400), (int)e - 25);
    return (h & 0x8000) ? -f : f;
}

struct Tensor {
    int64_t n0, n1, n2, dim;   // [B, heads, N, dim]
    int64_t sb, sh, sn;        // element strides
    size_t span;               // elements from the first to one past the last
};

// Strides of the layout, or explicit ones with gaps.
Tensor make_tensor(fuzz::Input &in, int64_t B, int64_t H, int64_t N, int64_t D, int layout,
                   bool explicit_strides) {
    Tensor t{B, H, N, D, 0, 0, 0, 0};
    const int64_t pad_n = explicit_strides ? in.below(3) : 0;
    const int64_t pad_h = explicit_strides ? in.below(5) : 0;
    const int64_t pad_b = explicit_strides ? in.below(7) : 0;
    if (layout == SMYRF_LAYOUT_BHND) {
        t.sn = D + pad_n;
        t.sh = N * t.sn + pad_h;
        t.sb = H * t.sh + pad_b;
    } else {
        t.sh = D + pad_n;
        t.sn = H * t.sh + pad_h;
        t.sb = N * t.sn + pad_b;
    }
    t.span = (size_t)((B - 1) * t.sb + (H - 1) * t.sh + (N - 1) * t.sn + D);
    return t;
}

template <class F>
void for_each_elem(const Tensor &t, F f) {
    for (int64_t b = 0; b < t.n0; b++)
        for (int64_t h = 0; h < t.n1; h++)
            for (int64_t n = 0; n < t.n2; n++)
                for (int64_t c = 0; c < t.dim; c++) f((size_t)(b * t.sb + h * t.sh + n * t.sn + c));
}

struct Buffer {  // elements of es bytes with a guard zone on each side
    std::vector<uint8_t> bytes;
    size_t es, n;
    Buffer(size_t elems, size_t elem_size) : bytes(elems * elem_size + 2 * kGuardBytes, kGuard), es(elem_size), n(elems) {}
    uint8_t *data() { return bytes.data() + kGuardBytes; }
};

float get(const uint8_t *base, size_t i, smyrf_dtype dt) {
    if (dt == SMYRF_DTYPE_F32) {
        float f;
        std::memcpy(&f, base + 4 * i, 4);
        return f;
    }
    uint16_t h;
    std::memcpy(&h, base + 2 * i, 2);
    return dt == SMYRF_DTYPE_F16 ? from_f16(h) : from_bf16(h);
}
void put(uint8_t *base, size_t i, smyrf_dtype dt, float f) {
    if (dt == SMYRF_DTYPE_F32) {
        std::memcpy(base + 4 * i, &f, 4);
    } else {
        const uint16_t h = dt == SMYRF_DTYPE_F16 ? to_f16(f) : to_bf16(f);
        std::memcpy(base + 2 * i, &h, 2);
    }
}

// What the elements of an output hold before run `run` of three (its guard zones and gaps
// hold kGuard): the guard pattern, NaN or zeros. Not the previous result: an element a
// run left unwritten would then pass.
void prefill(Buffer &b, const Tensor &t, smyrf_dtype dt, int run) {
    std::fill(b.bytes.begin(), b.bytes.end(), kGuard);
    if (run > 0) for_each_elem(t, [&](size_t i) { put(b.data(), i, dt, run == 1 ? NAN : 0.0f); });
}

// Guard zones of b untouched, and (where t has gaps) every element outside t's logical
// ones too.
void check_guards(const Buffer &b, const Tensor &t, const char *what) {
    for (size_t i = 0; i < kGuardBytes; i++) {
        FUZZ_REQUIRE(b.bytes[i] == kGuard, what);
        FUZZ_REQUIRE(b.bytes[kGuardBytes + t.span * b.es + i] == kGuard, what);
    }
    std::vector<uint8_t> logical(t.span, 0);
    for_each_elem(t, [&](size_t i) { logical[i] = 1; });
    for (size_t i = 0; i < t.span; i++)
        if (!logical[i])
            for (size_t x = 0; x < b.es; x++)
                FUZZ_REQUIRE(b.bytes[kGuardBytes + i * b.es + x] == kGuard, what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz::Input in(data, size);
    const smyrf_mode mode = FUZZ_MODE;
    const int64_t B = 1 + in.below(2), Hkv = 1 + in.below(2), H = Hkv * (1 + in.below(3));
    const int64_t Nq = 1 + in.below(24), Nk = 1 + in.below(24);
    const int64_t d = 1 + in.below(16), dv = 1 + in.below(16);
    const bool causal = in.below(2), with_mask = in.below(2), with_lse = in.below(4) != 0;
    const int layout = (int)in.below(2);
    const smyrf_dtype dt = (smyrf_dtype)in.below(3);
    const bool strided = in.below(3) == 0;
    const size_t es = dt == SMYRF_DTYPE_F32 ? 4 : 2;

    smyrf_config *cfg;
    if (smyrf_config_create(&cfg) != SMYRF_OK) return 0;
    const int64_t sets[][2] = {
        {SMYRF_PARAM_BATCH, B}, {SMYRF_PARAM_HEADS, H}, {SMYRF_PARAM_KV_HEADS, Hkv},
        {SMYRF_PARAM_Q_LEN, Nq}, {SMYRF_PARAM_K_LEN, Nk}, {SMYRF_PARAM_QK_DIM, d},
        {SMYRF_PARAM_V_DIM, dv}, {SMYRF_PARAM_MODE, mode}, {SMYRF_PARAM_CAUSAL, causal},
        {SMYRF_PARAM_DTYPE, dt}, {SMYRF_PARAM_LAYOUT, layout}, {SMYRF_PARAM_THREADS, 1},
        {SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU}};
    for (auto &s : sets) FUZZ_REQUIRE(smyrf_config_set(cfg, (smyrf_param)s[0], s[1]) == SMYRF_OK, "set");
    if (mode == SMYRF_MODE_SMYRF) {
        smyrf_config_set(cfg, SMYRF_PARAM_N_HASHES, 1 + in.below(4));
        smyrf_config_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 1 + in.below(16));
        if (in.below(4) == 0) smyrf_config_set(cfg, SMYRF_PARAM_K_CLUSTER_SIZE, 1 + in.below(24));
        smyrf_config_set(cfg, SMYRF_PARAM_SEED, (int64_t)in.u64() % 1000);
    } else if (mode == SMYRF_MODE_HYBRID) {
        smyrf_config_set(cfg, SMYRF_PARAM_BUDGET, in.below(40));
        if (in.below(2)) smyrf_config_set(cfg, SMYRF_PARAM_WINDOW, in.below(24));
        if (in.below(2)) smyrf_config_set(cfg, SMYRF_PARAM_SUMMARIES, in.below(12));
        smyrf_config_set(cfg, SMYRF_PARAM_SINKS, in.below(4) - 1);
        smyrf_config_set(cfg, SMYRF_PARAM_KMEANS_ITERS, in.below(4));
    }
    if (in.below(3) == 0) smyrf_config_set_scale(cfg, (double)(1 + in.below(255)) / 32.0);

    const Tensor tq = make_tensor(in, B, H, Nq, d, layout, strided);
    const Tensor tk = make_tensor(in, B, Hkv, Nk, d, layout, strided);
    const Tensor tv = make_tensor(in, B, Hkv, Nk, dv, layout, strided);
    const Tensor to = make_tensor(in, B, H, Nq, dv, layout, strided);
    if (strided) {
        const Tensor *ts[4] = {&tq, &tk, &tv, &to};
        for (int i = 0; i < 4; i++) {
            const int first = SMYRF_PARAM_Q_STRIDE_BATCH + 3 * i;
            smyrf_config_set(cfg, (smyrf_param)first, ts[i]->sb);
            smyrf_config_set(cfg, (smyrf_param)(first + 1), ts[i]->sh);
            smyrf_config_set(cfg, (smyrf_param)(first + 2), ts[i]->sn);
        }
    }
    // HYBRID's expansion, read last so that older corpus inputs decode as before.
    if (mode == SMYRF_MODE_HYBRID && in.below(2))
        smyrf_config_set(cfg, SMYRF_PARAM_EXPAND, (int64_t)in.below(24) - 1);
    smyrf_plan *plan = nullptr, *plan2 = nullptr;
    smyrf_status st = smyrf_plan_create(&plan, cfg);
    if (st != SMYRF_OK) {
        // A refused combination (e.g. a HYBRID budget too small): refused properly.
        FUZZ_REQUIRE(st == SMYRF_ERR_INVALID_ARGUMENT || st == SMYRF_ERR_UNSUPPORTED,
                     smyrf_last_error_message());
        FUZZ_REQUIRE(smyrf_last_error_message()[0] != '\0', "no message");
        smyrf_config_destroy(cfg);
        return 0;
    }
    smyrf_config_set(cfg, SMYRF_PARAM_THREADS, 2);
    FUZZ_REQUIRE(smyrf_plan_create(&plan2, cfg) == SMYRF_OK, smyrf_last_error_message());
    smyrf_config_destroy(cfg);

    // Inputs: gaps of strided inputs hold NaN (a read of a gap would show in the output).
    Buffer q(tq.span, es), k(tk.span, es), v(tv.span, es);
    for (Buffer *b : {&q, &k, &v})
        for (size_t i = 0; i < b->n; i++) put(b->data(), i, dt, NAN);
    bool finite = true;
    auto fill = [&](Buffer &b, const Tensor &t) {
        for_each_elem(t, [&](size_t i) {
            put(b.data(), i, dt, pick_float(in));
            const float x = get(b.data(), i, dt);
            if (!std::isfinite(x) || std::fabs(x) > kFiniteBound) finite = false;
        });
    };
    fill(q, tq), fill(k, tk), fill(v, tv);
    std::vector<uint8_t> mask;
    if (with_mask) {
        mask.resize((size_t)(B * Nk));
        for (auto &m : mask) m = in.below(4) != 0;
    }

    Buffer out(to.span, es), lse((size_t)(B * H * Nq), 4);
    const Tensor tl{1, 1, 1, (int64_t)lse.n, 0, 0, 0, lse.n};  // lse as a tensor
    const size_t ws_bytes = smyrf_plan_workspace_size(plan);
    std::vector<uint8_t> ws(ws_bytes + 1);
    std::vector<uint8_t> first_out, first_lse;
    for (int run = 0; run < 3; run++) {
        prefill(out, to, dt, run);
        if (with_lse) prefill(lse, tl, SMYRF_DTYPE_F32, run);  // else it stays kGuard
        const smyrf_plan *p = run == 2 ? plan2 : plan;
        const bool own_ws = run == 1 && ws_bytes;
        st = smyrf_execute(p, q.data(), k.data(), v.data(), with_mask ? mask.data() : nullptr,
                           out.data(), with_lse ? (float *)lse.data() : nullptr,
                           own_ws ? ws.data() + 1 : nullptr, own_ws ? ws_bytes : 0, nullptr);
        FUZZ_REQUIRE(st == SMYRF_OK, smyrf_last_error_message());
        check_guards(out, to, "write outside out or into its gaps");
        for (size_t i = 0; i < kGuardBytes; i++) {
            FUZZ_REQUIRE(lse.bytes[i] == kGuard, "write before lse");
            FUZZ_REQUIRE(lse.bytes[kGuardBytes + lse.n * 4 + i] == kGuard, "write after lse");
        }
        if (!with_lse)
            for (size_t i = 0; i < lse.n * 4; i++) FUZZ_REQUIRE(lse.data()[i] == kGuard, "lse written though NULL");
        if (finite) {
            for_each_elem(to, [&](size_t i) {
                FUZZ_REQUIRE(std::isfinite(get(out.data(), i, dt)), "non-finite out for finite input");
            });
            if (with_lse)
                for (size_t i = 0; i < lse.n; i++) {
                    const float x = get(lse.data(), i, SMYRF_DTYPE_F32);
                    FUZZ_REQUIRE(std::isfinite(x) || x == -INFINITY, "lse NaN or +inf for finite input");
                }
        }
        if (run == 0) {
            first_out = out.bytes;
            first_lse = lse.bytes;
        } else {
            FUZZ_REQUIRE(out.bytes == first_out, run == 1 ? "out differs with a caller workspace" : "out differs with THREADS = 2");
            FUZZ_REQUIRE(lse.bytes == first_lse, run == 1 ? "lse differs with a caller workspace" : "lse differs with THREADS = 2");
        }
    }

    // The backward of that forward (it needs lse), read from the input last, so that
    // older corpus inputs decode as before.
    if (with_lse) {
        Buffer dout(to.span, es);
        for (size_t i = 0; i < dout.n; i++) put(dout.data(), i, dt, NAN);  // gaps: NaN
        for_each_elem(to, [&](size_t i) { put(dout.data(), i, dt, pick_float(in)); });
        Buffer dq(tq.span, es), dk(tk.span, es), dvb(tv.span, es);
        const size_t bws_bytes = smyrf_plan_backward_workspace_size(plan);
        std::vector<uint8_t> bws(bws_bytes + 1);
        std::vector<uint8_t> first[3];
        for (int run = 0; run < 3; run++) {
            Buffer *grads[3] = {&dq, &dk, &dvb};
            prefill(dq, tq, dt, run), prefill(dk, tk, dt, run), prefill(dvb, tv, dt, run);
            const bool own_ws = run == 1 && bws_bytes;
            st = smyrf_execute_backward(run == 2 ? plan2 : plan, q.data(), k.data(), v.data(),
                                        with_mask ? mask.data() : nullptr, out.data(),
                                        (const float *)lse.data(), dout.data(), dq.data(),
                                        dk.data(), dvb.data(), own_ws ? bws.data() + 1 : nullptr,
                                        own_ws ? bws_bytes : 0, nullptr);
            FUZZ_REQUIRE(st == SMYRF_OK, smyrf_last_error_message());
            check_guards(dq, tq, "write outside dq or into its gaps");
            check_guards(dk, tk, "write outside dk or into its gaps");
            check_guards(dvb, tv, "write outside dv or into its gaps");
            for (int g = 0; g < 3; g++) {
                if (run == 0) first[g] = grads[g]->bytes;
                else FUZZ_REQUIRE(grads[g]->bytes == first[g],
                                  run == 1 ? "gradients differ with a caller workspace"
                                           : "gradients differ with THREADS = 2");
            }
        }
    }
    smyrf_plan_destroy(plan);
    smyrf_plan_destroy(plan2);
    return 0;
}
