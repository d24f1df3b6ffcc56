// HYBRID mode: per chunk of (batch, kv head) pairs, build the groups (k-means, or causal
// positional blocks), then attend every query tile of the pairs' query heads. Memory per
// pair in flight is O(Nk (d + dv)) plus O(G (d + dv)); nothing is O(Nq Nk) or O(Nk G).
#include "cpu/hybrid.hpp"
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"

#include <algorithm>
#include <cmath>

namespace smyrf::cpu {
namespace hybrid {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void take_pair(Arena &arena, const Desc &d, Pair *p) {
    const size_t nk = (size_t)d.k_len, g = (size_t)max_groups(d);
    Pair t{};
    t.valid = arena.take<int32_t>(nk);
    t.count = arena.take<int32_t>(g);
    t.ksum = arena.take<float>(g * d.qk_dim);
    t.vsum = arena.take<float>(g * d.v_dim);
    if (d.causal) {
        t.pk = arena.take<float>(nk * d.qk_dim);
        t.pv = arena.take<float>(nk * d.v_dim);
        t.pn = arena.take<int32_t>(nk);
    } else {
        t.label = arena.take<int32_t>(nk);
        t.gathered = arena.take<float>(nk * d.qk_dim);
        t.centres = arena.take<float>(g * d.qk_dim);
        t.cnorm = arena.take<float>(g);
        t.partial = arena.take<double>(kSumChunks * g * (d.qk_dim + d.v_dim));
        t.partial_n = arena.take<int32_t>(kSumChunks * g);
        if (d.expand > 0) {
            t.member_start = arena.take<int32_t>(g + 1);
            t.members = arena.take<int32_t>(nk);
        }
    }
    if (p) *p = t;
}

// Valid keys, the dense limit, and the group count of the pair in slot t.
void prepare(const Desc &d, const Args &a, const float *log_n, Pair &p, int64_t pair) {
    p.log_n = log_n;
    p.b = pair / d.kv_heads;
    p.hk = pair % d.kv_heads;
    p.n_valid = valid_keys(a.key_mask, p.b, d.k_len, p.valid);
    const bool in_place = p.n_valid == d.k_len;  // valid key u is row u
    p.keys = in_place ? a.k.row(p.b, p.hk, 0) : p.gathered;
    p.ldk = in_place ? a.k.s.token : d.qk_dim;
    p.dense = d.budget >= p.n_valid || d.window >= p.n_valid;
    p.block = ceil_div(d.k_len, d.summaries);
    if (p.dense) p.groups = 0;
    else if (d.causal) p.groups = ceil_div(d.k_len, p.block);
    else p.groups = std::min(d.summaries, p.n_valid);
    // Expansion only where a group can fit (docs/algorithm.md); else its keys widen the window.
    p.expand = !p.dense && !d.causal && p.n_valid <= p.groups * d.expand ? d.expand : 0;
    p.window = p.dense ? p.n_valid : d.window + d.expand - p.expand;
}

}  // namespace

int64_t max_groups(const Desc &d) { return std::max<int64_t>(1, std::min(d.summaries, d.k_len)); }

// A tile's queries span at most this many consecutive valid keys (hybrid_attention.cpp
// and hybrid_backward.cpp split a tile where windows drift further).
int64_t max_band(const Desc &d) { return std::min(d.budget, d.k_len) + kAttendQueries; }

int64_t max_expanded(const Desc &d) {
    return d.expand > 0 && !d.causal ? std::min(d.k_len, kAttendQueries * d.expand) : 0;
}

// A tile reads the groups, two sinks and its band.
int64_t max_rows(const Desc &d) { return max_groups(d) + 2 + max_band(d); }

Scratch scratch_layout(Arena &arena, const Desc &d) {
    const size_t g = (size_t)max_groups(d), rows = (size_t)max_rows(d);
    const size_t tq = kAttendQueries, dim = d.qk_dim, dv = d.v_dim;
    Scratch s{};
    s.dist = arena.take<float>(g * kAttendQueries);
    s.best = arena.take<float>(kAttendQueries);
    s.crow = arena.take<const float *>(g);
    s.acc = arena.take<double>(dim + dv);
    s.krow = arena.take<const float *>(rows);
    s.vrow = arena.take<const float *>(rows);
    s.label = arena.take<int32_t>(rows);
    s.qa = arena.take<int32_t>(rows);
    s.qb = arena.take<int32_t>(rows);
    s.qrow = arena.take<const float *>(tq);
    s.out = arena.take<float *>(tq);
    s.lo = arena.take<int32_t>(tq);
    s.hi = arena.take<int32_t>(tq);
    s.qt = arena.take<float>(dim * tq);
    s.st = arena.take<float>(rows * tq);
    s.hits = arena.take<int32_t>(g * tq);
    s.hit_logits = arena.take<float>(g * tq);
    s.first = arena.take<int32_t>(tq);
    s.xt = arena.take<float>(tq);
    s.mx = arena.take<float>(tq);
    s.l = arena.take<float>(tq);
    s.zero = arena.take<float>(tq);
    if (max_expanded(d) > 0) {  // expansion's masks and tile
        s.chosen = arena.take<float>(g * tq);
        s.seen = arena.take<float>(g * tq);
        s.x = attention_scratch(arena, d);
        s.xq = arena.take<int32_t>(kQueryTile);
        s.xk = arena.take<int32_t>(kKeyTile);
        s.xs = arena.take<RowState>(tq);
    }
    return s;
}

Buffers layout(Arena &arena, const Desc &d) {
    Buffers bf;
    bf.log_n = arena.take<float>((size_t)d.k_len + 1);
    bf.chunk = std::min(d.batch * d.kv_heads, d.threads);
    bf.pairs = arena.take<Pair>((size_t)bf.chunk);
    for (int64_t t = 0; t < bf.chunk; t++) take_pair(arena, d, bf.pairs ? &bf.pairs[t] : nullptr);
    bf.scratch = per_thread<Scratch>(arena, d.threads,
                                     [&](Arena &a) { return scratch_layout(a, d); });
    return bf;
}

namespace {

void build_groups(const Desc &d, const Args &a, const Buffers &bf, int64_t first, int64_t np) {
    const int64_t T = d.threads;
    parallel_for(np, T, [&](int64_t t, int) {
        prepare(d, a, bf.log_n, bf.pairs[t], first + t);
        if (!bf.pairs[t].dense && !d.causal) kmeans_init(d, a, bf.pairs[t]);
    });

    if (d.causal) {
        const int64_t blocks = ceil_div(d.k_len, ceil_div(d.k_len, d.summaries));
        parallel_for(np * blocks, T, [&](int64_t task, int thread) {
            const Pair &p = bf.pairs[task / blocks];
            if (!p.dense) block_sums(d, a, p, task % blocks, bf.scratch[thread]);
        });
        return;
    }

    // Lloyd iterations: assign, then (move the centres, assign) I - 1 more times.
    const int64_t tiles = ceil_div(d.k_len, kKeyTile);
    auto sums = [&](bool values) {
        parallel_for(np * kSumChunks, T, [&](int64_t task, int) {
            const Pair &p = bf.pairs[task / kSumChunks];
            if (!p.dense) chunk_sums(d, a, p, task % kSumChunks, values);
        });
    };
    for (int64_t it = 0; it < d.kmeans_iters; it++) {
        if (it > 0) {
            sums(false);
            parallel_for(np, T, [&](int64_t t, int) {
                if (!bf.pairs[t].dense) kmeans_move(d, bf.pairs[t]);
            });
        }
        parallel_for(np * tiles, T, [&](int64_t task, int thread) {
            const Pair &p = bf.pairs[task / tiles];
            const int64_t u0 = (task % tiles) * kKeyTile;
            if (!p.dense && u0 < p.n_valid)
                kmeans_assign(d, a, p, u0, std::min(p.n_valid, u0 + kKeyTile), it == 0,
                              bf.scratch[thread]);
        });
    }
    sums(true);
    parallel_for(np, T, [&](int64_t t, int) {
        if (bf.pairs[t].dense) return;
        group_totals(d, bf.pairs[t]);
        if (bf.pairs[t].expand > 0) group_members(bf.pairs[t]);
    });
}

}  // namespace

void build_pairs(const Desc &d, const Args &a, const Buffers &bf, int64_t first, int64_t np) {
    build_groups(d, a, bf, first, np);
    // The summary logits' log m: a summary never has more members than its whole group.
    int64_t most = 0;
    for (int64_t t = 0; t < np; t++) {
        const Pair &p = bf.pairs[t];
        if (p.groups) most = std::max<int64_t>(most, *std::max_element(p.count, p.count + p.groups));
    }
    for (int64_t n = 0; n <= most; n++) bf.log_n[n] = std::log((float)n);
}

}  // namespace hybrid

size_t hybrid_workspace(const Desc &d) { return layout_bytes(hybrid::layout, d); }

void hybrid_run(const Desc &d, const Args &a, void *workspace) {
    using namespace hybrid;
    Arena arena(workspace);
    const Buffers bf = layout(arena, d);
    const int64_t pairs = d.batch * d.kv_heads, heads = d.group_size();
    const int64_t tiles = (d.q_len + kAttendQueries - 1) / kAttendQueries;
    for (int64_t first = 0; first < pairs; first += bf.chunk) {
        const int64_t np = std::min(bf.chunk, pairs - first);
        build_pairs(d, a, bf, first, np);
        // Each thread walks a contiguous share of the tiles: neighbouring tiles read
        // neighbouring rows (2-3% faster than every other tile, N = 16384 to 65536).
        parallel_shares(np * heads * tiles, d.threads, [&](int64_t task, int thread) {
            const Pair &p = bf.pairs[task / (heads * tiles)];
            const int64_t h = p.hk * heads + (task / tiles) % heads;
            const int64_t i0 = (task % tiles) * kAttendQueries;
            attend(d, a, p, h, i0, std::min(d.q_len, i0 + kAttendQueries),
                   bf.scratch[thread]);
        });
    }
}

}  // namespace smyrf::cpu
