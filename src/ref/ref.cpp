// The float64 reference pipeline. Written to be obviously right, not fast: plain loops,
// one query at a time, std::stable_sort. See ref.h for the contract of each stage.
#include "ref/ref.h"

#include "core/directions.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kU = 0x1.0p-24;  // float32 unit roundoff

double scale_of(const smyrf_ref_problem *p) {
    return p->scale > 0 ? p->scale : 1.0 / std::sqrt((double)p->qk_dim);
}

int64_t kv_head(const smyrf_ref_problem *p, int64_t h) { return h / (p->heads / p->kv_heads); }

const double *q_row(const smyrf_ref_problem *p, int64_t b, int64_t h, int64_t i) {
    return p->q + ((b * p->heads + h) * p->q_len + i) * p->qk_dim;
}
const double *k_row(const smyrf_ref_problem *p, int64_t b, int64_t hk, int64_t j) {
    return p->k + ((b * p->kv_heads + hk) * p->k_len + j) * p->qk_dim;
}
const double *v_row(const smyrf_ref_problem *p, int64_t b, int64_t hk, int64_t j) {
    return p->v + ((b * p->kv_heads + hk) * p->k_len + j) * p->v_dim;
}

bool key_valid(const smyrf_ref_problem *p, int64_t b, int64_t j) {
    return !p->key_mask || p->key_mask[b * p->k_len + j] != 0;
}

// Key j is allowed for query i: valid, and not in the future (causal, bottom-right).
bool allowed(const smyrf_ref_problem *p, int64_t b, int64_t i, int64_t j) {
    return key_valid(p, b, j) && (!p->causal || j <= i + (p->k_len - p->q_len));
}

double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

double norm2(const double *a, int64_t n) { return dot(a, a, n); }

// Float32 error of a sum of n terms in any order (Higham's gamma_n, a rigorous bound).
double gamma32(int64_t n) { return (double)n * kU / (1.0 - (double)n * kU); }

}  // namespace

extern "C" {

int64_t smyrf_ref_valid_keys(const smyrf_ref_problem *p, int64_t b, int32_t *idx) {
    int64_t n = 0;
    for (int64_t j = 0; j < p->k_len; j++)
        if (key_valid(p, b, j)) idx[n++] = (int32_t)j;
    return n;
}

void smyrf_ref_attention(const smyrf_ref_problem *p, int64_t b, int64_t h, const int32_t *qi,
                         int64_t nq, const int32_t *kj, int64_t nk, double *o, double *lse) {
    const int64_t hk = kv_head(p, h), dv = p->v_dim;
    const double scale = scale_of(p);
    std::vector<double> s((size_t)nk);
    for (int64_t t = 0; t < nq; t++) {
        const int64_t i = qi[t];
        double *row = o + t * dv;
        double mx = kNegInf;
        for (int64_t u = 0; u < nk; u++) {
            s[u] = allowed(p, b, i, kj[u]) ? scale * dot(q_row(p, b, h, i), k_row(p, b, hk, kj[u]), p->qk_dim)
                                           : kNegInf;
            mx = std::max(mx, s[u]);
        }
        std::fill(row, row + dv, 0.0);
        if (mx == kNegInf) {
            lse[t] = kNegInf;
            continue;
        }
        double total = 0;
        for (int64_t u = 0; u < nk; u++) {
            if (s[u] == kNegInf) continue;
            const double w = std::exp(s[u] - mx);
            total += w;
            const double *vr = v_row(p, b, hk, kj[u]);
            for (int64_t c = 0; c < dv; c++) row[c] += w * vr[c];
        }
        for (int64_t c = 0; c < dv; c++) row[c] /= total;
        lse[t] = mx + std::log(total);
    }
}

void smyrf_ref_dense(const smyrf_ref_problem *p, double *out, double *lse) {
    std::vector<int32_t> keys((size_t)p->k_len);
    double row_lse;
    for (int64_t b = 0; b < p->batch; b++) {
        const int64_t nv = smyrf_ref_valid_keys(p, b, keys.data());
        for (int64_t h = 0; h < p->heads; h++)
            for (int64_t i = 0; i < p->q_len; i++) {
                const int32_t qi = (int32_t)i;
                const int64_t at = (b * p->heads + h) * p->q_len + i;
                smyrf_ref_attention(p, b, h, &qi, 1, keys.data(), nv, out + at * p->v_dim, &row_lse);
                if (lse) lse[at] = row_lse;
            }
    }
}

double smyrf_ref_transform(const smyrf_ref_problem *p, int64_t b, int64_t h, double *q_norm2,
                           double *k_norm2) {
    const int64_t hk = kv_head(p, h);
    double mq = 0, mk = 0;
    for (int64_t i = 0; i < p->q_len; i++) {
        const double n = norm2(q_row(p, b, h, i), p->qk_dim);
        if (q_norm2) q_norm2[i] = n;
        mq = std::max(mq, n);
    }
    for (int64_t j = 0; j < p->k_len; j++) {
        const double n = norm2(k_row(p, b, hk, j), p->qk_dim);
        if (k_norm2) k_norm2[j] = n;
        if (key_valid(p, b, j)) mk = std::max(mk, n);
    }
    return mq + mk;
}

void smyrf_ref_direction(uint64_t seed, int64_t head, int64_t round, int64_t dim2, double *a) {
    for (int64_t c = 0; c < dim2; c++)
        a[c] = (double)(float)smyrf::direction_component(seed, (uint64_t)head, (uint64_t)round,
                                                         (uint64_t)c);
}

void smyrf_ref_hash(const smyrf_ref_problem *p, int64_t b, int64_t h, int is_query, double m2,
                    const double *a, double *hash, double *err) {
    const int64_t d = p->qk_dim, hk = kv_head(p, h);
    const int64_t n = is_query ? p->q_len : p->k_len;
    const double a_ext = a[is_query ? d + 1 : d];
    // float32 error of M2 - |x|^2: both norms are float sums of d squares, M2 one more add.
    const double gap_err = 2.0 * gamma32(d + 2) * m2;
    for (int64_t i = 0; i < n; i++) {
        const double *x = is_query ? q_row(p, b, h, i) : k_row(p, b, hk, i);
        const double gap = m2 - norm2(x, d);
        const double ext = std::sqrt(std::max(gap, 0.0));
        const double proj = dot(a, x, d);
        hash[i] = proj + a_ext * ext;
        if (!err) continue;
        double abs_terms = 0;
        for (int64_t c = 0; c < d; c++) abs_terms += std::fabs(a[c] * x[c]);
        // The square root moves by at most this when its argument moves by gap_err.
        const double ext_hi = std::sqrt(std::max(gap + gap_err, 0.0));
        const double ext_lo = std::sqrt(std::max(gap - gap_err, 0.0));
        const double ext_err = (ext_hi - ext_lo) + kU * ext_hi;
        err[i] = gamma32(d + 2) * (abs_terms + std::fabs(a_ext) * ext_hi) +
                 std::fabs(a_ext) * ext_err + 2.0 * kU * std::fabs(hash[i]);
    }
}

void smyrf_ref_sort(const double *hash, const int32_t *items, int64_t count, int32_t *sorted) {
    for (int64_t i = 0; i < count; i++) sorted[i] = items ? items[i] : (int32_t)i;
    std::stable_sort(sorted, sorted + count,
                     [&](int32_t x, int32_t y) { return hash[x] < hash[y]; });
}

int64_t smyrf_ref_cluster_begin(int64_t n, int64_t clusters, int64_t c) {
    return c * n / clusters;
}

int smyrf_ref_cut_ambiguous(const double *hash, const double *err, const int32_t *sorted,
                            int64_t count, int64_t at) {
    if (at <= 0 || at >= count) return 0;
    double left_hi = kNegInf, right_lo = -kNegInf;
    for (int64_t s = 0; s < at; s++) left_hi = std::max(left_hi, hash[sorted[s]] + err[sorted[s]]);
    for (int64_t s = at; s < count; s++)
        right_lo = std::min(right_lo, hash[sorted[s]] - err[sorted[s]]);
    return left_hi >= right_lo;
}

int smyrf_ref_combine(int64_t rounds, int64_t dv, const double *o, const double *lse,
                      double *out, double *lse_out) {
    double mx = kNegInf;
    for (int64_t r = 0; r < rounds; r++) mx = std::max(mx, lse[r]);
    std::fill(out, out + dv, 0.0);
    if (mx == kNegInf) {
        *lse_out = kNegInf;
        return 0;
    }
    double total = 0;
    for (int64_t r = 0; r < rounds; r++) total += std::exp(lse[r] - mx);
    const double all = mx + std::log(total);
    // Weights relative to mx, divided by their total: exp(lse[r] - all) would lose
    // log(total) in mx + log(total) once |mx| passes about 1e16.
    for (int64_t r = 0; r < rounds; r++) {
        const double w = std::exp(lse[r] - mx) / total;
        for (int64_t c = 0; c < dv; c++) out[c] += w * o[r * dv + c];
    }
    *lse_out = all;
    return 1;
}

void smyrf_ref_fallback(const smyrf_ref_problem *p, int64_t b, int64_t h, int64_t i,
                        double *out, double *lse) {
    const int64_t hk = kv_head(p, h);
    std::fill(out, out + p->v_dim, 0.0);
    *lse = kNegInf;
    for (int64_t j = p->k_len - 1; j >= 0; j--) {
        if (!allowed(p, b, i, j)) continue;
        const double *vr = v_row(p, b, hk, j);
        std::copy(vr, vr + p->v_dim, out);
        *lse = scale_of(p) * dot(q_row(p, b, h, i), k_row(p, b, hk, j), p->qk_dim);
        return;
    }
}

void smyrf_ref_smyrf(const smyrf_ref_problem *p, int64_t n_hashes, int64_t q_cluster_size,
                     uint64_t seed, double *out, double *lse, uint8_t *ambiguous) {
    const int64_t nq = p->q_len, nk = p->k_len, d = p->qk_dim, dv = p->v_dim, R = n_hashes;
    const int64_t C = (nq + q_cluster_size - 1) / q_cluster_size;
    std::vector<int32_t> valid((size_t)nk), qs((size_t)nq), ks((size_t)nk);
    std::vector<double> dir((size_t)(d + 2)), qh((size_t)nq), kh((size_t)nk), qe((size_t)nq),
        ke((size_t)nk);
    std::vector<double> o_r((size_t)(R * nq * dv)), lse_r((size_t)(R * nq));  // [r][i]
    std::vector<double> o_c, lse_c, o_i((size_t)(R * dv)), lse_i((size_t)R);
    std::vector<uint8_t> unsure((size_t)nq);

    for (int64_t b = 0; b < p->batch; b++) {
        const int64_t nv = smyrf_ref_valid_keys(p, b, valid.data());
        for (int64_t h = 0; h < p->heads; h++) {
            const double m2 = smyrf_ref_transform(p, b, h, nullptr, nullptr);
            std::fill(unsure.begin(), unsure.end(), 0);
            for (int64_t r = 0; r < R; r++) {
                smyrf_ref_direction(seed, h, r, d + 2, dir.data());
                smyrf_ref_hash(p, b, h, 1, m2, dir.data(), qh.data(), qe.data());
                smyrf_ref_hash(p, b, h, 0, m2, dir.data(), kh.data(), ke.data());
                smyrf_ref_sort(qh.data(), nullptr, nq, qs.data());
                smyrf_ref_sort(kh.data(), valid.data(), nv, ks.data());
                for (int64_t c = 0; c < C; c++) {
                    const int64_t q0 = smyrf_ref_cluster_begin(nq, C, c);
                    const int64_t q1 = smyrf_ref_cluster_begin(nq, C, c + 1);
                    const int64_t k0 = smyrf_ref_cluster_begin(nv, C, c);
                    const int64_t k1 = smyrf_ref_cluster_begin(nv, C, c + 1);
                    o_c.resize((size_t)((q1 - q0) * dv));
                    lse_c.resize((size_t)(q1 - q0));
                    smyrf_ref_attention(p, b, h, qs.data() + q0, q1 - q0, ks.data() + k0, k1 - k0,
                                        o_c.data(), lse_c.data());
                    // A cut either side that float32 could move makes the whole cluster unsure.
                    const bool cut_unsure =
                        smyrf_ref_cut_ambiguous(qh.data(), qe.data(), qs.data(), nq, q0) ||
                        smyrf_ref_cut_ambiguous(qh.data(), qe.data(), qs.data(), nq, q1) ||
                        smyrf_ref_cut_ambiguous(kh.data(), ke.data(), ks.data(), nv, k0) ||
                        smyrf_ref_cut_ambiguous(kh.data(), ke.data(), ks.data(), nv, k1);
                    for (int64_t t = q0; t < q1; t++) {
                        const int64_t i = qs[t];
                        std::copy(o_c.begin() + (t - q0) * dv, o_c.begin() + (t - q0 + 1) * dv,
                                  o_r.begin() + (r * nq + i) * dv);
                        lse_r[r * nq + i] = lse_c[t - q0];
                        if (cut_unsure) unsure[i] = 1;
                    }
                }
            }
            for (int64_t i = 0; i < nq; i++) {
                const int64_t at = (b * p->heads + h) * nq + i;
                for (int64_t r = 0; r < R; r++) {
                    std::copy(o_r.begin() + (r * nq + i) * dv, o_r.begin() + (r * nq + i + 1) * dv,
                              o_i.begin() + r * dv);
                    lse_i[r] = lse_r[r * nq + i];
                }
                double row_lse;
                if (!smyrf_ref_combine(R, dv, o_i.data(), lse_i.data(), out + at * dv, &row_lse))
                    smyrf_ref_fallback(p, b, h, i, out + at * dv, &row_lse);
                if (lse) lse[at] = row_lse;
                if (ambiguous) ambiguous[at] = unsure[i];
            }
        }
    }
}

}  // extern "C"

// ---------------------------------------------------------------- gradients

extern "C" {

void smyrf_ref_multiset_grad(const smyrf_ref_problem *p, int64_t b, int64_t h, int64_t i,
                             const int32_t *keys, int64_t count, const double *dout_row,
                             double *dq_row, double *dk, double *dv) {
    if (count == 0) return;
    const int64_t hk = kv_head(p, h), d = p->qk_dim, dvd = p->v_dim;
    const double scale = scale_of(p);
    const double *q = q_row(p, b, h, i);
    std::vector<double> s((size_t)count), out((size_t)dvd, 0.0);
    double mx = kNegInf;
    for (int64_t u = 0; u < count; u++) {
        s[u] = scale * dot(q, k_row(p, b, hk, keys[u]), d);
        mx = std::max(mx, s[u]);
    }
    double total = 0;
    for (int64_t u = 0; u < count; u++) total += std::exp(s[u] - mx);
    // Relative to mx, divided by the total (as smyrf_ref_combine, for large logits).
    std::vector<double> P((size_t)count);
    for (int64_t u = 0; u < count; u++) P[u] = std::exp(s[u] - mx) / total;
    for (int64_t u = 0; u < count; u++) {
        const double *vr = v_row(p, b, hk, keys[u]);
        for (int64_t c = 0; c < dvd; c++) out[c] += P[u] * vr[c];
    }
    const double D = dot(dout_row, out.data(), dvd);
    for (int64_t u = 0; u < count; u++) {
        const int64_t j = keys[u];
        const double dS = P[u] * (dot(dout_row, v_row(p, b, hk, j), dvd) - D);
        double *dvr = dv + ((b * p->kv_heads + hk) * p->k_len + j) * dvd;
        double *dkr = dk + ((b * p->kv_heads + hk) * p->k_len + j) * d;
        const double *kr = k_row(p, b, hk, j);
        for (int64_t c = 0; c < dvd; c++) dvr[c] += P[u] * dout_row[c];
        for (int64_t c = 0; c < d; c++) {
            dkr[c] += scale * dS * q[c];
            dq_row[c] += scale * dS * kr[c];
        }
    }
}

static void ref_grad_zero(const smyrf_ref_problem *p, double *dq, double *dk, double *dv) {
    std::fill(dq, dq + p->batch * p->heads * p->q_len * p->qk_dim, 0.0);
    std::fill(dk, dk + p->batch * p->kv_heads * p->k_len * p->qk_dim, 0.0);
    std::fill(dv, dv + p->batch * p->kv_heads * p->k_len * p->v_dim, 0.0);
}

void smyrf_ref_dense_grad(const smyrf_ref_problem *p, const double *dout, double *dq,
                          double *dk, double *dv) {
    ref_grad_zero(p, dq, dk, dv);
    std::vector<int32_t> keys;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads; h++)
            for (int64_t i = 0; i < p->q_len; i++) {
                keys.clear();
                for (int64_t j = 0; j < p->k_len; j++)
                    if (allowed(p, b, i, j)) keys.push_back((int32_t)j);
                const int64_t at = (b * p->heads + h) * p->q_len + i;
                smyrf_ref_multiset_grad(p, b, h, i, keys.data(), (int64_t)keys.size(),
                                        dout + at * p->v_dim, dq + at * p->qk_dim, dk, dv);
            }
}

void smyrf_ref_smyrf_grad(const smyrf_ref_problem *p, int64_t n_hashes, int64_t q_cluster_size,
                          uint64_t seed, const double *dout, double *dq, double *dk, double *dv,
                          uint8_t *q_unsure, uint8_t *k_unsure, uint8_t *fallback) {
    const int64_t nq = p->q_len, nk = p->k_len, d = p->qk_dim, R = n_hashes;
    const int64_t C = (nq + q_cluster_size - 1) / q_cluster_size;
    ref_grad_zero(p, dq, dk, dv);
    if (k_unsure) std::fill(k_unsure, k_unsure + p->batch * p->kv_heads * nk, 0);
    std::vector<int32_t> valid((size_t)nk), qs((size_t)(R * nq)), ks((size_t)(R * nk));
    std::vector<double> dir((size_t)(d + 2)), qh((size_t)nq), kh((size_t)nk), qe((size_t)nq),
        ke((size_t)nk);
    std::vector<uint8_t> cl_unsure((size_t)(R * C)), unsure((size_t)nq);
    std::vector<int64_t> cl_of((size_t)(R * nq));  // [r][i]: the cluster of query i
    std::vector<int32_t> keys;

    for (int64_t b = 0; b < p->batch; b++) {
        const int64_t nv = smyrf_ref_valid_keys(p, b, valid.data());
        for (int64_t h = 0; h < p->heads; h++) {
            const int64_t hk = kv_head(p, h);
            const double m2 = smyrf_ref_transform(p, b, h, nullptr, nullptr);
            std::fill(unsure.begin(), unsure.end(), 0);
            for (int64_t r = 0; r < R; r++) {
                int32_t *qsr = qs.data() + r * nq, *ksr = ks.data() + r * nk;
                smyrf_ref_direction(seed, h, r, d + 2, dir.data());
                smyrf_ref_hash(p, b, h, 1, m2, dir.data(), qh.data(), qe.data());
                smyrf_ref_hash(p, b, h, 0, m2, dir.data(), kh.data(), ke.data());
                smyrf_ref_sort(qh.data(), nullptr, nq, qsr);
                smyrf_ref_sort(kh.data(), valid.data(), nv, ksr);
                for (int64_t c = 0; c < C; c++) {
                    const int64_t q0 = smyrf_ref_cluster_begin(nq, C, c);
                    const int64_t q1 = smyrf_ref_cluster_begin(nq, C, c + 1);
                    const int64_t k0 = smyrf_ref_cluster_begin(nv, C, c);
                    const int64_t k1 = smyrf_ref_cluster_begin(nv, C, c + 1);
                    const bool cut_unsure =
                        smyrf_ref_cut_ambiguous(qh.data(), qe.data(), qsr, nq, q0) ||
                        smyrf_ref_cut_ambiguous(qh.data(), qe.data(), qsr, nq, q1) ||
                        smyrf_ref_cut_ambiguous(kh.data(), ke.data(), ksr, nv, k0) ||
                        smyrf_ref_cut_ambiguous(kh.data(), ke.data(), ksr, nv, k1);
                    cl_unsure[r * C + c] = cut_unsure;
                    for (int64_t t = q0; t < q1; t++) {
                        cl_of[r * nq + qsr[t]] = c;
                        if (cut_unsure) unsure[qsr[t]] = 1;
                    }
                }
            }
            // The multiset of each query, and its gradients.
            for (int64_t i = 0; i < nq; i++) {
                keys.clear();
                for (int64_t r = 0; r < R; r++) {
                    const int64_t c = cl_of[r * nq + i];
                    const int64_t k0 = smyrf_ref_cluster_begin(nv, C, c);
                    const int64_t k1 = smyrf_ref_cluster_begin(nv, C, c + 1);
                    for (int64_t t = k0; t < k1; t++)
                        if (allowed(p, b, i, ks[r * nk + t])) keys.push_back(ks[r * nk + t]);
                }
                const int64_t at = (b * p->heads + h) * nq + i;
                const bool fell_back = keys.empty();
                if (fell_back) {
                    for (int64_t j = nk - 1; j >= 0; j--)
                        if (allowed(p, b, i, j)) {
                            keys.push_back((int32_t)j);
                            break;
                        }
                    if (k_unsure && unsure[i] && !keys.empty())
                        k_unsure[(b * p->kv_heads + hk) * nk + keys[0]] = 1;
                }
                if (fallback) fallback[at] = fell_back;
                if (q_unsure) q_unsure[at] = unsure[i];
                smyrf_ref_multiset_grad(p, b, h, i, keys.data(), (int64_t)keys.size(),
                                        dout + at * p->v_dim, dq + at * d, dk, dv);
            }
            if (!k_unsure) continue;
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) {
                    bool bad = cl_unsure[r * C + c];
                    const int64_t q0 = smyrf_ref_cluster_begin(nq, C, c);
                    const int64_t q1 = smyrf_ref_cluster_begin(nq, C, c + 1);
                    for (int64_t t = q0; t < q1 && !bad; t++) bad = unsure[qs[r * nq + t]];
                    if (!bad) continue;
                    const int64_t k0 = smyrf_ref_cluster_begin(nv, C, c);
                    const int64_t k1 = smyrf_ref_cluster_begin(nv, C, c + 1);
                    for (int64_t t = k0; t < k1; t++)
                        k_unsure[(b * p->kv_heads + hk) * nk + ks[r * nk + t]] = 1;
                }
        }
    }
}

}  // extern "C"
