// HYBRID gradients in float64, one query at a time, from the definition rather than from
// the library's one-pass form. Each term of query i's softmax is a set M of keys: an exact
// key is M = {j}; a summary is the group's members that are not exact for i. The term's
// logit is scale q_i . mean_{j in M} k_j + log |M| (the mean logit plus the log of the
// count) and its value mean_{j in M} v_j. With P_a = exp(logit_a - lse_i),
// D_i = dout_i . out_i and dl_a = P_a (dout_i . value_a - D_i):
//   dq_i += scale dl_a mean_M k,   dk_j += scale dl_a q_i / |M|,   dv_j += P_a dout_i / |M|.
// Nothing here shares the exact-complement subtraction of the library or of the forward
// reference: the sets are enumerated key by key.
#include "ref/hybrid_backward.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

namespace {

const double kInf = std::numeric_limits<double>::infinity();

double dot(const double *x, const double *y, int64_t n) {
    double s = 0;
    for (int64_t c = 0; c < n; c++) s += x[c] * y[c];
    return s;
}

// The exact keys E_i (ALGORITHM.md steps 1-2) and the window, as positions.
std::vector<int32_t> exact_keys(const smyrf_ref_problem &p, const smyrf_ref_hybrid_params &hp,
                                const std::vector<int32_t> &valid, bool dense, int64_t i,
                                int64_t limit, std::vector<int32_t> *window) {
    std::vector<int32_t> allowed;
    for (int32_t j : valid)
        if (j <= limit) allowed.push_back(j);
    if (dense) return *window = allowed;
    const size_t w = (size_t)hp.window;
    if (p.causal) {
        *window = std::vector<int32_t>(allowed.end() - (long)std::min(w, allowed.size()), allowed.end());
    } else {
        const int64_t c = (2 * i + 1) * p.k_len / (2 * p.q_len);
        std::vector<int32_t> near = valid;
        std::stable_sort(near.begin(), near.end(), [c](int32_t x, int32_t y) {
            return std::llabs(x - c) < std::llabs(y - c);
        });
        near.resize(std::min(w, near.size()));
        std::sort(near.begin(), near.end());
        *window = near;
    }
    std::vector<int32_t> e = *window;
    if (!allowed.empty() && hp.sinks >= 1) e.push_back(valid.front());
    if (!allowed.empty() && hp.sinks == 2 && valid.back() <= limit) e.push_back(valid.back());
    std::sort(e.begin(), e.end());
    e.erase(std::unique(e.begin(), e.end()), e.end());
    return e;
}

}  // namespace

extern "C" void smyrf_ref_hybrid_backward(const smyrf_ref_problem *pp,
                                          const smyrf_ref_hybrid_params *hpp,
                                          const double *dout, double *dq, double *dk,
                                          double *dv) {
    const smyrf_ref_problem &p = *pp;
    const int64_t expand = hpp->expand;
    const int64_t d = p.qk_dim, dvd = p.v_dim, group = p.heads / p.kv_heads;
    const double scale = p.scale > 0 ? p.scale : 1.0 / std::sqrt((double)d);
    std::fill(dq, dq + p.batch * p.heads * p.q_len * d, 0.0);
    std::fill(dk, dk + p.batch * p.kv_heads * p.k_len * d, 0.0);
    std::fill(dv, dv + p.batch * p.kv_heads * p.k_len * dvd, 0.0);
    const int64_t most = std::max<int64_t>(1, hpp->summaries);
    std::vector<int32_t> labels((size_t)p.k_len), counts((size_t)most);
    std::vector<double> ks((size_t)(most * d)), vs((size_t)(most * dvd));

    for (int64_t b = 0; b < p.batch; b++) {
        std::vector<int32_t> valid((size_t)p.k_len);
        valid.resize((size_t)smyrf_ref_valid_keys(&p, b, valid.data()));
        const int64_t n = (int64_t)valid.size();
        const bool dense = hpp->budget >= n || hpp->window >= n;
        // Expansion (docs/algorithm.md) only where a group can fit; else E widens the window.
        const bool expands = expand > 0 && !dense && !p.causal &&
                             n <= std::min(hpp->summaries, n) * expand;
        smyrf_ref_hybrid_params hp = *hpp;
        if (!expands) hp.window += expand;
        for (int64_t h = 0; h < p.heads; h++) {
            const int64_t hk = h / group;
            int64_t G = 0;
            if (!p.causal) G = smyrf_ref_hybrid_groups(&p, &hp, b, hk, labels.data(), counts.data(), ks.data(), vs.data());
            const double *K = p.k + (b * p.kv_heads + hk) * p.k_len * d;
            const double *V = p.v + (b * p.kv_heads + hk) * p.k_len * dvd;
            double *dK = dk + (b * p.kv_heads + hk) * p.k_len * d;
            double *dV = dv + (b * p.kv_heads + hk) * p.k_len * dvd;
            for (int64_t i = 0; i < p.q_len; i++) {
                const int64_t row = (b * p.heads + h) * p.q_len + i;
                const double *q = p.q + row * d, *go = dout + row * dvd;
                double *gq = dq + row * d;
                const int64_t limit = p.causal ? i + p.k_len - p.q_len : p.k_len - 1;
                std::vector<int32_t> window;
                const std::vector<int32_t> E = exact_keys(p, hp, valid, dense, i, limit, &window);
                if (E.empty()) continue;  // no allowed key: zero gradient
                // The terms: each exact key alone, then each group's non-exact members.
                std::vector<std::vector<int32_t>> terms;
                for (int32_t j : E) terms.push_back({j});
                if (!dense) {
                    auto is_exact = [&](int32_t j) { return std::binary_search(E.begin(), E.end(), j); };
                    if (p.causal) {
                        const int64_t bs = (p.k_len + hp.summaries - 1) / hp.summaries;
                        const int64_t blocks = (p.k_len + bs - 1) / bs;
                        for (int64_t g = 0; g < blocks; g++) {
                            std::vector<int32_t> m;
                            for (int32_t j : valid)
                                if (j / bs == g && j < window.front() && !is_exact(j)) m.push_back(j);
                            if (!m.empty()) terms.push_back(m);
                        }
                    } else {
                        // Each group's summary, or with expansion its members one by one:
                        // the groups by decreasing summary logit (ties: lower g), chosen
                        // while their whole size fits what is left of E.
                        std::vector<std::pair<double, int64_t>> order;
                        std::vector<std::vector<int32_t>> rest((size_t)G);
                        for (int64_t g = 0; g < G; g++) {
                            for (int32_t j : valid)
                                if (labels[(size_t)j] == g && !is_exact(j)) rest[(size_t)g].push_back(j);
                            if (rest[(size_t)g].empty()) continue;
                            double t = 0;
                            for (int32_t j : rest[(size_t)g]) t += scale * dot(q, K + j * d, d);
                            const double m = (double)rest[(size_t)g].size();
                            if (!std::isnan(t)) order.push_back({t / m + std::log(m), g});
                        }
                        std::stable_sort(order.begin(), order.end(),
                                         [](const auto &x, const auto &y) { return x.first > y.first; });
                        std::vector<bool> chosen((size_t)G, false);
                        for (int64_t g = 0, used = 0; expands && g < (int64_t)order.size(); g++) {
                            const int64_t c = counts[(size_t)order[(size_t)g].second];
                            if (c <= expand - used) chosen[(size_t)order[(size_t)g].second] = true, used += c;
                        }
                        for (int64_t g = 0; g < G; g++) {
                            if (!chosen[(size_t)g]) {
                                if (!rest[(size_t)g].empty()) terms.push_back(rest[(size_t)g]);
                                continue;
                            }
                            for (int32_t j : rest[(size_t)g]) terms.push_back({j});
                        }
                    }
                }
                // Forward: logits, values, lse, out.
                const size_t T = terms.size();
                std::vector<double> logit(T), val(T * (size_t)dvd, 0.0), out((size_t)dvd, 0.0);
                double mx = -kInf;
                for (size_t a = 0; a < T; a++) {
                    const double inv = 1.0 / (double)terms[a].size();
                    double s = 0;
                    for (int32_t j : terms[a]) {
                        s += scale * dot(q, K + j * d, d) * inv;
                        for (int64_t c = 0; c < dvd; c++) val[a * dvd + c] += V[j * dvd + c] * inv;
                    }
                    logit[a] = s + std::log((double)terms[a].size());
                    mx = std::max(mx, logit[a]);
                }
                double z = 0;
                for (size_t a = 0; a < T; a++) z += std::exp(logit[a] - mx);
                // Relative to mx, divided by z (not exp(logit - lse): see ref.cpp's combine).
                std::vector<double> P(T);
                for (size_t a = 0; a < T; a++) {
                    P[a] = std::exp(logit[a] - mx) / z;
                    for (int64_t c = 0; c < dvd; c++) out[(size_t)c] += P[a] * val[a * dvd + c];
                }
                const double D = dot(go, out.data(), dvd);
                // Backward.
                for (size_t a = 0; a < T; a++) {
                    const double inv = 1.0 / (double)terms[a].size();
                    const double dl = P[a] * (dot(go, &val[a * dvd], dvd) - D);
                    for (int32_t j : terms[a]) {
                        for (int64_t c = 0; c < d; c++) {
                            gq[c] += scale * dl * inv * K[j * d + c];
                            dK[j * d + c] += scale * dl * inv * q[c];
                        }
                        for (int64_t c = 0; c < dvd; c++) dV[j * dvd + c] += P[a] * inv * go[c];
                    }
                }
            }
        }
    }
}
