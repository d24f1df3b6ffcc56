#include "measurement.hpp"

#include "peak_memory.hpp"
#include "slow_step_notice.hpp"

#include <algorithm>
#include <chrono>
#include <memory>

namespace smyrf_cli {
namespace {

struct ConfigDeleter {
    void operator()(smyrf_config *c) const { smyrf_config_destroy(c); }
};
struct PlanDeleter {
    void operator()(smyrf_plan *p) const { smyrf_plan_destroy(p); }
};
using PlanPtr = std::unique_ptr<smyrf_plan, PlanDeleter>;

// Records a failed call in m; true when the call succeeded.
bool check(smyrf_status s, Measurement &m) {
    if (s == SMYRF_OK) return true;
    m.status = s;
    m.message = smyrf_last_error_message();
    return false;
}

PlanPtr make_plan(const Shape &shape, const ModeSpec &spec, const RunSettings &settings,
                  Measurement &m) {
    smyrf_config *raw = nullptr;
    if (!check(smyrf_config_create(&raw), m)) return nullptr;
    std::unique_ptr<smyrf_config, ConfigDeleter> cfg(raw);
    const std::pair<smyrf_param, int64_t> values[] = {
        {SMYRF_PARAM_BATCH, shape.batch},
        {SMYRF_PARAM_HEADS, shape.heads},
        {SMYRF_PARAM_Q_LEN, shape.n},
        {SMYRF_PARAM_QK_DIM, shape.d},
        {SMYRF_PARAM_MODE, spec.mode},
        {SMYRF_PARAM_SEED, (int64_t)settings.seed},
        {SMYRF_PARAM_THREADS, settings.threads},
        {SMYRF_PARAM_BACKEND, SMYRF_BACKEND_CPU},  // the buffers are host memory
    };
    for (const auto &pv : values)
        if (!check(smyrf_config_set(cfg.get(), pv.first, pv.second), m)) return nullptr;
    if (spec.mode == SMYRF_MODE_SMYRF &&
        !(check(smyrf_config_set(cfg.get(), SMYRF_PARAM_N_HASHES, spec.hashes), m) &&
          check(smyrf_config_set(cfg.get(), SMYRF_PARAM_Q_CLUSTER_SIZE, spec.cluster), m)))
        return nullptr;
    if (spec.mode == SMYRF_MODE_HYBRID &&
        !(check(smyrf_config_set(cfg.get(), SMYRF_PARAM_BUDGET, spec.budget), m) &&
          check(smyrf_config_set(cfg.get(), SMYRF_PARAM_EXPAND, settings.expand), m) &&
          check(smyrf_config_set(cfg.get(), SMYRF_PARAM_KMEANS_ITERS, settings.kmeans_iters), m)))
        return nullptr;
    smyrf_plan *plan = nullptr;
    if (!check(smyrf_plan_create(&plan, cfg.get()), m)) return nullptr;
    return PlanPtr(plan);
}

// One untimed warm-up call of `call`, then `reps` timed ones into `ms`; false, with the
// failure in m, as soon as one fails. `what` names the calls in slow-step notices.
template <class Call>
bool time_calls(const std::string &what, int reps, std::vector<double> &ms, Measurement &m,
                Call call) {
    for (int rep = 0; rep <= reps; rep++) {  // rep 0 is the warm-up
        SlowStepNotice notice(what + (rep == 0 ? ", warm-up call"
                                               : ", call " + std::to_string(rep) + " of " +
                                                     std::to_string(reps)));
        const auto start = std::chrono::steady_clock::now();
        const smyrf_status s = call();
        const auto stop = std::chrono::steady_clock::now();
        if (!check(s, m)) return false;
        if (rep > 0) ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    }
    return true;
}

// Times smyrf_execute_backward once the forward's figures are taken (its buffers stay out
// of the memory columns): out and lse are the forward's, dout is fixed random values.
void time_backward(const smyrf_plan *plan, const Problem &p, const Tensor &lse,
                   const std::string &what, const RunSettings &settings, Measurement &m) {
    const size_t ws_bytes = smyrf_plan_backward_workspace_size(plan);
    std::vector<unsigned char> workspace;
    resize_or_explain(workspace, ws_bytes, "the backward's workspace");
    // The complement of the seed: a stream apart from the inputs' own.
    const Tensor dout = normal_values(m.out.size(), ~settings.seed, "dout");
    Tensor dq, dk, dv;
    resize_or_explain(dq, p.q.size(), "dq");
    resize_or_explain(dk, p.k.size(), "dk");
    resize_or_explain(dv, p.v.size(), "dv");
    if (!time_calls(what, settings.reps, m.backward_ms, m, [&] {
            return smyrf_execute_backward(plan, p.q.data(), p.k.data(), p.v.data(), nullptr,
                                          m.out.data(), lse.data(), dout.data(), dq.data(),
                                          dk.data(), dv.data(), workspace.data(), ws_bytes,
                                          nullptr);
        }))
        m.message = "backward: " + m.message;
}

}  // namespace

std::string ModeSpec::name() const {
    switch (mode) {
    case SMYRF_MODE_SMYRF: return "smyrf";
    case SMYRF_MODE_DENSE: return "dense";
    case SMYRF_MODE_HYBRID: return "hybrid";
    }
    return "mode " + std::to_string((int)mode);
}

std::string ModeSpec::label() const {
    if (mode == SMYRF_MODE_SMYRF)
        return "smyrf " + std::to_string(hashes) + "x" + std::to_string(cluster);
    if (mode == SMYRF_MODE_HYBRID) return "hybrid B=" + std::to_string(budget);
    return name();
}

std::string Measurement::failure() const {
    return std::string(smyrf_status_string(status)) + ": " + message;
}

double attention_flops(const Shape &shape, const ModeSpec &spec) {
    const double n = (double)shape.n, problems = (double)(shape.batch * shape.heads);
    double keys_per_query = n;  // DENSE
    if (spec.mode == SMYRF_MODE_SMYRF) {
        const int64_t clusters = (shape.n + spec.cluster - 1) / spec.cluster;
        keys_per_query = (double)spec.hashes * (double)((shape.n + clusters - 1) / clusters);
    } else if (spec.mode == SMYRF_MODE_HYBRID) {
        keys_per_query = std::min((double)spec.budget, n);
    }
    return problems * n * keys_per_query * 2.0 * (double)(2 * shape.d);
}

Measurement measure(const Problem &problem, const ModeSpec &spec, const RunSettings &settings) {
    Measurement m;
    PlanPtr plan = make_plan(problem.shape, spec, settings, m);
    if (!plan) return m;
    m.backend = smyrf_plan_backend_name(plan.get());
    if (!check(smyrf_plan_get(plan.get(), SMYRF_PARAM_THREADS, &m.threads), m)) return m;

    // Touch the output and the workspace first so that they count as resident before the
    // peak is reset: the extra memory is then only what the library allocates itself.
    const size_t ws_bytes = smyrf_plan_workspace_size(plan.get());
    std::vector<unsigned char> workspace;
    resize_or_explain(workspace, ws_bytes, "the workspace of " + spec.label());
    m.workspace_mib = ws_bytes / 1048576.0;
    resize_or_explain(m.out, problem.q.size(), "out");
    // lse only for the backward, so that the forward alone runs as it always did.
    const Shape &s = problem.shape;
    Tensor lse;
    resize_or_explain(lse, settings.backward ? (size_t)(s.batch * s.heads * s.n) : 0, "lse");
    float *const lse_out = settings.backward ? lse.data() : nullptr;

    const double rss_before = current_rss_mib();
    m.peak_is_per_run = reset_peak_rss();
    const std::string at = " at N = " + std::to_string(s.n);
    if (!time_calls(spec.label() + at, settings.reps, m.ms, m, [&] {
            return smyrf_execute(plan.get(), problem.q.data(), problem.k.data(),
                                 problem.v.data(), nullptr, m.out.data(), lse_out,
                                 workspace.data(), ws_bytes, nullptr);
        }))
        return m;
    m.peak_rss_mib = peak_rss_mib();
    m.extra_mib = m.peak_rss_mib - rss_before;
    if (settings.backward)
        time_backward(plan.get(), problem, lse, spec.label() + " backward" + at, settings, m);
    return m;
}

void warm_up(const Shape &shape, const std::vector<ModeSpec> &specs, const RunSettings &settings) {
    Shape small;  // one head: milliseconds at d = 64, even for DENSE
    small.n = std::min<int64_t>(shape.n, 4096);
    small.d = shape.d;
    const Problem problem = clustered_problem(small, settings.seed);
    RunSettings once = settings;
    once.reps = 0;  // measure's warm-up call alone
    for (const ModeSpec &spec : specs) measure(problem, spec, once);
}

}  // namespace smyrf_cli
