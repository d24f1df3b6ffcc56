#include "problem.hpp"

#include <cmath>

namespace smyrf_cli {
namespace {

constexpr int64_t kTopics = 32;
constexpr int64_t kMeanRun = 128;    // tokens in a run of one topic, on average
constexpr double kCentreStd = 0.8;   // logit gap of about scale * d * 0.64 = 5 for d = 64
constexpr double kNoiseStd = 0.6;
constexpr double kValueNoiseStd = 0.5;  // values of a topic share a centre too

// splitmix64: a small, fully specified generator, so the inputs never depend on the
// standard library's implementation.
class Random {
public:
    explicit Random(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return ((next() >> 11) + 0.5) * 0x1.0p-53; }  // in (0, 1)
    double normal() {  // Box-Muller; one of the pair is enough here
        return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform());
    }

private:
    uint64_t state_;
};

// One (batch, head) problem: n tokens of dimension d starting at `offset` in q, k, v.
void fill_head(Problem &p, int64_t offset, Random &rng) {
    const int64_t n = p.shape.n, d = p.shape.d;
    Tensor centres(kTopics * d), value_centres(kTopics * d);
    for (float &c : centres) c = (float)(kCentreStd * rng.normal());
    for (float &c : value_centres) c = (float)rng.normal();
    int64_t topic = 0, run_left = 0;
    for (int64_t t = 0; t < n; t++) {
        if (run_left == 0) {
            topic = (int64_t)(rng.next() % kTopics);
            run_left = 1 + (int64_t)(rng.next() % (2 * kMeanRun));
        }
        run_left--;
        const float *c = &centres[topic * d], *vc = &value_centres[topic * d];
        for (int64_t x = 0; x < d; x++) {
            const int64_t i = offset + t * d + x;
            p.q[i] = c[x] + (float)(kNoiseStd * rng.normal());
            p.k[i] = c[x] + (float)(kNoiseStd * rng.normal());
            p.v[i] = vc[x] + (float)(kValueNoiseStd * rng.normal());
        }
    }
}

}  // namespace

Problem clustered_problem(const Shape &shape, uint64_t seed) {
    Problem p;
    p.shape = shape;
    p.origin = "built-in: " + std::to_string(kTopics) + " topics in runs of ~" +
               std::to_string(kMeanRun) + " tokens, seed " + std::to_string(seed);
    const size_t count = (size_t)shape.elements();
    const std::string dims = " (batch x heads x N x d = " + std::to_string(shape.batch) + " x " +
                             std::to_string(shape.heads) + " x " + std::to_string(shape.n) +
                             " x " + std::to_string(shape.d) + " fp32)";
    resize_or_explain(p.q, count, "q" + dims);
    resize_or_explain(p.k, count, "k" + dims);
    resize_or_explain(p.v, count, "v" + dims);
    Random rng(seed);
    const int64_t head_elems = shape.n * shape.d;
    for (int64_t h = 0; h < shape.batch * shape.heads; h++) fill_head(p, h * head_elems, rng);
    return p;
}

Tensor normal_values(size_t count, uint64_t seed, const std::string &what) {
    Tensor values;
    resize_or_explain(values, count, what);
    Random rng(seed);
    for (float &x : values) x = (float)rng.normal();
    return values;
}

}  // namespace smyrf_cli
