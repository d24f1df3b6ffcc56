// Fuzz targets 2-4: smyrf_execute on small arbitrary problems, values included (NaN,
// infinities, huge, tiny, subnormal), in the mode FUZZ_MODE (SMYRF, DENSE or HYBRID; one
// executable each). The input picks the shape (mostly up to 24 queries and keys and 16
// dims; one byte value in eight of a length goes past the kernels' tiles, 64 queries and
// 256 keys, or past 16 dims), GQA grouping, dtype, layout, explicit strides with gaps or
// with input rows that overlap, causal flag, key mask, mode parameters, scale, one
// invalid call of each entry point, and every value (past the input's end, values and
// mask bytes come from a generator seeded by the input, values in [-4, 4]).
// Checked for every input:
//  - no crash, no sanitizer report;
//  - an invalid call (a NULL pointer, a workspace too small or NULL with a size, a size
//    past the address space, a misaligned tensor, an output overlapping an input or
//    another output, a NULL plan; for the backward also input strides whose rows
//    overlap) returns SMYRF_ERR_INVALID_ARGUMENT with a message naming the argument, and
//    writes nothing: out, lse, dq, dk, dv, the workspace and the inputs keep every byte;
//  - nothing written outside the output: out and lse sit between guard zones, and with
//    strided outputs every gap element keeps its guard pattern;
//  - a row with no allowed key (mask, causal) is zeros with lse -inf, in every mode,
//    whatever the values;
//  - a finite input (every q, k, v finite, magnitude <= kFiniteBound) gives a finite out
//    and an lse that is finite exactly where the row has an allowed key; every out
//    element lies between the smallest and largest value of the row's allowed keys (a
//    softmax is a convex combination, whatever the mode drops or summarises);
//  - where the mode is exact (DENSE; SMYRF with one cluster; HYBRID with a budget of at
//    least every batch's valid keys), out, lse and the backward's dq, dk, dv match a
//    float64 reference to a tolerance derived from each row's logit magnitudes;
//  - the result is the same bits run after run, with or without a caller workspace
//    (at an odd address), and for SMYRF_PARAM_THREADS 1 and 2, whatever the outputs held
//    before (the guard pattern, NaN, zeros);
//  - with lse, smyrf_execute_backward on that forward and a dout from the input: OK (or,
//    for overlapping input rows, refused), nothing written outside dq, dk and dv or into
//    their gaps, and the same bits in the same three runs. (Gradients may overflow for
//    finite inputs at these magnitudes, so their finiteness is not checked.)
// FUZZ_VERBOSE=1 in the environment prints the decoded case (for reproducers).
#include <smyrf/smyrf.h>

#include "fuzz_input.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
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
    // Past the input's end, plain values only: the finite-input checks then apply.
    if (!in.more()) return ((float)(in.fill() % 200) - 100.0f) / 25.0f;
    const uint8_t b = in.fill();
    if (b < 200) return ((float)b - 100.0f) / 25.0f;  // [-4, 4]
    if (b < 220) return special[b - 200];
    if (b < 250) return ((float)(b - 220) - 15.0f) * 37.0f;  // a wider plain range
    uint32_t bits = 0;
    for (int i = 0; i < 4; i++) bits |= (uint32_t)in.fill() << (8 * i);
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

// Strides of the layout, or explicit ones with gaps; for an input (may_alias), sometimes
// strides under which rows of different heads and batches overlap (a forward may read
// such views; a backward must refuse to write gradients through them).
Tensor make_tensor(fuzz::Input &in, int64_t B, int64_t H, int64_t N, int64_t D, int layout,
                   bool explicit_strides, bool may_alias) {
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
    if (explicit_strides && may_alias && in.below(4) == 0) {
        t.sn = D + pad_n;
        t.sh = 1 + in.below(std::min<int64_t>(N * t.sn, 256));
        t.sb = 1 + in.below(std::min<int64_t>(H * t.sh + 1, 256));
    }
    t.span = (size_t)((B - 1) * t.sb + (H - 1) * t.sh + (N - 1) * t.sn + D);
    return t;
}

// A length: from most byte values 1..small as before; the top 32 values give longer ones
// (small + 1, then every `step`), past the kernels' tiles or vector widths.
int64_t length(fuzz::Input &in, int64_t small, int64_t step) {
    const uint8_t b = in.byte();
    return b < 224 ? 1 + b % small : small + 1 + (int64_t)(b - 224) * step;
}

template <class F>
void for_each_elem(const Tensor &t, F f) {
    for (int64_t b = 0; b < t.n0; b++)
        for (int64_t h = 0; h < t.n1; h++)
            for (int64_t n = 0; n < t.n2; n++)
                for (int64_t c = 0; c < t.dim; c++) f((size_t)(b * t.sb + h * t.sh + n * t.sn + c));
}

// Whether two logical elements of t share an address.
bool rows_overlap(const Tensor &t) {
    std::vector<uint8_t> seen(t.span, 0);
    bool twice = false;
    for_each_elem(t, [&](size_t i) { twice |= seen[i]++ != 0; });
    return twice;
}

// Whether t's rows are disjoint by nesting: with its strides sorted (dimensions of one
// element skipped), each steps over the whole extent of the ones inside it. Such strides
// must be accepted for gradients; overlapping rows (rows_overlap) must be refused; rows
// that interleave without touching (neither) may be either.
bool rows_nested(const Tensor &t) {
    std::pair<int64_t, int64_t> dims[3] = {{t.sb, t.n0}, {t.sh, t.n1}, {t.sn, t.n2}};
    std::sort(dims, dims + 3);
    int64_t inner = t.dim;
    for (auto &dm : dims) {
        if (dm.second == 1) continue;
        if (dm.first < inner) return false;
        inner += dm.first * (dm.second - 1);
    }
    return true;
}

struct Buffer {  // elements of es bytes with a guard zone on each side
    std::vector<uint8_t> bytes;
    size_t es, n;
    Buffer(size_t elems, size_t elem_size) : bytes(elems * elem_size + 2 * kGuardBytes, kGuard), es(elem_size), n(elems) {}
    uint8_t *data() { return bytes.data() + kGuardBytes; }
    const uint8_t *data() const { return bytes.data() + kGuardBytes; }
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

size_t elem(const Tensor &t, int64_t b, int64_t h, int64_t n, int64_t c) {
    return (size_t)(b * t.sb + h * t.sh + n * t.sn + c);
}

bool all_bytes(const Buffer &b, uint8_t x) {
    for (uint8_t y : b.bytes)
        if (y != x) return false;
    return true;
}

// A refused call: the status, a message naming `arg`, and (checked by the caller) nothing
// written.
void check_refused(smyrf_status st, const char *arg, const char *call) {
    const char *msg = smyrf_last_error_message();
    if (st != SMYRF_ERR_INVALID_ARGUMENT || !std::strstr(msg, arg)) {
        std::fprintf(stderr, "%s with a bad %s: status %d, message \"%s\"\n", call, arg, (int)st, msg);
        fuzz::violation("invalid argument not refused, or its message does not name it", arg);
    }
}

// Rounding of one output element in the dtype: relative, and absolute (f16 subnormals).
double dtype_rel(smyrf_dtype dt) { return dt == SMYRF_DTYPE_F32 ? 0x1p-24 : dt == SMYRF_DTYPE_F16 ? 0x1p-11 : 0x1p-8; }
double dtype_abs(smyrf_dtype dt) { return dt == SMYRF_DTYPE_F16 ? 0x1p-24 : 0.0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz::Input in(data, size);
    const smyrf_mode mode = FUZZ_MODE;
    const int64_t B = 1 + in.below(2), Hkv = 1 + in.below(2), H = Hkv * (1 + in.below(3));
    int64_t Nq = length(in, 24, 3);
    const int64_t Nk = length(in, 24, 10);
    const int64_t d = length(in, 16, 1), dv = length(in, 16, 1);
    // Long queries and long keys together would make slow inputs: halve the queries.
    while (Nq > 1 && B * H * Nq * Nk * (d + dv) > 3000000) Nq = (Nq + 1) / 2;
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
        // 25..32: at least Q_LEN mostly, one cluster (exact attention, checked below).
        smyrf_config_set(cfg, SMYRF_PARAM_Q_CLUSTER_SIZE, 1 + in.below(32));
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

    const Tensor tq = make_tensor(in, B, H, Nq, d, layout, strided, true);
    const Tensor tk = make_tensor(in, B, Hkv, Nk, d, layout, strided, true);
    const Tensor tv = make_tensor(in, B, Hkv, Nk, dv, layout, strided, true);
    const Tensor to = make_tensor(in, B, H, Nq, dv, layout, strided, false);
    if (strided) {
        const Tensor *ts[4] = {&tq, &tk, &tv, &to};
        for (int i = 0; i < 4; i++) {
            const int first = SMYRF_PARAM_Q_STRIDE_BATCH + 3 * i;
            smyrf_config_set(cfg, (smyrf_param)first, ts[i]->sb);
            smyrf_config_set(cfg, (smyrf_param)(first + 1), ts[i]->sh);
            smyrf_config_set(cfg, (smyrf_param)(first + 2), ts[i]->sn);
        }
    }
    if (mode == SMYRF_MODE_HYBRID && in.below(2))
        smyrf_config_set(cfg, SMYRF_PARAM_EXPAND, (int64_t)in.below(24) - 1);
    const int bad_forward = (int)in.below(16), bad_backward = (int)in.below(12);
    const bool aliased_inputs = rows_overlap(tq) || rows_overlap(tk) || rows_overlap(tv);
    const bool interleaved = !aliased_inputs && !(rows_nested(tq) && rows_nested(tk) && rows_nested(tv));
    if (std::getenv("FUZZ_VERBOSE"))
        std::fprintf(stderr,
                     "case: mode %d B %lld H %lld Hkv %lld Nq %lld Nk %lld d %lld dv %lld causal %d "
                     "mask %d lse %d layout %d dtype %d strided %d aliased %d interleaved %d bad %d/%d\n"
                     "  strides q (%lld %lld %lld) k (%lld %lld %lld) v (%lld %lld %lld) out (%lld %lld %lld)\n",
                     (int)mode, (long long)B, (long long)H, (long long)Hkv, (long long)Nq, (long long)Nk,
                     (long long)d, (long long)dv, causal, with_mask, with_lse, layout, (int)dt, strided,
                     aliased_inputs, interleaved, bad_forward, bad_backward, (long long)tq.sb, (long long)tq.sh,
                     (long long)tq.sn, (long long)tk.sb, (long long)tk.sh, (long long)tk.sn,
                     (long long)tv.sb, (long long)tv.sh, (long long)tv.sn, (long long)to.sb,
                     (long long)to.sh, (long long)to.sn);
    smyrf_plan *plan = nullptr, *plan2 = nullptr;
    smyrf_status st = smyrf_plan_create(&plan, cfg);
    if (st != SMYRF_OK) {
        // A refused combination (e.g. a HYBRID budget too small): refused properly.
        FUZZ_REQUIRE(st == SMYRF_ERR_INVALID_ARGUMENT || st == SMYRF_ERR_UNSUPPORTED,
                     smyrf_last_error_message());
        FUZZ_REQUIRE(smyrf_last_error_message()[0] != '\0', "no message");
        FUZZ_REQUIRE(mode != SMYRF_MODE_DENSE, smyrf_last_error_message());  // nothing to refuse
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
    auto fill = [&](Buffer &b, const Tensor &t) {
        for_each_elem(t, [&](size_t i) { put(b.data(), i, dt, pick_float(in)); });
    };
    fill(q, tq), fill(k, tk), fill(v, tv);
    bool finite = true;  // what the tensors hold in the end (aliased elements: the last)
    for (auto tb : {std::make_pair(&tq, &q), std::make_pair(&tk, &k), std::make_pair(&tv, &v)})
        for_each_elem(*tb.first, [&](size_t i) {
            const float x = get(tb.second->data(), i, dt);
            if (!std::isfinite(x) || std::fabs(x) > kFiniteBound) finite = false;
        });
    std::vector<uint8_t> mask;
    if (with_mask) {
        mask.resize((size_t)(B * Nk));
        for (auto &m : mask) m = in.fill() % 4 != 0;
    }
    auto valid = [&](int64_t b, int64_t j) { return !with_mask || mask[(size_t)(b * Nk + j)]; };
    auto allowed = [&](int64_t b, int64_t i, int64_t j) {
        return valid(b, j) && (!causal || j <= i + Nk - Nq);
    };

    Buffer out(to.span, es), lse((size_t)(B * H * Nq), 4);
    const Tensor tl{1, 1, 1, (int64_t)lse.n, 0, 0, 0, lse.n};  // lse as a tensor
    const size_t ws_bytes = smyrf_plan_workspace_size(plan);
    std::vector<uint8_t> ws(ws_bytes + 1);

    // One invalid call first: refused with a message naming the argument, nothing written.
    if (bad_forward) {
        prefill(out, to, dt, 0), prefill(lse, tl, SMYRF_DTYPE_F32, 0);
        const std::vector<uint8_t> q0 = q.bytes, k0 = k.bytes, v0 = v.bytes;
        std::fill(ws.begin(), ws.end(), kGuard);
        const smyrf_plan *p = plan;
        const void *qp = q.data(), *kp = k.data(), *vp = v.data();
        const uint8_t *mp = with_mask ? mask.data() : nullptr;
        void *op = out.data(), *wp = nullptr;
        float *lp = with_lse ? (float *)lse.data() : nullptr;
        size_t wb = 0;
        const char *arg = nullptr;
        switch (bad_forward) {
        case 1: qp = nullptr, arg = "q"; break;
        case 2: kp = nullptr, arg = "k"; break;
        case 3: vp = nullptr, arg = "v"; break;
        case 4: op = nullptr, arg = "out"; break;
        case 5: if (ws_bytes) wp = ws.data() + 1, wb = ws_bytes - 1, arg = "workspace_bytes"; break;
        case 6: wb = 1 + in.below(200), arg = "workspace_bytes"; break;
        case 7: wp = ws.data(), wb = SIZE_MAX - 2, arg = "workspace_bytes"; break;
        case 8: op = out.data() + 1, arg = "out"; break;
        case 9: lp = (float *)(lse.data() + 2), arg = "lse"; break;
        case 10: op = (void *)q.data(), arg = "out"; break;  // out overlaps q
        case 11: lp = (float *)out.data(), arg = "lse"; break;  // lse overlaps out
        case 12: lp = (float *)v.data(), arg = "lse"; break;  // lse overlaps v
        case 13: wp = k.data(), wb = std::max<size_t>(ws_bytes, 1), arg = "workspace"; break;
        case 14: if (with_mask) mp = out.data(), arg = "out"; break;  // key_mask overlaps out
        default: p = nullptr, arg = "plan"; break;
        }
        if (arg) {
            st = smyrf_execute(p, qp, kp, vp, mp, op, lp, wp, wb, nullptr);
            check_refused(st, arg, "smyrf_execute");
            FUZZ_REQUIRE(all_bytes(out, kGuard) && all_bytes(lse, kGuard), "refused execute wrote out or lse");
            FUZZ_REQUIRE(q.bytes == q0 && k.bytes == k0 && v.bytes == v0, "refused execute wrote an input");
            for (uint8_t x : ws) FUZZ_REQUIRE(x == kGuard, "refused execute wrote the workspace");
        }
    }

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
        if (run == 0) {
            first_out = out.bytes;
            first_lse = lse.bytes;
        } else {
            FUZZ_REQUIRE(out.bytes == first_out, run == 1 ? "out differs with a caller workspace" : "out differs with THREADS = 2");
            FUZZ_REQUIRE(lse.bytes == first_lse, run == 1 ? "lse differs with a caller workspace" : "lse differs with THREADS = 2");
        }
    }

    // What every row must be. Where the mode is exact, a float64 reference too.
    double scale_d = 0;
    FUZZ_REQUIRE(smyrf_plan_get_scale(plan, &scale_d) == SMYRF_OK, "plan_get_scale");
    const double scale = (double)(float)scale_d;  // the kernels multiply in fp32
    int64_t max_valid = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = 0;
        for (int64_t j = 0; j < Nk; j++) n += valid(b, j);
        max_valid = std::max(max_valid, n);
    }
    bool exact = mode == SMYRF_MODE_DENSE;
    int64_t resolved = 0;
    if (mode == SMYRF_MODE_SMYRF && smyrf_plan_get(plan, SMYRF_PARAM_Q_CLUSTER_SIZE, &resolved) == SMYRF_OK)
        exact = resolved >= Nq;
    if (mode == SMYRF_MODE_HYBRID && smyrf_plan_get(plan, SMYRF_PARAM_BUDGET, &resolved) == SMYRF_OK)
        exact = resolved >= max_valid;
    // SMYRF merges its rounds by log-sum-exp: with one cluster every round sees every key,
    // so its lse is the dense one plus log(rounds) (its out and gradients are dense).
    double lse_shift = 0;
    if (mode == SMYRF_MODE_SMYRF && smyrf_plan_get(plan, SMYRF_PARAM_N_HASHES, &resolved) == SMYRF_OK)
        lse_shift = std::log((double)resolved);
    const int64_t group = H / Hkv;
    const double rel = dtype_rel(dt), abs_dt = dtype_abs(dt);
    // The reference's weights P (rows of Nk; 0 for keys not allowed) and lse, for the
    // backward's reference; ok[row]: the row's logits are small enough to compare.
    std::vector<double> P((size_t)(B * H * Nq * Nk), 0.0), ref_lse((size_t)(B * H * Nq), -INFINITY);
    std::vector<double> ref_out((size_t)(B * H * Nq * dv), 0.0), logit_err((size_t)(B * H * Nq), 0.0);
    std::vector<uint8_t> ok((size_t)(B * H * Nq), 0);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Nq; i++) {
                const size_t row = (size_t)((b * H + h) * Nq + i);
                const int64_t hk = h / group;
                bool any = false;
                for (int64_t j = 0; j < Nk; j++) any |= allowed(b, i, j);
                const float l = with_lse ? get(lse.data(), row, SMYRF_DTYPE_F32) : 0.0f;
                bool zero_row = true;
                for (int64_t c = 0; c < dv; c++) zero_row &= get(out.data(), elem(to, b, h, i, c), dt) == 0.0f;
                if (!any) {
                    FUZZ_REQUIRE(zero_row, "a row with no allowed key is not zeros");
                    FUZZ_REQUIRE(!with_lse || l == -INFINITY, "a row with no allowed key has lse != -inf");
                    continue;
                }
                if (!finite) continue;  // NaN or infinity may make any row NaN, lse too
                FUZZ_REQUIRE(!with_lse || std::isfinite(l), "lse not finite for a row with an allowed key (finite input)");
                // A convex combination of the allowed keys' values, whatever the mode.
                for (int64_t c = 0; c < dv; c++) {
                    double lo = INFINITY, hi = -INFINITY, vmax = 0;
                    for (int64_t j = 0; j < Nk; j++)
                        if (allowed(b, i, j)) {
                            const double x = get(v.data(), elem(tv, b, hk, j, c), dt);
                            lo = std::min(lo, x), hi = std::max(hi, x), vmax = std::max(vmax, std::fabs(x));
                        }
                    const double o = get(out.data(), elem(to, b, h, i, c), dt);
                    const double slack = vmax * (1e-5 + (double)Nk * 0x1p-22);
                    FUZZ_REQUIRE(std::isfinite(o), "non-finite out for finite input");
                    FUZZ_REQUIRE(o >= lo - slack && o <= hi + slack, "out outside its allowed values' range");
                }
                if (!exact) continue;
                // float64 reference of the row, and the error its fp32 logits may carry.
                std::vector<double> s((size_t)Nk, -INFINITY);
                double m = -INFINITY, smax = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    if (!allowed(b, i, j)) continue;
                    double dot = 0, mag = 0;
                    for (int64_t c = 0; c < d; c++) {
                        const double x = get(q.data(), elem(tq, b, h, i, c), dt) * get(k.data(), elem(tk, b, hk, j, c), dt);
                        dot += x, mag += std::fabs(x);
                    }
                    s[(size_t)j] = scale * dot;
                    m = std::max(m, s[(size_t)j]);
                    smax = std::max(smax, scale * mag);
                }
                double z = 0;
                for (int64_t j = 0; j < Nk; j++) z += allowed(b, i, j) ? std::exp(s[(size_t)j] - m) : 0.0;
                const double rl = m + std::log(z);
                const double e = smax * (double)(d + 4) * 0x1p-23 + std::fabs(rl) * 0x1p-22 + 1e-6;
                ref_lse[row] = rl, logit_err[row] = e;
                if (e > 1e-2) continue;  // fp32 logits too coarse to compare
                ok[row] = 1;
                double vmax = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    const double p = allowed(b, i, j) ? std::exp(s[(size_t)j] - rl) : 0.0;
                    P[row * (size_t)Nk + (size_t)j] = p;
                    for (int64_t c = 0; c < dv; c++) {
                        const double x = get(v.data(), elem(tv, b, hk, j, c), dt);
                        ref_out[row * (size_t)dv + (size_t)c] += p * x;
                        if (p > 0) vmax = std::max(vmax, std::fabs(x));
                    }
                }
                for (int64_t c = 0; c < dv; c++) {
                    const double r = ref_out[row * (size_t)dv + (size_t)c];
                    const double o = get(out.data(), elem(to, b, h, i, c), dt);
                    const double tol = (4 * e + 1e-5 + (double)Nk * 0x1p-21) * vmax + rel * std::fabs(r) + abs_dt;
                    if (std::fabs(o - r) > tol) {
                        std::fprintf(stderr, "row (%lld, %lld, %lld) c %lld: out %.9g, float64 %.9g, tolerance %.3g\n",
                                     (long long)b, (long long)h, (long long)i, (long long)c, o, r, tol);
                        fuzz::violation("out differs from the float64 reference in an exact mode", "");
                    }
                }
                if (with_lse && std::fabs((double)l - (rl + lse_shift)) > 2 * e + 1e-5) {
                    std::fprintf(stderr, "row (%lld, %lld, %lld): lse %.9g, float64 %.9g\n", (long long)b,
                                 (long long)h, (long long)i, (double)l, rl + lse_shift);
                    fuzz::violation("lse differs from the float64 reference in an exact mode", "");
                }
            }

    if (std::getenv("FUZZ_VERBOSE")) {
        size_t compared = 0;
        for (uint8_t x : ok) compared += x;
        std::fprintf(stderr, "  finite %d, exact mode %d: %zu of %zu rows compared with float64\n", finite,
                     exact, compared, ok.size());
    }

    // The backward of that forward (it needs lse).
    if (with_lse) {
        Buffer dout(to.span, es);
        for (size_t i = 0; i < dout.n; i++) put(dout.data(), i, dt, NAN);  // gaps: NaN
        for_each_elem(to, [&](size_t i) { put(dout.data(), i, dt, pick_float(in)); });
        Buffer dq(tq.span, es), dk(tk.span, es), dvb(tv.span, es);
        const size_t bws_bytes = smyrf_plan_backward_workspace_size(plan);
        std::vector<uint8_t> bws(bws_bytes + 1);
        const std::vector<uint8_t> in0[] = {q.bytes, k.bytes, v.bytes, out.bytes, lse.bytes, dout.bytes};
        auto inputs_kept = [&] {
            return q.bytes == in0[0] && k.bytes == in0[1] && v.bytes == in0[2] && out.bytes == in0[3] &&
                   lse.bytes == in0[4] && dout.bytes == in0[5];
        };
        if (bad_backward || aliased_inputs) {
            std::fill(dq.bytes.begin(), dq.bytes.end(), kGuard);
            std::fill(dk.bytes.begin(), dk.bytes.end(), kGuard);
            std::fill(dvb.bytes.begin(), dvb.bytes.end(), kGuard);
            std::fill(bws.begin(), bws.end(), kGuard);
            const void *op = out.data(), *dop = dout.data();
            const float *lp = (const float *)lse.data();
            void *dqp = dq.data(), *dkp = dk.data(), *dvp = dvb.data(), *wp = nullptr;
            size_t wb = 0;
            const char *arg = nullptr;
            switch (bad_backward) {
            case 0: break;
            case 1: lp = nullptr, arg = "lse"; break;
            case 2: dop = nullptr, arg = "dout"; break;
            case 3: dqp = nullptr, arg = "dq"; break;
            case 4: dvp = nullptr, arg = "dv"; break;
            case 5: dkp = dq.data(), arg = "dk"; break;  // dk overlaps dq
            case 6: dvp = (void *)dout.data(), arg = "dv"; break;  // dv overlaps dout
            case 7: dqp = (void *)q.data(), arg = "dq"; break;  // dq overlaps q
            case 8: dkp = dk.data() + 1, arg = "dk"; break;
            case 9: if (bws_bytes) wp = bws.data(), wb = bws_bytes - 1, arg = "workspace_bytes"; break;
            case 10: wp = (void *)lse.data(), wb = std::max<size_t>(bws_bytes, 1), arg = "workspace"; break;
            default: op = nullptr, arg = "out"; break;
            }
            if (!arg && aliased_inputs)  // the call is valid but for the overlapping input rows
                arg = rows_overlap(tq) ? "dq" : rows_overlap(tk) ? "dk" : "dv";
            st = arg ? smyrf_execute_backward(plan, q.data(), k.data(), v.data(),
                                              with_mask ? mask.data() : nullptr, op, lp, dop, dqp,
                                              dkp, dvp, wp, wb, nullptr)
                     : SMYRF_ERR_INVALID_ARGUMENT;
            if (arg && st != SMYRF_OK) {
                // With overlapping input rows too, the message may name either reason.
                if (!aliased_inputs && !interleaved) check_refused(st, arg, "smyrf_execute_backward");
                FUZZ_REQUIRE(st == SMYRF_ERR_INVALID_ARGUMENT, smyrf_last_error_message());
                FUZZ_REQUIRE(smyrf_last_error_message()[0] != '\0', "no message");
            } else {
                FUZZ_REQUIRE(st != SMYRF_OK, "backward accepted an invalid call");
            }
            FUZZ_REQUIRE(all_bytes(dq, kGuard) && all_bytes(dk, kGuard) && all_bytes(dvb, kGuard),
                         "refused backward wrote dq, dk or dv");
            FUZZ_REQUIRE(inputs_kept(), "refused backward wrote an input");
            for (uint8_t x : bws) FUZZ_REQUIRE(x == kGuard, "refused backward wrote the workspace");
        }
        if (aliased_inputs) {  // its refusal was the whole test
            smyrf_plan_destroy(plan);
            smyrf_plan_destroy(plan2);
            return 0;
        }
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
            if (run == 0 && interleaved && st != SMYRF_OK) {  // refused as overlapping: allowed
                FUZZ_REQUIRE(st == SMYRF_ERR_INVALID_ARGUMENT, smyrf_last_error_message());
                FUZZ_REQUIRE(all_bytes(dq, kGuard) && all_bytes(dk, kGuard) && all_bytes(dvb, kGuard),
                             "refused backward wrote dq, dk or dv");
                smyrf_plan_destroy(plan);
                smyrf_plan_destroy(plan2);
                return 0;
            }
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
        FUZZ_REQUIRE(inputs_kept(), "backward wrote an input");
        if (exact && finite) {
            // float64 gradients from the reference's P: dv_j = sum_i P_ij dout_i,
            // dS_ij = P_ij (dout_i . v_j - D_i), dq_i = scale sum_j dS_ij k_j,
            // dk_j = scale sum_i dS_ij q_i (GQA: over the group's heads); `mag` the same
            // sums in absolute values, for the tolerance. Compared where every row that
            // feeds an element was comparable (ok) and dout is modest. A weight below
            // fp32's normal range (the kernels' e^x is 0 below x = -87) may be dropped
            // whole, and times a large dS its term can still be a normal number: such
            // terms' magnitudes (weights under e^-80, a margin for the logits' error) go
            // to `lost`, which the tolerance adds in full.
            bool dout_ok = true;
            for_each_elem(to, [&](size_t i) { dout_ok &= std::fabs(get(dout.data(), i, dt)) <= 1e3f; });
            if (dout_ok) {
                const size_t nq = (size_t)(B * H * Nq), nkk = (size_t)(B * Hkv * Nk);
                std::vector<double> gq(nq * (size_t)d, 0), mq(nq * (size_t)d, 0), gk(nkk * (size_t)d, 0),
                    mk(nkk * (size_t)d, 0), gv(nkk * (size_t)dv, 0), mv(nkk * (size_t)dv, 0),
                    lq(nq * (size_t)d, 0), lk(nkk * (size_t)d, 0), lv(nkk * (size_t)dv, 0);
                const double kTiny = std::exp(-80.0);
                std::vector<uint8_t> q_ok(nq, 1), k_ok(nkk, 1);
                double err_max = 0;
                for (int64_t b = 0; b < B; b++)
                    for (int64_t h = 0; h < H; h++)
                        for (int64_t i = 0; i < Nq; i++) {
                            const size_t row = (size_t)((b * H + h) * Nq + i);
                            const int64_t hk = h / group;
                            if (ref_lse[row] == -INFINITY) continue;
                            if (!ok[row]) {
                                q_ok[row] = 0;
                                for (int64_t j = 0; j < Nk; j++) k_ok[(size_t)((b * Hkv + hk) * Nk + j)] = 0;
                                continue;
                            }
                            err_max = std::max(err_max, logit_err[row]);
                            double D = 0, Dm = 0;  // dout . out (the forward's out)
                            for (int64_t c = 0; c < dv; c++) {
                                const double x = get(dout.data(), elem(to, b, h, i, c), dt) *
                                                 get(out.data(), elem(to, b, h, i, c), dt);
                                D += x, Dm += std::fabs(x);
                            }
                            for (int64_t j = 0; j < Nk; j++) {
                                const double p = P[row * (size_t)Nk + (size_t)j];
                                if (p == 0) continue;
                                const bool tiny = p < kTiny;
                                const size_t kr = (size_t)((b * Hkv + hk) * Nk + j);
                                double dp = 0, dpm = 0;
                                for (int64_t c = 0; c < dv; c++) {
                                    const double g = get(dout.data(), elem(to, b, h, i, c), dt);
                                    const double x = g * get(v.data(), elem(tv, b, hk, j, c), dt);
                                    dp += x, dpm += std::fabs(x);
                                    gv[kr * (size_t)dv + (size_t)c] += p * g;
                                    mv[kr * (size_t)dv + (size_t)c] += p * std::fabs(g);
                                    if (tiny) lv[kr * (size_t)dv + (size_t)c] += p * std::fabs(g);
                                }
                                const double ds = p * (dp - D), dsm = p * (dpm + Dm);
                                for (int64_t c = 0; c < d; c++) {
                                    const double kc = get(k.data(), elem(tk, b, hk, j, c), dt);
                                    const double qc = get(q.data(), elem(tq, b, h, i, c), dt);
                                    gq[row * (size_t)d + (size_t)c] += scale * ds * kc;
                                    mq[row * (size_t)d + (size_t)c] += scale * dsm * std::fabs(kc);
                                    gk[kr * (size_t)d + (size_t)c] += scale * ds * qc;
                                    mk[kr * (size_t)d + (size_t)c] += scale * dsm * std::fabs(qc);
                                    if (tiny) {
                                        lq[row * (size_t)d + (size_t)c] += scale * dsm * std::fabs(kc);
                                        lk[kr * (size_t)d + (size_t)c] += scale * dsm * std::fabs(qc);
                                    }
                                }
                            }
                        }
                // Weights carry the logits' error (e) and the fp32 lse's; sums add n ulps.
                const double r = 8 * err_max + 1e-4 + (double)(Nq * group + Nk + d + dv) * 0x1p-20;
                auto compare = [&](const Buffer &g, const Tensor &t, const std::vector<double> &ref,
                                   const std::vector<double> &mag, const std::vector<double> &lost,
                                   const std::vector<uint8_t> &rows_ok,
                                   int64_t heads, int64_t n, int64_t dim, const char *name) {
                    for (int64_t b = 0; b < B; b++)
                        for (int64_t h = 0; h < heads; h++)
                            for (int64_t j = 0; j < n; j++) {
                                const size_t rr = (size_t)((b * heads + h) * n + j);
                                if (!rows_ok[rr]) continue;
                                for (int64_t c = 0; c < dim; c++) {
                                    const double x = get(g.data(), elem(t, b, h, j, c), dt);
                                    const double want = ref[rr * (size_t)dim + (size_t)c];
                                    const double m = mag[rr * (size_t)dim + (size_t)c];
                                    const double dropped = lost[rr * (size_t)dim + (size_t)c];
                                    if (dt == SMYRF_DTYPE_F16 && m > 3e4) continue;  // may overflow
                                    const double tol = r * m + dropped + rel * std::fabs(want) + abs_dt + 1e-30;
                                    if (!(std::fabs(x - want) <= tol)) {
                                        std::fprintf(stderr, "%s (%lld, %lld, %lld, %lld): %.9g, float64 %.9g, tolerance %.3g\n",
                                                     name, (long long)b, (long long)h, (long long)j, (long long)c, x, want, tol);
                                        fuzz::violation("gradient differs from the float64 reference in an exact mode", name);
                                    }
                                }
                            }
                };
                compare(dq, tq, gq, mq, lq, q_ok, H, Nq, d, "dq");
                compare(dk, tk, gk, mk, lk, k_ok, Hkv, Nk, d, "dk");
                compare(dvb, tv, gv, mv, lv, k_ok, Hkv, Nk, dv, "dv");
            }
        }
    }
    smyrf_plan_destroy(plan);
    smyrf_plan_destroy(plan2);
    return 0;
}
