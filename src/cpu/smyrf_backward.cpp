// SMYRF mode gradients (docs/algorithm.md, "Backward"): the forward's clusters are
// recomputed from the seed (cpu/smyrf_clusters.cpp, the same code the forward runs), then
// each round's clusters run the attention backward with the forward's lse. A query that
// met no key in any round attended its fallback key alone: out_i = v_j, so dv_j gets
// dout_i and nothing else moves.
//
// Determinism and races: within one round a problem's clusters own disjoint queries and
// keys, so they run in parallel and each dq, dk, dv row is summed round after round in a
// fixed order. With GQA the query heads of a group sum into one dk, dv: each problem
// then sums into its own scratch, added to the output in head order afterwards.
#include "cpu/attention_backward.hpp"
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"
#include "cpu/smyrf_clusters.hpp"
#include "cpu/stages.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace smyrf::cpu {
namespace {


struct Buffers {
    ClusterBuffers clusters;
    float *delta;          // [chunk][Nq]: D_i = dout_i . out_i
    uint8_t *met;          // [chunk][Nq]: the query met an allowed key in some round
    float *dk, *dv;        // GQA only: [chunk][Nk][d], [chunk][Nk][dv] per-problem sums
    GradScratch *scratch;  // [threads]
};

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    const size_t nq = d.q_len, nk = d.k_len, T = d.threads;
    bf.clusters = cluster_layout(arena, d);
    const size_t ch = (size_t)bf.clusters.chunk;
    bf.delta = arena.take<float>(ch * nq);
    bf.met = arena.take<uint8_t>(ch * nq);
    bf.dk = bf.dv = nullptr;
    if (d.group_size() > 1) {
        bf.dk = arena.take<float>(ch * nk * d.qk_dim);
        bf.dv = arena.take<float>(ch * nk * d.v_dim);
    }
    bf.scratch = per_thread<GradScratch>(arena, T,
        [&](Arena &a) { return grad_scratch(a, d); });
    return bf;
}

void zero_rows(const View &x, int64_t b, int64_t h, int64_t i0, int64_t i1, int64_t dim) {
    for (int64_t i = i0; i < i1; i++) std::memset(x.row(b, h, i), 0, (size_t)dim * sizeof(float));
}

}  // namespace

size_t smyrf_backward_workspace(const Desc &d) { return layout_bytes(layout, d); }

void smyrf_backward_run(const Desc &d, const GradArgs &g, void *workspace,
                        const float *directions) {
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const ClusterBuffers &cb = bf.clusters;
    const int64_t nq = d.q_len, nk = d.k_len, R = d.n_hashes;
    const int64_t dim = d.qk_dim, dvd = d.v_dim, problems = d.batch * d.heads, T = d.threads;
    const bool gqa = d.group_size() > 1;

    for (int64_t first = 0; first < problems; first += cb.chunk) {
        const int64_t np = std::min(cb.chunk, problems - first);
        auto problem = [&](int64_t t, int64_t &b, int64_t &h) {
            b = (first + t) / d.heads;
            h = (first + t) % d.heads;
        };
        // Where problem t sums its key gradients: the output rows (it owns them without
        // GQA), else its scratch.
        auto key_rows = [&](int64_t t, GradRows &dk, GradRows &dv) {
            int64_t b, h;
            problem(t, b, h);
            if (gqa) {
                dk = {bf.dk + t * nk * dim, dim};
                dv = {bf.dv + t * nk * dvd, dvd};
            } else {
                dk = {g.dk.row(b, h, 0), g.dk.s.token};
                dv = {g.dv.row(b, h, 0), g.dv.s.token};
            }
        };

        cluster_problems(d, g.q, g.k, g.key_mask, directions, cb, first, np);
        // D, met = 0 and zero gradients, a block of rows per task (query rows and key rows
        // of the same numbers), so that two threads share even a single long problem
        const int64_t rb = (std::max(nq, nk) + kRowsPerTask - 1) / kRowsPerTask;
        parallel_for(np * rb, T, [&](int64_t task, int) {
            const int64_t t = task / rb, i0 = (task % rb) * kRowsPerTask;
            int64_t b, h;
            problem(t, b, h);
            const int64_t i1 = std::min(nq, i0 + kRowsPerTask), j1 = std::min(nk, i0 + kRowsPerTask);
            if (i0 < i1) {
                attention_backward_delta(d, g, b, h, i0, i1, bf.delta + t * nq);
                std::memset(bf.met + t * nq + i0, 0, (size_t)(i1 - i0));
                zero_rows(g.dq, b, h, i0, i1, dim);
            }
            if (i0 < j1) {
                if (gqa) {
                    std::memset(bf.dk + (t * nk + i0) * dim, 0, (size_t)((j1 - i0) * dim) * sizeof(float));
                    std::memset(bf.dv + (t * nk + i0) * dvd, 0, (size_t)((j1 - i0) * dvd) * sizeof(float));
                } else {
                    zero_rows(g.dk, b, h, i0, j1, dim);
                    zero_rows(g.dv, b, h, i0, j1, dvd);
                }
            }
        });

        // round after round (a query and a key sit in one cluster per round), each
        // cluster's q, dout, k and v rows (ahead) loaded during the sums of the cluster
        // before it
        const auto ahead = [&](const ClusterAt &c) {
            int64_t b, h;
            problem(c.t, b, h);
            return backward_ahead_of(d, g, b, h, c.rows.q, c.rows.nq, c.rows.k, c.rows.nk);
        };
        for (int64_t r = 0; r < R; r++) {
            walk_clusters(d, cb, np, r, ahead,
                [&](const ClusterAt &c, Ahead *later, int thread) {  // loading `later`
                    int64_t b, h;
                    problem(c.t, b, h);
                    GradRows dk, dv;
                    key_rows(c.t, dk, dv);
                    attention_backward(d, g, b, h, c.rows.q, c.rows.nq, c.rows.k, c.rows.nk,
                                       bf.delta + c.t * nq, true, &dk, &dv, bf.met + c.t * nq,
                                       bf.scratch[thread], nullptr, later);
                });
        }

        // Fallback rows, in query order: dv of the fallback key gets dout.
        parallel_for(np, T, [&](int64_t t, int) {
            int64_t b, h;
            problem(t, b, h);
            GradRows dk, dv;
            key_rows(t, dk, dv);
            const float *lse = g.lse + (b * d.heads + h) * nq;
            for (int64_t i = 0; i < nq; i++) {
                if (bf.met[t * nq + i] || lse[i] == -INFINITY) continue;
                const int64_t limit = d.causal ? i + d.causal_offset() : nk - 1;
                const int64_t j = latest_valid_key(cb.valid + t * nk, cb.n_valid[t], limit);
                if (j < 0) continue;
                float *row = dv.row(j);
                const float *src = g.dout.row(b, h, i);
                for (int64_t c = 0; c < dvd; c++) row[c] += src[c];
            }
        });

        // GQA: the group's heads add into dk, dv in head order (the first one writes).
        if (gqa) {
            const int64_t kRowBlock = 256, blocks = (nk + kRowBlock - 1) / kRowBlock;
            parallel_for(blocks, T, [&](int64_t blk, int) {
                const int64_t j0 = blk * kRowBlock, j1 = std::min(nk, j0 + kRowBlock);
                for (int64_t t = 0; t < np; t++) {
                    int64_t b, h;
                    problem(t, b, h);
                    const int64_t hk = d.kv_head_of(h);
                    const bool first_head = h % d.group_size() == 0;
                    for (int64_t j = j0; j < j1; j++) {
                        const float *sk = bf.dk + (t * nk + j) * dim;
                        const float *sv = bf.dv + (t * nk + j) * dvd;
                        float *ok = g.dk.row(b, hk, j), *ov = g.dv.row(b, hk, j);
                        if (first_head) {
                            std::memcpy(ok, sk, (size_t)dim * sizeof(float));
                            std::memcpy(ov, sv, (size_t)dvd * sizeof(float));
                        } else {
                            for (int64_t c = 0; c < dim; c++) ok[c] += sk[c];
                            for (int64_t c = 0; c < dvd; c++) ov[c] += sv[c];
                        }
                    }
                }
            });
        }
    }
}

}  // namespace smyrf::cpu
