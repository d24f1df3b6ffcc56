// Each CPU stage (src/cpu/stages.hpp) against the reference stage of the same name, fed
// the same inputs, so that a failure points at one stage rather than at the pipeline.
// The library's headers come first: cmocka.h (via common.h) defines a fail() macro.
#include "core/directions.hpp"
#include "cpu/convert.hpp"
#include "cpu/hybrid_kernel.hpp"
#include "cpu/project_kernel.hpp"
#include "cpu/reduce.hpp"
#include "cpu/smyrf_clusters.hpp"
#include "cpu/stages.hpp"
#include "cpu/tile_backward.hpp"

#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using smyrf::Desc;
using smyrf::cpu::Args;
using smyrf::cpu::View;

const float kInf = std::numeric_limits<float>::infinity();

// The resolved plan description of a shape, built the way smyrf_plan_create builds it.
Desc desc_of(const tc_shape &s, int64_t rounds, int64_t cq, uint64_t seed) {
    smyrf::RawParams raw;
    raw.value[SMYRF_PARAM_BATCH] = s.batch;
    raw.value[SMYRF_PARAM_HEADS] = s.heads;
    raw.value[SMYRF_PARAM_KV_HEADS] = s.kv_heads;
    raw.value[SMYRF_PARAM_Q_LEN] = s.q_len;
    raw.value[SMYRF_PARAM_K_LEN] = s.k_len;
    raw.value[SMYRF_PARAM_QK_DIM] = s.qk_dim;
    raw.value[SMYRF_PARAM_V_DIM] = s.v_dim;
    raw.value[SMYRF_PARAM_CAUSAL] = s.causal;
    raw.value[SMYRF_PARAM_N_HASHES] = rounds;
    raw.value[SMYRF_PARAM_Q_CLUSTER_SIZE] = cq;
    raw.value[SMYRF_PARAM_SEED] = (int64_t)seed;
    raw.value[SMYRF_PARAM_THREADS] = 1;
    return smyrf::resolve(raw);
}

// fp32 views of the inputs (contiguous BHND) and of an output buffer.
Args args_of(const Desc &d, tc_inputs *in, float *out, float *lse) {
    Args a;
    a.q = View{in->q, d.q};
    a.k = View{in->k, d.k};
    a.v = View{in->v, d.v};
    a.out = View{out, d.out};
    a.key_mask = in->mask;
    a.lse = lse;
    return a;
}

struct Aligned {
    void operator()(void *p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float, Aligned>;

Buffer aligned_floats(size_t bytes) {
    void *p = std::aligned_alloc(64, (bytes + 127) & ~(size_t)63);  // never 0 bytes
    assert_non_null(p);
    return Buffer((float *)p);
}

// A random subset of 0..n-1 of about `share` of the items, in random order.
std::vector<int32_t> random_subset(tc_rng &r, const int32_t *from, int64_t n, double share) {
    std::vector<int32_t> out;
    for (int64_t i = 0; i < n; i++)
        if (tc_uniform(&r) < share) out.push_back(from ? from[i] : (int32_t)i);
    for (size_t i = out.size(); i > 1; i--) std::swap(out[i - 1], out[tc_next(&r) % i]);
    return out;
}

const tc_shape kShapes[] = {
    {1, 2, 1, 130, 170, 1, 3, 0},
    {2, 1, 0, 90, 90, 8, 0, 1},
    {1, 2, 0, 61, 200, 21, 5, 0},
    {1, 1, 0, 143, 143, 64, 0, 1},
};

}  // namespace

// fp16 and bf16 <-> fp32 at the backend's edges (cpu/convert.hpp), against slow obvious
// references: every 16-bit pattern against its value built from its fields in double;
// floats across the whole range (every 4099th bit pattern, and each midpoint between
// neighbouring finite values with the floats on either side of it) against the nearest
// finite value found by a search, ties to the even pattern, overflow to inf, NaN to a
// NaN of the same sign. Each direction converts all its values in one row, so the
// vectorised body of the row loops is what is checked (and its tail).
struct Format16 {
    const char *name;
    int mant_bits, bias;
    smyrf_dtype dtype;
    int exp_of(uint32_t h) const { return (int)((h >> mant_bits) & ((0x8000u >> mant_bits) - 1)); }
    uint32_t inf() const { return 0x7fffu >> mant_bits << mant_bits; }
    double value(uint32_t h) const {  // a finite pattern
        const int e = exp_of(h), m = (int)(h & ((1u << mant_bits) - 1));
        const double mag = e ? std::ldexp((1 << mant_bits) + m, e - bias - mant_bits)
                             : std::ldexp(m, 1 - bias - mant_bits);
        return (h & 0x8000) ? -mag : mag;
    }
};

static void check_format(const Format16 &f, const std::vector<float> &sweep) {
    const uint32_t all_ones = (0x8000u >> f.mant_bits) - 1;
    std::vector<uint16_t> patterns(65536);
    std::vector<float> as_f32(65536);
    for (uint32_t h = 0; h < 65536; h++) patterns[h] = (uint16_t)h;
    smyrf::cpu::to_f32_row(f.dtype, patterns.data(), as_f32.data(), 65536);
    for (uint32_t h = 0; h < 65536; h++) {
        const float got = as_f32[h];
        assert_true(std::signbit(got) == ((h & 0x8000) != 0));
        if ((uint32_t)f.exp_of(h) == all_ones)
            assert_true((h & ((1u << f.mant_bits) - 1)) ? std::isnan(got) : std::isinf(got));
        else assert_true((double)got == f.value(h));
    }
    std::vector<double> values(f.inf());  // the finite values >= 0, increasing with the bits
    for (uint32_t h = 0; h < f.inf(); h++) values[h] = f.value(h);
    // past the largest finite value, halfway to the next power of two rounds to inf
    const double overflow = values.back() + std::ldexp(1.0, f.exp_of(f.inf() - 1) - f.bias - f.mant_bits - 1);
    const auto nearest = [&](double a) -> uint32_t {  // a >= 0
        if (a >= overflow) return f.inf();
        const size_t hi = std::lower_bound(values.begin(), values.end(), a) - values.begin();
        if (hi == 0) return 0;
        if (hi == values.size()) return f.inf() - 1;
        const size_t lo = hi - 1;
        const double below = a - values[lo], above = values[hi] - a;
        if (below != above) return (uint32_t)(below < above ? lo : hi);
        return (uint32_t)(lo % 2 == 0 ? lo : hi);
    };
    std::vector<float> xs = sweep;
    for (uint32_t h = 0; h + 1 < f.inf(); h++) {
        const float mid = (float)((values[h] + values[h + 1]) / 2);  // exact in float
        xs.insert(xs.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, kInf)});
    }
    const float top = (float)overflow;
    xs.insert(xs.end(), {top, std::nextafter(top, 0.0f), kInf, NAN});
    std::vector<float> signed_xs;
    for (const float x : xs) signed_xs.insert(signed_xs.end(), {x, -x});
    std::vector<uint16_t> as_16(signed_xs.size());
    smyrf::cpu::from_f32_row(f.dtype, signed_xs.data(), as_16.data(), (int64_t)signed_xs.size());
    for (size_t i = 0; i < signed_xs.size(); i++) {
        const float v = signed_xs[i];
        const uint16_t got = as_16[i];
        if (std::isnan(v)) {
            assert_true((uint32_t)f.exp_of(got) == all_ones && (got & ((1u << f.mant_bits) - 1)));
            assert_true(((got & 0x8000) != 0) == std::signbit(v));
            continue;
        }
        const uint32_t want = (std::signbit(v) ? 0x8000u : 0u) | nearest(std::fabs((double)v));
        if (got != want)
            fail_msg("%s: from %a gives 0x%04x, want 0x%04x", f.name, (double)v, got, want);
    }
}

static void conversions_match_reference(void **) {
    std::vector<float> sweep;
    for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4099) {
        const uint32_t bits = (uint32_t)u;
        float x;
        std::memcpy(&x, &bits, sizeof x);
        sweep.push_back(x);
    }
    check_format({"fp16", 10, 15, SMYRF_DTYPE_F16}, sweep);
    check_format({"bf16", 7, 127, SMYRF_DTYPE_BF16}, sweep);
}

// transform: fp32 norms and the M2 built from them match the reference; padded keys,
// however large, stay out of the key maximum.
static void transform_matches_reference(void **) {
    for (const tc_shape &s : kShapes) {
        tc_inputs *in = tc_inputs_create(&s, 11, 0.6);
        in->k[0] = 1e3f;  // a huge padded key: key 1 of batch 0 is made padding below
        std::swap(in->k[0], in->k[s.qk_dim]);
        in->mask[1] = 0;
        tc_inputs_sync(in);
        const Desc d = desc_of(in->s, 1, 16, 0);
        const Args a = args_of(d, in, nullptr, nullptr);
        smyrf_ref_problem rp = tc_ref_problem(in);
        std::vector<float> qn(d.q_len), kn(d.k_len);
        std::vector<double> rqn(d.q_len), rkn(d.k_len);
        for (int64_t b = 0; b < d.batch; b++)
            for (int64_t h = 0; h < d.heads; h++) {
                const double m2 = smyrf_ref_transform(&rp, b, h, rqn.data(), rkn.data());
                const std::vector<float> dirs = smyrf::hash_directions(d);
                std::vector<float> qh(d.q_len), kh(d.k_len);  // projections: not checked here
                smyrf::cpu::transform_project(a.q, b, h, 0, d.q_len, d.qk_dim, dirs.data(), 1, qn.data(), qh.data());
                smyrf::cpu::transform_project(a.k, b, d.kv_head_of(h), 0, d.k_len, d.qk_dim, dirs.data(), 1, kn.data(), kh.data());
                const uint8_t *mask = in->mask ? in->mask + b * d.k_len : nullptr;
                const float mq = smyrf::cpu::max_norm(qn.data(), nullptr, 0, d.q_len);
                const float mk = smyrf::cpu::max_norm(kn.data(), mask, 0, d.k_len);
                const double tol = 4e-7 * (double)(d.qk_dim + 1);
                for (int64_t i = 0; i < d.q_len; i++)
                    assert_true(std::fabs(qn[i] - rqn[i]) <= tol * rqn[i] + 1e-30);
                for (int64_t j = 0; j < d.k_len; j++)
                    assert_true(std::fabs(kn[j] - rkn[j]) <= tol * rkn[j] + 1e-30);
                assert_true(std::fabs(((double)mq + mk) - m2) <= tol * m2);
                assert_true(mk < 1e5f);  // the padded 1e3 key (norm 1e6) did not count
            }
        tc_inputs_destroy(in);
    }
}

// The kernels this CPU can run, best first: the AVX-512 one (nullptr: none, as for the
// projection, which AVX-512 CPUs run in its AVX2 build) and the AVX2 one where the CPU has
// them and FMA, then the portable one. The x86 builds exist only on x86.
#if defined(__x86_64__)
#define X86_KERNEL(f) (f)
#else
#define X86_KERNEL(f) nullptr
#endif
template <class Kernel>
std::vector<std::pair<const char *, Kernel>> runnable(Kernel avx512, Kernel avx2, Kernel portable) {
    std::vector<std::pair<const char *, Kernel>> k;
#if defined(__x86_64__)
    __builtin_cpu_init();
    const bool fma = __builtin_cpu_supports("fma");
    if (avx512 && fma && __builtin_cpu_supports("avx512f")) k.push_back({"avx512", avx512});
    if (avx2 && fma && __builtin_cpu_supports("avx2")) k.push_back({"avx2", avx2});
#endif
    k.push_back({"portable", portable});
    return k;
}

// transform's norms and projections (cpu/project_kernel.hpp) are dot_of's (cpu/reduce.hpp),
// bit for bit, on every runnable kernel: dims around dot_of's 8 partial sums and the
// vector widths, row counts around the kernel's blocks of rows, rounds that fill its
// groups of 3 outputs or not, rows read at a stride; and so is transform_project through
// a View over a row range. Values span 2^-10..2^10, so that any other order of the sums
// would show.
static void projection_is_dot_of(void **) {
    tc_rng r = tc_rng_make(19);
    const auto kernels = runnable<smyrf::cpu::ProjectKernel>(
        nullptr, X86_KERNEL(smyrf::cpu::avx2::project), smyrf::cpu::portable::project);
    for (const int64_t dim : {1, 3, 8, 15, 21, 64, 65, 130})
        for (const int64_t n : {1, 5, 16, 17, 100})
            for (const int64_t rounds : {1, 2, 3, 5}) {
                const int64_t stride = dim + 3;  // rows not back to back, as in a strided View
                std::vector<float> x(2 * n * stride), dirs(rounds * (dim + 2));  // heads 0, 1
                for (float &v : x) v = (float)std::ldexp(tc_normal(&r), (int)(tc_next(&r) % 21) - 10);
                for (float &v : dirs) v = (float)tc_normal(&r);
                const float *head1 = x.data() + n * stride;
                std::vector<float> want_norms(n), want(n * rounds);
                for (int64_t i = 0; i < n; i++) {
                    const float *row = head1 + i * stride;
                    want_norms[i] = smyrf::cpu::dot_of(row, row, dim);
                    for (int64_t k = 0; k < rounds; k++)
                        want[i * rounds + k] = smyrf::cpu::dot_of(row, dirs.data() + k * (dim + 2), dim);
                }
                for (const auto &[name, kernel] : kernels) {
                    std::vector<float> norms(n, NAN), got(n * rounds, NAN);
                    kernel(head1, stride, n, dim, dirs.data(), rounds, norms.data(), got.data());
                    tc_assert_same_bits(norms.data(), want_norms.data(), n * sizeof(float), name);
                    tc_assert_same_bits(got.data(), want.data(), got.size() * sizeof(float), name);
                }
                const View view{x.data(), {0, n * stride, stride}};
                const int64_t i0 = n / 3;
                std::vector<float> norms(n, NAN), got(n * rounds, NAN);
                smyrf::cpu::transform_project(view, 0, 1, i0, n, dim, dirs.data(), rounds, norms.data(), got.data());
                tc_assert_same_bits(norms.data() + i0, want_norms.data() + i0, (n - i0) * sizeof(float), "norms");
                tc_assert_same_bits(got.data() + i0 * rounds, want.data() + i0 * rounds,
                                    (n - i0) * rounds * sizeof(float), "projections");
            }
}

// The directions generator is the one stage the reference shares with the library (it
// calls smyrf::direction_component), so no comparison can see a bug in it: check what
// ALGORITHM.md asks of it directly. Keyed by (seed, head, round, component): every one of
// 8 x 8 x 66 draws is distinct (doubles: a repeat means a dropped key part), and another
// seed changes them all; N(0, 1): sample mean and variance within 5 standard errors.
static void directions_are_keyed_and_normal(void **) {
    const int64_t H = 8, R = 8, dim2 = 66, n = H * R * dim2;
    for (const uint64_t seed : {0ULL, 7ULL, 0xfeedULL}) {
        std::vector<double> x, other;
        for (int64_t h = 0; h < H; h++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < dim2; c++) {
                    x.push_back(smyrf::direction_component(seed, h, r, c));
                    other.push_back(smyrf::direction_component(seed + 1, h, r, c));
                }
        for (int64_t e = 0; e < n; e++)
            if (x[e] == other[e]) fail_msg("seed %llu: draw %lld ignores the seed", (unsigned long long)seed, (long long)e);
        std::sort(x.begin(), x.end());
        for (int64_t e = 1; e < n; e++)
            if (x[e] == x[e - 1]) fail_msg("seed %llu: a draw repeats (%.17g)", (unsigned long long)seed, x[e]);
        double mean = 0, var = 0;
        for (const double v : x) mean += v / n;
        for (const double v : x) var += (v - mean) * (v - mean) / (n - 1);
        assert_true(std::fabs(mean) < 5.0 / std::sqrt((double)n));
        assert_true(std::fabs(var - 1.0) < 5.0 * std::sqrt(2.0 / n));
    }
}

// hash: the library's directions are the reference's, bit for bit; its projections land
// within the reference's float32 error bound (the bound the SMYRF suite relies on).
static void hash_matches_reference(void **) {
    const int64_t R = 3;
    for (const tc_shape &s : kShapes) {
        tc_inputs *in = tc_inputs_create(&s, 12, 0.7);
        const uint64_t seed = 0xfeedULL + (uint64_t)s.qk_dim;
        const Desc d = desc_of(in->s, R, 16, seed);
        const Args a = args_of(d, in, nullptr, nullptr);
        smyrf_ref_problem rp = tc_ref_problem(in);
        const int64_t dim2 = d.qk_dim + 2;
        const std::vector<float> dirs = smyrf::hash_directions(d);
        std::vector<double> ref_dir(dim2);
        for (int64_t h = 0; h < d.heads; h++)
            for (int64_t r = 0; r < R; r++) {
                smyrf_ref_direction(seed, h, r, dim2, ref_dir.data());
                for (int64_t c = 0; c < dim2; c++)
                    assert_true((double)dirs[(h * R + r) * dim2 + c] == ref_dir[c]);
            }

        std::vector<float> qn(d.q_len), kn(d.k_len), qh(d.q_len * R), kh(d.k_len * R);
        std::vector<double> rh(std::max(d.q_len, d.k_len)), re(rh.size());
        std::vector<int32_t> valid(d.k_len);
        for (int64_t b = 0; b < d.batch; b++)
            for (int64_t h = 0; h < d.heads; h++) {
                const int64_t hk = d.kv_head_of(h), nv = smyrf_ref_valid_keys(&rp, b, valid.data());
                const float *dir = dirs.data() + h * R * dim2;
                smyrf::cpu::transform_project(a.q, b, h, 0, d.q_len, d.qk_dim, dir, R, qn.data(), qh.data());
                smyrf::cpu::transform_project(a.k, b, hk, 0, d.k_len, d.qk_dim, dir, R, kn.data(), kh.data());
                const uint8_t *mask = in->mask ? in->mask + b * d.k_len : nullptr;
                const float m2 = smyrf::cpu::max_norm(qn.data(), nullptr, 0, d.q_len) +
                                 smyrf::cpu::max_norm(kn.data(), mask, 0, d.k_len);
                for (int64_t r = 0; r < R; r++) {
                    smyrf::cpu::hash_extend(0, d.q_len, d.qk_dim, qn.data(), m2, true, dir, R, r, qh.data());
                    smyrf::cpu::hash_extend(0, d.k_len, d.qk_dim, kn.data(), m2, false, dir, R, r, kh.data());
                }
                const double rm2 = smyrf_ref_transform(&rp, b, h, nullptr, nullptr);
                for (int64_t r = 0; r < R; r++) {
                    smyrf_ref_direction(seed, h, r, dim2, ref_dir.data());
                    smyrf_ref_hash(&rp, b, h, 1, rm2, ref_dir.data(), rh.data(), re.data());
                    for (int64_t i = 0; i < d.q_len; i++)
                        if (!(std::fabs(qh[i * R + r] - rh[i]) <= re[i]))
                            fail_msg("query %lld round %lld: hash %.9g, reference %.9g +- %.3g",
                                     (long long)i, (long long)r, (double)qh[i * R + r], rh[i], re[i]);
                    smyrf_ref_hash(&rp, b, h, 0, rm2, ref_dir.data(), rh.data(), re.data());
                    for (int64_t t = 0; t < nv; t++) {
                        const int64_t j = valid[t];
                        if (!(std::fabs(kh[j * R + r] - rh[j]) <= re[j]))
                            fail_msg("key %lld round %lld: hash %.9g, reference %.9g +- %.3g",
                                     (long long)j, (long long)r, (double)kh[j * R + r], rh[j], re[j]);
                    }
                }
            }
        tc_inputs_destroy(in);
    }
}

// The error bound is not vacuous: on these inputs it stays far below the typical gap
// between neighbouring hashes, otherwise every cut would count as unsure.
static void hash_error_bound_is_tight(void **) {
    const tc_shape s = {1, 1, 0, 587, 587, 64, 0, 0};
    tc_inputs *in = tc_inputs_create(&s, 13, 0);
    smyrf_ref_problem rp = tc_ref_problem(in);
    std::vector<double> dir(66), h(587), e(587);
    smyrf_ref_direction(1, 0, 0, 66, dir.data());
    const double m2 = smyrf_ref_transform(&rp, 0, 0, nullptr, nullptr);
    smyrf_ref_hash(&rp, 0, 0, 1, m2, dir.data(), h.data(), e.data());
    double lo = h[0], hi = h[0], emax = 0;
    for (int i = 0; i < 587; i++) lo = std::min(lo, h[i]), hi = std::max(hi, h[i]);
    std::vector<double> sorted_e(e);
    std::sort(sorted_e.begin(), sorted_e.end());
    emax = sorted_e[586 - 5];  // all but the few rows near the maximum norm
    assert_true(emax < 0.01 * (hi - lo) / 587);
    tc_inputs_destroy(in);
}

// cluster (sort): on the same float hashes the radix sort and std::stable_sort agree
// exactly, duplicates, infinities and both zeros (equal: in position order) included,
// with a stride and an item subset. The last four trials are long: with the pool's
// values one digit's bucket then holds more than 2^16 entries.
static void sort_matches_reference(void **) {
    tc_rng r = tc_rng_make(14);
    const float pool[] = {-kInf, -3.5f, -1e-30f, -0.0f, 0.0f, 1e-30f, 2.0f, 2.0f, 7.25e10f, kInf};
    const uint64_t pooled = sizeof pool / sizeof pool[0];
    for (int trial = 0; trial < 24; trial++) {
        const int64_t n = trial < 20 ? 1 + (int64_t)(tc_next(&r) % 1000)
                                     : 150000 + (int64_t)(tc_next(&r) % 1000);
        const int64_t stride = 1 + trial % 3;
        std::vector<float> hash(n * stride);
        for (float &x : hash)
            x = (trial % 2) ? pool[tc_next(&r) % pooled] : (float)tc_normal(&r);  // many ties, or none
        std::vector<double> hd(n);
        for (int64_t i = 0; i < n; i++) hd[i] = hash[i * stride];
        const std::vector<int32_t> items =
            random_subset(r, nullptr, n, trial < 10 || trial >= 22 ? 1.0 : 0.6);
        const int64_t count = (int64_t)items.size();
        std::vector<int32_t> got(count), want(count);
        std::vector<uint64_t> scratch(smyrf::cpu::sort_scratch_entries(count));
        smyrf::cpu::sort_by_hash(hash.data(), stride, items.data(), count, got.data(), scratch.data());
        smyrf_ref_sort(hd.data(), items.data(), count, want.data());
        for (int64_t i = 0; i < count; i++)
            if (got[i] != want[i])
                fail_msg("trial %d: sorted[%lld] = %d, reference %d", trial, (long long)i, got[i], want[i]);
    }
}

// NaN hashes (from NaN inputs) must not break the order of the others: negative NaNs
// first, positive NaNs last, everything else sorted and stable.
static void sort_is_nan_safe(void **) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> hash = {3, nan, -1, -nan, 3, kInf, nan, -kInf, 0, -1};
    const int64_t n = (int64_t)hash.size();
    std::vector<int32_t> got(n);
    std::vector<uint64_t> scratch(smyrf::cpu::sort_scratch_entries(n));
    smyrf::cpu::sort_by_hash(hash.data(), 1, nullptr, n, got.data(), scratch.data());
    const std::vector<int32_t> want = {3, 7, 2, 9, 8, 0, 4, 5, 1, 6};
    for (int64_t i = 0; i < n; i++) assert_int_equal(got[i], want[i]);
}

// The balanced cut: the library's boundaries are the reference's, they cover every
// position once, and sizes differ by at most one, for any n and C.
static void cluster_cut_is_balanced(void **) {
    for (int64_t n = 0; n <= 70; n++)
        for (int64_t C = 1; C <= 75; C++) {
            int64_t lo = INT64_MAX, hi = 0;
            assert_int_equal(smyrf::cpu::cluster_begin(n, C, 0), 0);
            assert_int_equal(smyrf::cpu::cluster_begin(n, C, C), n);
            for (int64_t c = 0; c < C; c++) {
                const int64_t b0 = smyrf::cpu::cluster_begin(n, C, c), b1 = smyrf::cpu::cluster_begin(n, C, c + 1);
                assert_int_equal(b0, smyrf_ref_cluster_begin(n, C, c));
                lo = std::min(lo, b1 - b0), hi = std::max(hi, b1 - b0);
            }
            assert_true(hi - lo <= 1);
        }
}

// Loading ahead (cpu/tile.hpp): the rows of all lists, list after list, each asked for
// once, empty lists skipped, however the calls cut them up; asking past the end asks for
// nothing (the position lists are exactly as long as their counts, so a walk past one
// shows under the sanitizers).
static void loading_ahead_walks_every_row_once(void **) {
    std::vector<float> rows(6 * 16, 1.0f);
    const std::unique_ptr<int32_t[]> a(new int32_t[2]{5, 0}), c(new int32_t[3]{1, 4, 2});
    smyrf::cpu::Ahead x;
    smyrf::cpu::ahead_add(x, a.get(), 2, rows.data(), 16, 16);
    smyrf::cpu::ahead_add(x, nullptr, 0, rows.data(), 16, 16);
    smyrf::cpu::ahead_add(x, c.get(), 3, rows.data(), 16, 3);
    assert_int_equal(x.rows, 5);
    const int64_t asks[] = {1, 0, 2, 1, 10, 3};
    const int64_t done[] = {1, 1, 3, 4, 5, 5};
    for (int s = 0; s < 6; s++) {
        smyrf::cpu::load_ahead(x, asks[s]);
        assert_int_equal(x.done, done[s]);
    }
    assert_int_equal(x.cur, 2);
    assert_int_equal(x.within, 3);
}

// Claiming shares (cpu/parallel.hpp): a share's owner takes its own share from
// the front, then the others' from the back, one at a time; several threads claiming
// at once get every item exactly once between them.
static void share_claims_hand_out_every_item_once(void **) {
    {
        // shares [0, 3), [3, 6), [6, 10); share 1's owner then takes from 2, then from 0
        smyrf::cpu::ShareClaims c(10, 3);
        const int64_t order[] = {3, 4, 5, 9, 8, 7, 6, 2, 1, 0, -1, -1};
        for (int64_t want : order) assert_int_equal(c.claim(1), want);
    }
    for (const int64_t n : {1, 7, 100, 1001})
        for (const int64_t shares : {1, 2, 3, 7}) {
            if (shares > n) continue;
            smyrf::cpu::ShareClaims c(n, shares);
            std::vector<std::vector<int64_t>> got(shares);
            std::vector<std::thread> threads;
            for (int64_t s = 0; s < shares; s++)
                threads.emplace_back([&, s] {
                    for (int64_t u; (u = c.claim(s)) >= 0;) got[s].push_back(u);
                });
            for (auto &t : threads) t.join();
            std::vector<int> times(n, 0);
            for (const auto &g : got)
                for (int64_t u : g) {
                    assert_true(u >= 0 && u < n);
                    times[u]++;
                }
            for (int64_t u = 0; u < n; u++) assert_int_equal(times[u], 1);
        }
}

// One shape of attention_matches_reference (below), q and k scaled by `spread`.
template <class Kernels>
static void attention_case(tc_rng &r, const Kernels &kernels, const tc_shape &s, float spread) {
    tc_inputs *in = tc_inputs_create(&s, 16, 0.8);
    for (size_t x = 0; x < in->nq_el; x++) in->q[x] *= spread;
    for (size_t x = 0; x < in->nk_el; x++) in->k[x] *= spread;
    tc_inputs_sync(in);
    const double rtol = spread == 1.0f ? 1e-5 : 1e-3;
    const Desc d = desc_of(in->s, 1, 16, 0);
    std::vector<float> out(in->no_el, NAN);
    const Args a = args_of(d, in, out.data(), nullptr);
    smyrf_ref_problem rp = tc_ref_problem(in);
    std::vector<int32_t> valid(d.k_len);
    for (int trial = 0; trial < 6; trial++) {
        const int64_t b = trial % d.batch, h = trial % d.heads, dv = d.v_dim;
        const int64_t nv = smyrf_ref_valid_keys(&rp, b, valid.data());
        // one tile: at most kQueryTile queries and kKeyTile keys
        std::vector<int32_t> qi = random_subset(r, nullptr, d.q_len, 0.3);
        std::vector<int32_t> kj = random_subset(r, valid.data(), nv, trial == 0 ? 0.0 : 0.3);
        qi.resize(std::min<size_t>(qi.size(), smyrf::cpu::kQueryTile));
        kj.resize(std::min<size_t>(kj.size(), smyrf::cpu::kKeyTile));
        const int64_t nq = (int64_t)qi.size(), nk = (int64_t)kj.size();
        std::vector<double> ro(nq * dv + 1), rl(nq + 1);
        smyrf_ref_attention(&rp, b, h, qi.data(), nq, kj.data(), nk, ro.data(), rl.data());
        smyrf::cpu::Arena sizing;
        smyrf::cpu::attention_scratch(sizing, d);
        Buffer ws = aligned_floats(sizing.used());
        std::vector<float> first_out, first_ml;
        for (const auto &[name, kernel] : kernels) {
            std::vector<smyrf::cpu::RowState> state(d.q_len);
            smyrf::cpu::combine_init(0, d.q_len, state.data());
            for (int64_t t = 0; t < nq; t++)  // out rows hold garbage before a first block
                std::fill_n(a.out.row(b, h, qi[t]), dv, NAN);
            smyrf::cpu::Arena arena(ws.get());
            const smyrf::cpu::AttentionScratch sc = smyrf::cpu::attention_scratch(arena, d);
            kernel(smyrf::cpu::tile_of(d, a, b, h, qi.data(), nq, kj.data(), nk, sc, state.data()));
            std::vector<float> got_out, got_ml;
            for (int64_t t = 0; t < nq; t++) {
                const float *row = a.out.row(b, h, qi[t]);
                const float m = state[qi[t]].m, l = state[qi[t]].l;
                got_out.insert(got_out.end(), row, row + dv);
                got_ml.push_back(m);
                got_ml.push_back(l);
                if (std::isinf(rl[t])) {
                    assert_true(m == -kInf && l == 0.0f);
                    // untouched (combine_finish writes such rows)
                    for (int64_t c = 0; c < dv; c++) assert_true(std::isnan(row[c]));
                    continue;
                }
                assert_true(std::fabs(((double)m + std::log((double)l)) - rl[t]) <= 1e-5 * (1 + std::fabs(rl[t])));
                std::vector<float> normalised(dv);
                for (int64_t c = 0; c < dv; c++) normalised[c] = row[c] / l;
                tc_assert_close(normalised.data(), ro.data() + t * dv, dv, dv, nullptr, rtol, rtol / 10, name);
            }
            if (std::string(name) == "avx2" && !first_out.empty()) {  // after avx512
                assert_memory_equal(got_out.data(), first_out.data(), got_out.size() * sizeof(float));
                assert_memory_equal(got_ml.data(), first_ml.data(), got_ml.size() * sizeof(float));
            }
            if (std::string(name) == "avx512") first_out = got_out, first_ml = got_ml;
        }
    }
    tc_inputs_destroy(in);
}

// HYBRID's k-means distances (cpu/hybrid_kernel.hpp, CentreProducts): on every runnable
// kernel, dist[g][u] is -2 times one chain over the dimensions in order, an FMA chain for
// the AVX-512 and AVX2 kernels (so they agree bit for bit), a multiply-then-add chain for
// the portable one; centres past a panel of 64 and key blocks short of one are covered.
// Values span 2^-10..2^10, so that any other order of the sums would show.
static void centre_distances_are_ordered_chains(void **) {
    tc_rng r = tc_rng_make(23);
    using Kernel = void (*)(const smyrf::cpu::hybrid::CentreProducts &);
    const auto kernels = runnable<Kernel>(X86_KERNEL(smyrf::cpu::avx512::centre_distances),
                                          X86_KERNEL(smyrf::cpu::avx2::centre_distances),
                                          smyrf::cpu::portable::centre_distances);
    const int64_t lanes = smyrf::cpu::hybrid::kAttendQueries;
    for (const int64_t dim : {1, 7, 16, 64, 65})
        for (const int64_t n : {int64_t(1), int64_t(5), int64_t(16), int64_t(17), lanes})
            for (const int64_t groups : {int64_t(1), int64_t(5), int64_t(26), lanes, lanes + 1, int64_t(100)}) {
                const int64_t stride = dim + 3;  // rows not back to back
                std::vector<float> keys(n * stride), centres(groups * stride);
                for (float &v : keys) v = (float)std::ldexp(tc_normal(&r), (int)(tc_next(&r) % 21) - 10);
                for (float &v : centres) v = (float)std::ldexp(tc_normal(&r), (int)(tc_next(&r) % 21) - 10);
                std::vector<const float *> krow(n), crow(groups);
                for (int64_t u = 0; u < n; u++) krow[u] = keys.data() + u * stride;
                for (int64_t g = 0; g < groups; g++) crow[g] = centres.data() + g * stride;
                for (const auto &[name, kernel] : kernels) {
                    const bool fused = std::string(name) != "portable";
                    Buffer kt = aligned_floats(dim * lanes * sizeof(float));
                    Buffer dist = aligned_floats(groups * lanes * sizeof(float));
                    kernel({krow.data(), crow.data(), kt.get(), dist.get(), n, groups, dim});
                    for (int64_t g = 0; g < groups; g++)
                        for (int64_t u = 0; u < n; u++) {
                            float acc = 0.0f;
                            for (int64_t x = 0; x < dim; x++)
                                acc = fused ? std::fmaf(crow[g][x], krow[u][x], acc)
                                            : acc + crow[g][x] * krow[u][x];
                            const float want = -2.0f * acc, got = dist.get()[g * lanes + u];
                            if (std::memcmp(&want, &got, sizeof(float)) != 0)
                                fail_msg("%s: dim %lld, n %lld, groups %lld: dist[%lld][%lld] = %.9g, want %.9g",
                                         name, (long long)dim, (long long)n, (long long)groups,
                                         (long long)g, (long long)u, got, want);
                        }
                }
            }
}

// attention (+ its fused merge): arbitrary query and key subsets (in any order), causal
// mask included, one tile into a fresh state: out / l is the reference's normalised row,
// m + log(l) its lse; a query with no allowed key keeps the empty state (zero row). Every
// runnable kernel is checked, and the AVX-512 and AVX2 kernels agree bit for bit. Then
// again with q and k 12 times larger: logits hundreds apart, rows close to one-hot and
// most weights e^x far below 1 or underflowing to 0 (the fp32 logits' own rounding then
// sets the tolerance).
static void attention_matches_reference(void **) {
    tc_rng r = tc_rng_make(15);
    const auto kernels = runnable<smyrf::cpu::TileKernel>(
        X86_KERNEL(smyrf::cpu::avx512::tile_attention), X86_KERNEL(smyrf::cpu::avx2::tile_attention),
        smyrf::cpu::portable::tile_attention);
    for (const float spread : {1.0f, 12.0f})
        for (const tc_shape &s : kShapes) attention_case(r, kernels, s, spread);
}

// attention backward (the fused tile kernel of cpu/tile_backward.hpp): arbitrary query
// and key subsets (in any order), causal mask included, one tile, LSE and D from the
// reference attention over the tile: the gradients added into dq, dk and dv rows holding
// earlier values are those values plus the reference's gradient of softmax attention over
// each query's allowed keys of the tile; other rows stay as they were; met marks exactly
// the queries with an allowed key. Every runnable kernel is checked, and the AVX-512 and
// AVX2 kernels agree bit for bit.
static void attention_backward_matches_reference(void **) {
    using smyrf::cpu::kGradTileKeys;
    using smyrf::cpu::kTileQueries;
    tc_rng r = tc_rng_make(19);
    const auto kernels = runnable<smyrf::cpu::GradTileKernel>(
        X86_KERNEL(smyrf::cpu::avx512::tile_backward), X86_KERNEL(smyrf::cpu::avx2::tile_backward),
        smyrf::cpu::portable::tile_backward);
    const double shares[][2] = {{0.3, 0.0}, {1.0, 1.0}, {0.3, 0.3}, {0.6, 0.8}, {0.1, 0.5}, {0.5, 0.1}};
    for (const tc_shape &s : kShapes) {
        tc_inputs *in = tc_inputs_create(&s, 20, 0.8);
        const Desc d = desc_of(in->s, 1, 16, 0);
        const int64_t dim = d.qk_dim, dv = d.v_dim, nq_all = d.q_len, nk_all = d.k_len;
        const int64_t offset = d.causal ? d.causal_offset() : 0;
        smyrf_ref_problem rp = tc_ref_problem(in);
        std::vector<float> dout(in->no_el), init_q(in->nq_el), init_k(in->nk_el), init_v(in->nv_el);
        tc_fill_normal(&r, dout.data(), dout.size(), 1.0);
        tc_fill_normal(&r, init_q.data(), init_q.size(), 0.05);
        tc_fill_normal(&r, init_k.data(), init_k.size(), 0.05);
        tc_fill_normal(&r, init_v.data(), init_v.size(), 0.05);
        std::vector<int32_t> valid(nk_all);
        for (int trial = 0; trial < 6; trial++) {
            const int64_t b = trial % d.batch, h = trial % d.heads, hk = d.kv_head_of(h);
            const int64_t nv = smyrf_ref_valid_keys(&rp, b, valid.data());
            std::vector<int32_t> qi = random_subset(r, nullptr, nq_all, shares[trial][0]);
            std::vector<int32_t> kj = random_subset(r, valid.data(), nv, shares[trial][1]);
            qi.resize(std::min<size_t>(qi.size(), kTileQueries));
            kj.resize(std::min<size_t>(kj.size(), kGradTileKeys));
            const int64_t nq = (int64_t)qi.size(), nk = (int64_t)kj.size();
            // The reference: attention over the tile (LSE, D), then each query's gradient.
            std::vector<double> ro(nq * dv + 1), rl(nq + 1);
            smyrf_ref_attention(&rp, b, h, qi.data(), nq, kj.data(), nk, ro.data(), rl.data());
            std::vector<float> lse(nq_all, NAN), delta(nq_all, NAN);
            std::vector<double> want_q(nq * dim), want_k(in->nk_el), want_v(in->nv_el);
            std::vector<uint8_t> want_met(nq_all, 0);
            for (size_t e = 0; e < want_k.size(); e++) want_k[e] = init_k[e];
            for (size_t e = 0; e < want_v.size(); e++) want_v[e] = init_v[e];
            std::vector<double> dout_row(dv);
            std::vector<int32_t> allowed;
            for (int64_t t = 0; t < nq; t++) {
                const int64_t i = qi[t];
                const float *o = dout.data() + ((b * d.heads + h) * nq_all + i) * dv;
                double D = 0;
                for (int64_t c = 0; c < dv; c++) D += (double)o[c] * ro[t * dv + c], dout_row[c] = o[c];
                lse[i] = (float)rl[t];
                delta[i] = (float)D;
                const float *q0 = init_q.data() + ((b * d.heads + h) * nq_all + i) * dim;
                for (int64_t c = 0; c < dim; c++) want_q[t * dim + c] = q0[c];
                allowed.clear();
                for (int64_t u = 0; u < nk; u++)
                    if (!d.causal || kj[u] <= i + offset) allowed.push_back(kj[u]);
                if (allowed.empty()) continue;
                want_met[i] = 1;
                smyrf_ref_multiset_grad(&rp, b, h, i, allowed.data(), (int64_t)allowed.size(),
                                        dout_row.data(), want_q.data() + t * dim, want_k.data(), want_v.data());
            }
            std::vector<float> first_q, first_k, first_v;
            for (const auto &[name, kernel] : kernels) {
                std::vector<float> gq(init_q), gk(init_k), gv(init_v);
                std::vector<uint8_t> met(nq_all, 0);
                std::vector<const float *> q_rows(nq), o_rows(nq), k_rows(nk), v_rows(nk);
                std::vector<float *> dq_rows(nq), dk_rows(nk), dv_rows(nk);
                for (int64_t t = 0; t < nq; t++) {
                    const int64_t at = (b * d.heads + h) * nq_all + qi[t];
                    q_rows[t] = in->q + at * dim;
                    o_rows[t] = dout.data() + at * dv;
                    dq_rows[t] = gq.data() + at * dim;
                }
                for (int64_t u = 0; u < nk; u++) {
                    const int64_t at = (b * d.kv_heads + hk) * nk_all + kj[u];
                    k_rows[u] = in->k + at * dim;
                    v_rows[u] = in->v + at * dv;
                    dk_rows[u] = gk.data() + at * dim;
                    dv_rows[u] = gv.data() + at * dv;
                }
                std::vector<float> qt(dim * kTileQueries), ot(dv * kTileQueries);
                std::vector<float> pt(kGradTileKeys * kTileQueries), dst(pt.size()), lt(kTileQueries), dt(kTileQueries);
                smyrf::cpu::GradTile g;
                g.q = q_rows.data(), g.dout = o_rows.data(), g.k = k_rows.data(), g.v = v_rows.data();
                g.dq = dq_rows.data(), g.dk = dk_rows.data(), g.dv = dv_rows.data();
                g.qi = qi.data(), g.kj = kj.data();
                g.lse = lse.data(), g.delta = delta.data(), g.met = met.data();
                g.nq = nq, g.nk = nk, g.qk_dim = dim, g.v_dim = dv;
                g.scale = (float)d.scale;
                g.causal = d.causal, g.causal_offset = offset;
                g.before_dq = nullptr, g.ctx = nullptr;
                g.qt = qt.data(), g.ot = ot.data(), g.pt = pt.data(), g.dst = dst.data();
                g.lse_t = lt.data(), g.delta_t = dt.data();
                kernel(g);
                std::vector<float> got_q(nq * dim);
                for (int64_t t = 0; t < nq; t++) std::copy(dq_rows[t], dq_rows[t] + dim, got_q.begin() + t * dim);
                const std::string what = std::string(name) + ": ";
                tc_assert_close(got_q.data(), want_q.data(), got_q.size(), dim, nullptr, 5e-5, 1e-6, (what + "dq").c_str());
                tc_assert_close(gk.data(), want_k.data(), gk.size(), dim, nullptr, 5e-5, 1e-6, (what + "dk").c_str());
                tc_assert_close(gv.data(), want_v.data(), gv.size(), dv, nullptr, 5e-5, 1e-6, (what + "dv").c_str());
                // rows outside the tile, and the rows of keys nobody may see, untouched
                std::vector<float> rest(gq);
                for (int64_t t = 0; t < nq; t++)
                    std::copy(init_q.begin() + (dq_rows[t] - gq.data()), init_q.begin() + (dq_rows[t] - gq.data()) + dim,
                              rest.begin() + (dq_rows[t] - gq.data()));
                tc_assert_same_bits(rest.data(), init_q.data(), rest.size() * sizeof(float), (what + "other dq rows").c_str());
                assert_memory_equal(met.data(), want_met.data(), met.size());
                if (std::string(name) == "avx2" && !first_q.empty()) {  // after avx512
                    tc_assert_same_bits(gq.data(), first_q.data(), gq.size() * sizeof(float), "avx2 dq");
                    tc_assert_same_bits(gk.data(), first_k.data(), gk.size() * sizeof(float), "avx2 dk");
                    tc_assert_same_bits(gv.data(), first_v.data(), gv.size() * sizeof(float), "avx2 dv");
                }
                if (std::string(name) == "avx512") first_q = gq, first_k = gk, first_v = gv;
            }
        }
        tc_inputs_destroy(in);
    }
}

// combine: R rounds of random clusters merged online (init, merge per round, finish)
// equal the reference's log-sum-exp of the per-round rows; queries that met no key in
// any round get the reference's fallback. Normalising in the last round (states marked
// done) gives the same bits as combine_finish alone.
static void combine_matches_reference(void **) {
    tc_rng r = tc_rng_make(17);
    const int64_t R = 3;
    for (const tc_shape &s : kShapes) {
        tc_inputs *in = tc_inputs_create(&s, 18, 0.8);
        const Desc d = desc_of(in->s, R, 16, 0);
        std::vector<float> out(in->no_el), lse(in->nlse);
        const Args a = args_of(d, in, out.data(), lse.data());
        smyrf_ref_problem rp = tc_ref_problem(in);
        std::vector<int32_t> valid(d.k_len);
        const int64_t b = d.batch - 1, h = d.heads - 1, nq = d.q_len, dv = d.v_dim;
        const int64_t nv = smyrf_ref_valid_keys(&rp, b, valid.data());
        // every query once per round, each meeting a random 10% of the valid keys
        std::vector<std::vector<int32_t>> qi(R), kj(R);
        for (int64_t round = 0; round < R; round++) {
            qi[round] = random_subset(r, nullptr, nq, 1.0);
            kj[round] = random_subset(r, valid.data(), nv, 0.1);
        }
        smyrf::cpu::Arena sizing;
        smyrf::cpu::attention_scratch(sizing, d);
        Buffer ws = aligned_floats(sizing.used());
        smyrf::cpu::Arena arena(ws.get());
        const smyrf::cpu::AttentionScratch sc = smyrf::cpu::attention_scratch(arena, d);
        // The rounds merged online (any number of queries and keys per call); fused, the
        // last round normalises the rows it merges, as SMYRF mode runs it.
        auto combine = [&](bool fused) {
            std::fill(out.begin(), out.end(), NAN);
            std::fill(lse.begin(), lse.end(), NAN);
            std::vector<smyrf::cpu::RowState> state(nq);
            smyrf::cpu::combine_init(0, nq, state.data());
            for (int64_t round = 0; round < R; round++)
                smyrf::cpu::attend_tiled(d, a, b, h, qi[round].data(), nq, kj[round].data(),
                                         (int64_t)kj[round].size(), sc, state.data(),
                                         fused && round == R - 1);
            smyrf::cpu::combine_finish(d, a, b, h, 0, nq, valid.data(), nv, state.data());
        };
        combine(true);
        const std::vector<float> fused_out = out, fused_lse = lse;
        combine(false);
        // the fused normalisation is combine_finish's own division: the same bits
        assert_memory_equal(fused_out.data(), out.data(), out.size() * sizeof(float));
        assert_memory_equal(fused_lse.data(), lse.data(), lse.size() * sizeof(float));

        std::vector<double> ro(R * nq * dv), rl(R * nq);  // [r][i]
        for (int64_t round = 0; round < R; round++) {
            const int64_t nk = (int64_t)kj[round].size();
            std::vector<double> co(nq * dv + 1), cl(nq);
            smyrf_ref_attention(&rp, b, h, qi[round].data(), nq, kj[round].data(), nk, co.data(), cl.data());
            for (int64_t t = 0; t < nq; t++) {
                const int32_t i = qi[round][t];
                std::copy(co.begin() + t * dv, co.begin() + (t + 1) * dv, ro.begin() + (round * nq + i) * dv);
                rl[round * nq + i] = cl[t];
            }
        }
        std::vector<double> oi(R * dv), li(R), want(dv);
        for (int64_t i = 0; i < nq; i++) {
            for (int64_t round = 0; round < R; round++) {
                std::copy(ro.begin() + (round * nq + i) * dv, ro.begin() + (round * nq + i + 1) * dv, oi.begin() + round * dv);
                li[round] = rl[round * nq + i];
            }
            double want_lse;
            if (!smyrf_ref_combine(R, dv, oi.data(), li.data(), want.data(), &want_lse))
                smyrf_ref_fallback(&rp, b, h, i, want.data(), &want_lse);
            const size_t at = (size_t)((b * d.heads + h) * nq + i);
            tc_assert_close(out.data() + at * dv, want.data(), dv, dv, nullptr, 1e-5, 1e-6, "combined row");
            tc_assert_lse_close(lse.data() + at, &want_lse, 1, nullptr, 1e-5, "combined lse");
        }
        tc_inputs_destroy(in);
    }
}

// The oracle's combine at logits where mx + log(total) loses log(total) in double: two
// equal rounds must average their rows, out a convex combination (weights exp(lse - all)
// gave 2x the row there).
static void reference_combine_survives_large_lse(void **state) {
    (void)state;
    for (double big : {1e3, 1e16, 1e30, -1e30}) {
        const double o[2] = {0.75, 0.25}, lse[2] = {big, big};
        double out, lse_out;
        assert_int_equal(smyrf_ref_combine(2, 1, o, lse, &out, &lse_out), 1);
        assert_true(std::fabs(out - 0.5) < 1e-12);
        const double o3[3] = {0.75, 0.75, 0.75}, l3[3] = {big, big - 1.0, big - 2.0};
        assert_int_equal(smyrf_ref_combine(3, 1, o3, l3, &out, &lse_out), 1);
        assert_true(std::fabs(out - 0.75) < 1e-12);
    }
}

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_combine_survives_large_lse),
        cmocka_unit_test(conversions_match_reference),
        cmocka_unit_test(transform_matches_reference),
        cmocka_unit_test(projection_is_dot_of),
        cmocka_unit_test(directions_are_keyed_and_normal),
        cmocka_unit_test(hash_matches_reference),
        cmocka_unit_test(hash_error_bound_is_tight),
        cmocka_unit_test(sort_matches_reference),
        cmocka_unit_test(sort_is_nan_safe),
        cmocka_unit_test(cluster_cut_is_balanced),
        cmocka_unit_test(loading_ahead_walks_every_row_once),
        cmocka_unit_test(share_claims_hand_out_every_item_once),
        cmocka_unit_test(centre_distances_are_ordered_chains),
        cmocka_unit_test(attention_matches_reference),
        cmocka_unit_test(attention_backward_matches_reference),
        cmocka_unit_test(combine_matches_reference),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
