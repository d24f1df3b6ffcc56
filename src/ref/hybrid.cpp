// HYBRID in float64, one query at a time, each step as ALGORITHM.md words it: slow and
// obvious on purpose (the window by sorting keys by distance, causal groups by scanning
// their blocks), so that it shares no shortcut with the library.
#include "ref/hybrid.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

using Vec = std::vector<double>;
const double kInf = std::numeric_limits<double>::infinity();

uint64_t mix64(uint64_t z) {  // the splitmix64 finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct Problem {
    const smyrf_ref_problem &p;
    const smyrf_ref_hybrid_params &hp;
    double scale() const { return p.scale > 0 ? p.scale : 1.0 / std::sqrt((double)p.qk_dim); }
    const double *q(int64_t b, int64_t h, int64_t i) const {
        return p.q + ((b * p.heads + h) * p.q_len + i) * p.qk_dim;
    }
    const double *k(int64_t b, int64_t hk, int64_t j) const {
        return p.k + ((b * p.kv_heads + hk) * p.k_len + j) * p.qk_dim;
    }
    const double *v(int64_t b, int64_t hk, int64_t j) const {
        return p.v + ((b * p.kv_heads + hk) * p.k_len + j) * p.v_dim;
    }
    std::vector<int32_t> valid(int64_t b) const {
        std::vector<int32_t> idx((size_t)p.k_len);
        idx.resize((size_t)smyrf_ref_valid_keys(&p, b, idx.data()));
        return idx;
    }
    bool dense(int64_t n_valid) const { return hp.budget >= n_valid || hp.window >= n_valid; }
};

double dot(const double *x, const double *y, int64_t n) {
    double s = 0;
    for (int64_t c = 0; c < n; c++) s += x[c] * y[c];
    return s;
}

// Step 3, non-causal. labels by position (-1 padded).
struct Groups {
    int64_t G = 0;
    std::vector<int32_t> label, count;
    Vec ksum, vsum;
};

Groups kmeans(const Problem &P, int64_t b, int64_t hk) {
    const smyrf_ref_problem &p = P.p;
    const int64_t d = p.qk_dim, dv = p.v_dim;
    const std::vector<int32_t> valid = P.valid(b);
    const int64_t n = (int64_t)valid.size();
    Groups gr;
    gr.label.assign((size_t)p.k_len, -1);
    if (P.dense(n)) return gr;
    const int64_t G = std::min<int64_t>(P.hp.summaries, n);
    gr.G = G;

    // Initial centres: the G valid keys with the smallest h_j, in position order.
    const uint64_t base = mix64(mix64(P.hp.seed) ^ (uint64_t)hk);
    std::vector<std::pair<uint64_t, int32_t>> draw;
    for (int32_t j : valid) draw.push_back({mix64(base ^ (uint64_t)j), j});
    std::sort(draw.begin(), draw.end());
    std::vector<int32_t> init;
    for (int64_t g = 0; g < G; g++) init.push_back(draw[(size_t)g].second);
    std::sort(init.begin(), init.end());
    Vec centre((size_t)(G * d));
    for (int64_t g = 0; g < G; g++)
        std::copy(P.k(b, hk, init[(size_t)g]), P.k(b, hk, init[(size_t)g]) + d, &centre[(size_t)(g * d)]);

    for (int64_t it = 0; it < P.hp.kmeans_iters; it++) {
        for (int32_t j : valid) {  // assign: argmin |c|^2 - 2 k.c, first minimum
            double best = kInf;
            for (int64_t g = 0; g < G; g++) {
                const double *c = &centre[(size_t)(g * d)];
                const double dist = dot(c, c, d) - 2 * dot(P.k(b, hk, j), c, d);
                if (dist < best) best = dist, gr.label[(size_t)j] = (int32_t)g;
            }
        }
        if (it + 1 == P.hp.kmeans_iters) break;  // labels come from the last assignment
        Vec sum((size_t)(G * d), 0.0);
        std::vector<int64_t> members((size_t)G, 0);
        for (int32_t j : valid) {
            const int64_t g = gr.label[(size_t)j];
            members[(size_t)g]++;
            for (int64_t c = 0; c < d; c++) sum[(size_t)(g * d + c)] += P.k(b, hk, j)[c];
        }
        for (int64_t g = 0; g < G; g++)  // an empty cluster keeps its centre
            if (members[(size_t)g])
                for (int64_t c = 0; c < d; c++)
                    centre[(size_t)(g * d + c)] = sum[(size_t)(g * d + c)] / members[(size_t)g];
    }

    gr.count.assign((size_t)G, 0);
    gr.ksum.assign((size_t)(G * d), 0.0);
    gr.vsum.assign((size_t)(G * dv), 0.0);
    for (int32_t j : valid) {
        const int64_t g = gr.label[(size_t)j];
        gr.count[(size_t)g]++;
        for (int64_t c = 0; c < d; c++) gr.ksum[(size_t)(g * d + c)] += P.k(b, hk, j)[c];
        for (int64_t c = 0; c < dv; c++) gr.vsum[(size_t)(g * dv + c)] += P.v(b, hk, j)[c];
    }
    return gr;
}

// One summary term: logit t, member count m, the sum of its members' values (m Vbar).
struct Summary {
    int64_t group;  // k-means group, or -1 (causal block: members are never exact)
    double t;
    int64_t m;
    Vec vsum;
};

// Steps 1-2: the exact keys E_i of query i (window, then allowed sinks), positions.
std::vector<int32_t> exact_keys(const Problem &P, const std::vector<int32_t> &valid, int64_t i,
                                int64_t limit, std::vector<int32_t> *window) {
    const smyrf_ref_problem &p = P.p;
    std::vector<int32_t> allowed;
    for (int32_t j : valid)
        if (j <= limit) allowed.push_back(j);
    if (P.dense((int64_t)valid.size())) return *window = allowed;
    const size_t w = (size_t)P.hp.window;
    if (p.causal) {
        *window = std::vector<int32_t>(allowed.end() - (long)std::min(w, allowed.size()), allowed.end());
    } else {
        const int64_t c = (2 * i + 1) * p.k_len / (2 * p.q_len);
        std::vector<int32_t> near = valid;
        std::stable_sort(near.begin(), near.end(), [c](int32_t x, int32_t y) {
            return std::llabs(x - c) < std::llabs(y - c);  // stable: ties stay lower first
        });
        near.resize(std::min(w, near.size()));
        std::sort(near.begin(), near.end());
        *window = near;
    }
    std::vector<int32_t> e = *window;
    if (!allowed.empty() && P.hp.sinks >= 1) e.push_back(valid.front());
    if (!allowed.empty() && P.hp.sinks == 2 && valid.back() <= limit) e.push_back(valid.back());
    std::sort(e.begin(), e.end());
    e.erase(std::unique(e.begin(), e.end()), e.end());
    return e;
}

// Step 3, causal: positional blocks, members before the window, minus E_i.
std::vector<Summary> causal_summaries(const Problem &P, int64_t b, int64_t h, int64_t i,
                                      const std::vector<int32_t> &valid,
                                      const std::vector<int32_t> &window,
                                      const std::vector<int32_t> &exact) {
    const smyrf_ref_problem &p = P.p;
    const int64_t hk = h / (p.heads / p.kv_heads), d = p.qk_dim, dv = p.v_dim;
    const int64_t bs = (p.k_len + P.hp.summaries - 1) / P.hp.summaries;
    const int64_t blocks = (p.k_len + bs - 1) / bs;
    std::vector<Summary> out;
    for (int64_t g = 0; g < blocks; g++) {
        Vec ks((size_t)d, 0.0), vs((size_t)dv, 0.0);
        int64_t m = 0;
        for (int32_t j : valid) {
            if (j / bs != g || j >= window.front()) continue;
            if (std::binary_search(exact.begin(), exact.end(), j)) continue;
            for (int64_t c = 0; c < d; c++) ks[(size_t)c] += P.k(b, hk, j)[c];
            for (int64_t c = 0; c < dv; c++) vs[(size_t)c] += P.v(b, hk, j)[c];
            m++;
        }
        if (m == 0) continue;
        const double t = P.scale() * dot(P.q(b, h, i), ks.data(), d) / m + std::log((double)m);
        out.push_back({-1, t, m, vs});
    }
    return out;
}

// Step 4, non-causal: the exact complement of each k-means group.
std::vector<Summary> group_summaries(const Problem &P, const Groups &gr, int64_t b, int64_t h,
                                     int64_t i, const std::vector<int32_t> &exact) {
    const smyrf_ref_problem &p = P.p;
    const int64_t hk = h / (p.heads / p.kv_heads), d = p.qk_dim, dv = p.v_dim;
    std::vector<Summary> out;
    for (int64_t g = 0; g < gr.G; g++) {
        int64_t e = 0;
        double s_exact = 0;
        Vec vs(gr.vsum.begin() + g * dv, gr.vsum.begin() + (g + 1) * dv);
        for (int32_t j : exact) {
            if (gr.label[(size_t)j] != g) continue;
            e++;
            s_exact += P.scale() * dot(P.q(b, h, i), P.k(b, hk, j), d);
            for (int64_t c = 0; c < dv; c++) vs[(size_t)c] -= P.v(b, hk, j)[c];
        }
        const int64_t m = gr.count[(size_t)g] - e;
        if (m == 0) continue;
        const double qk = P.scale() * dot(P.q(b, h, i), &gr.ksum[(size_t)(g * d)], d);
        out.push_back({g, (qk - s_exact) / m + std::log((double)m), m, vs});
    }
    return out;
}

// Expansion, non-causal (E = expand > 0): the groups with a summary (m_ig > 0), by
// decreasing t_ig, ties to the lower g; a group is chosen when its whole size n_g fits in
// what is left of E, and the scan goes on (a later, smaller group may still fit). Every
// valid member of a chosen group joins the exact keys (once), and its summary goes. The
// other summaries keep their t_ig, m_ig and values: no member of a chosen group is in
// another group. Returns whether logits within `tie` of each other could choose
// otherwise in another order: a run of such logits holding chosen and unchosen groups
// (all chosen, or none, stays so in any order of the run).
bool expand_groups(const Groups &gr, int64_t expand, double tie, std::vector<int32_t> &exact,
                   std::vector<Summary> &sums) {
    std::vector<Summary> order = sums;  // built in increasing g: stable keeps ties lower g first
    std::stable_sort(order.begin(), order.end(),
                     [](const Summary &x, const Summary &y) { return x.t > y.t; });
    std::vector<bool> chosen((size_t)gr.G, false);
    int64_t used = 0;
    for (const Summary &g : order) {
        if (std::isnan(g.t)) continue;  // never chosen (as the library)
        const int64_t n = gr.count[(size_t)g.group];
        if (n <= expand - used) chosen[(size_t)g.group] = true, used += n;
    }
    bool unsure = false;
    for (size_t x = 0; x < order.size();) {
        size_t y = x + 1;
        bool some = chosen[(size_t)order[x].group], all = some;
        for (; y < order.size() && order[y - 1].t - order[y].t <= tie; y++) {
            some |= chosen[(size_t)order[y].group];
            all &= chosen[(size_t)order[y].group];
        }
        unsure |= some && !all;
        x = y;
    }
    for (size_t j = 0; j < gr.label.size(); j++)  // padded keys have label -1
        if (gr.label[j] >= 0 && chosen[(size_t)gr.label[j]]) exact.push_back((int32_t)j);
    std::sort(exact.begin(), exact.end());
    exact.erase(std::unique(exact.begin(), exact.end()), exact.end());
    std::vector<Summary> kept;
    for (const Summary &g : sums)
        if (!chosen[(size_t)g.group]) kept.push_back(g);
    sums = kept;
    return unsure;
}

// Step 5 for one query, in either form.
void combine(const Problem &P, const Groups &gr, int64_t b, int64_t h, int64_t i,
             const std::vector<int32_t> &exact, const std::vector<Summary> &sums, int one_pass,
             double *out, double *lse) {
    const smyrf_ref_problem &p = P.p;
    const int64_t hk = h / (p.heads / p.kv_heads), d = p.qk_dim, dv = p.v_dim;
    Vec s;
    double mx = -kInf;
    for (int32_t j : exact) {
        s.push_back(P.scale() * dot(P.q(b, h, i), P.k(b, hk, j), d));
        mx = std::max(mx, s.back());
    }
    for (const Summary &g : sums) mx = std::max(mx, g.t);
    double z = 0;
    std::fill(out, out + dv, 0.0);
    for (size_t x = 0; x < exact.size(); x++) {
        double w = std::exp(s[x] - mx);
        z += w;
        // One pass: each exact key gives back its share u_{i,a_j} of its group's sum.
        if (one_pass)
            for (const Summary &g : sums)
                if (g.group >= 0 && gr.label[(size_t)exact[x]] == g.group)
                    w -= std::exp(g.t - mx) / g.m;
        for (int64_t c = 0; c < dv; c++) out[c] += w * P.v(b, hk, exact[x])[c];
    }
    for (const Summary &g : sums) {
        const double w = std::exp(g.t - mx);
        z += w;
        if (!one_pass) {
            for (int64_t c = 0; c < dv; c++) out[c] += w * g.vsum[(size_t)c] / g.m;  // Vbar
        } else {
            const Vec &full = g.group >= 0 ? Vec(gr.vsum.begin() + g.group * dv,
                                                 gr.vsum.begin() + (g.group + 1) * dv)
                                           : g.vsum;
            for (int64_t c = 0; c < dv; c++) out[c] += w / g.m * full[(size_t)c];
        }
    }
    for (int64_t c = 0; c < dv; c++) out[c] /= z;
    *lse = mx + std::log(z);
}

}  // namespace

extern "C" int64_t smyrf_ref_hybrid_groups(const smyrf_ref_problem *p,
                                           const smyrf_ref_hybrid_params *hp, int64_t b,
                                           int64_t hk, int32_t *labels, int32_t *counts,
                                           double *ksum, double *vsum) {
    const Groups gr = kmeans(Problem{*p, *hp}, b, hk);
    std::copy(gr.label.begin(), gr.label.end(), labels);
    std::copy(gr.count.begin(), gr.count.end(), counts);
    std::copy(gr.ksum.begin(), gr.ksum.end(), ksum);
    std::copy(gr.vsum.begin(), gr.vsum.end(), vsum);
    return gr.G;
}

extern "C" void smyrf_ref_hybrid(const smyrf_ref_problem *p, const smyrf_ref_hybrid_params *hp,
                                 int one_pass, double *out, double *lse) {
    smyrf_ref_hybrid_flagged(p, hp, one_pass, 0.0, out, lse, nullptr);
}

extern "C" void smyrf_ref_hybrid_flagged(const smyrf_ref_problem *p,
                                         const smyrf_ref_hybrid_params *hp, int one_pass,
                                         double tie, double *out, double *lse,
                                         uint8_t *unsure) {
    const Problem P{*p, *hp};
    const int64_t expand = hp->expand;
    const int64_t group = p->heads / p->kv_heads, dv = p->v_dim;
    for (int64_t b = 0; b < p->batch; b++) {
        const std::vector<int32_t> valid = P.valid(b);
        // A batch expands only where a group can fit (n_valid <= G_eff E, non-causal);
        // otherwise the E keys join its window.
        const int64_t n = (int64_t)valid.size();
        const bool expands = expand > 0 && !P.dense(n) && !p->causal &&
                             n <= std::min(hp->summaries, n) * expand;
        smyrf_ref_hybrid_params hb = *hp;
        if (!expands) hb.window += expand;
        const Problem Pb{*p, hb};
        for (int64_t h = 0; h < p->heads; h++) {
            const Groups gr = p->causal ? Groups{} : kmeans(Pb, b, h / group);
            for (int64_t i = 0; i < p->q_len; i++) {
                double *o = out + ((b * p->heads + h) * p->q_len + i) * dv;
                double l = -kInf;
                bool near_tie = false;
                const int64_t limit = p->causal ? i + p->k_len - p->q_len : p->k_len - 1;
                std::vector<int32_t> window;
                std::vector<int32_t> exact = exact_keys(Pb, valid, i, limit, &window);
                if (exact.empty()) {  // no allowed key
                    std::fill(o, o + dv, 0.0);
                } else {
                    const bool dense = Pb.dense(n);
                    std::vector<Summary> sums =
                        dense ? std::vector<Summary>{}
                        : p->causal ? causal_summaries(Pb, b, h, i, valid, window, exact)
                                    : group_summaries(Pb, gr, b, h, i, exact);
                    if (expands) near_tie = expand_groups(gr, expand, tie, exact, sums);
                    combine(Pb, gr, b, h, i, exact, sums, one_pass, o, &l);
                }
                if (lse) lse[(b * p->heads + h) * p->q_len + i] = l;
                if (unsure) unsure[(b * p->heads + h) * p->q_len + i] = near_tie;
            }
        }
    }
}
