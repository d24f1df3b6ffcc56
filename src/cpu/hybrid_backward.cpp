// HYBRID mode gradients (ALGORITHM.md, "Backward"; the derivation is in
// docs/hybrid-notes.md, "Backward"). The groups and labels are rebuilt exactly as the
// forward builds them (build_pairs) and are constants; gradients flow through the exact
// logits s_ij, the summary logits t_ig and the summary values Vbar_ig.
//
// Per (batch, kv head) pair:
//   1. Query tasks: a segment of at most kAttendQueries consecutive queries of one query
//      head whose windows fit one band of consecutive valid keys (the forward's tiles).
//      Each task (tile_grads, hybrid_backward_tile.cpp) recomputes its logits, the softmax
//      weights from the forward's lse, and
//        dS'_ij = P_ij (dout_i.v_j - D_i) - C_{i,a_j},  P'_ij = P_ij - U_{i,a_j}
//        C_ig = P_ig (dout_i.Vbar_ig - D_i) / m_ig,     U_ig = P_ig / m_ig
//      then writes dq rows (it owns them) and, into its own slot, its rows' key and value
//      gradients (scale dS'^T Q, P'^T dO; summaries: scale C^T Q, U^T dO), and, causal,
//      its queries' partial-block C and U (it owns those too).
//   2. Reduction: the slots are added into dk, dv (by key tiles) and into the pair's group
//      sum gradients (by pair) in task order, so every thread count adds the same numbers
//      in the same order: results are bitwise the same for any thread count.
//   3. Scatter: each member key takes its group's sum gradient (causal: its block's, plus
//      the partial-block terms of the later window starts of its block, a suffix sum).
// Tasks are processed in waves of slots so that the workspace stays O(Nk (d + dv)) per
// pair; the wave size changes no result (the order of additions is the task order).
#include "cpu/hybrid.hpp"
#include "cpu/modes.hpp"
#include "cpu/parallel.hpp"
#include "cpu/reduce.hpp"

#include <algorithm>

namespace smyrf::cpu {
namespace hybrid {
namespace {

constexpr int64_t kReduceTile = 256;  // valid keys per reduction task

// What one query task leaves for the reduction.
struct Slot {
    int64_t pair, h, i0, n;
    Rows rows;
    TileGrads g;
};

// Slot storage: floats per slot (the rows' gradients, then the expanded members').
size_t slot_floats(const Desc &d) {
    return (size_t)(max_rows(d) + max_expanded(d)) * (d.qk_dim + d.v_dim);
}

void carve_slot(Slot &sl, const Desc &d, float *base, int32_t *xu) {
    const size_t rows = (size_t)max_rows(d), xrows = (size_t)max_expanded(d);
    sl.g.dk = base;
    sl.g.dv = sl.g.dk + rows * d.qk_dim;
    sl.g.xk = sl.g.dv + rows * d.v_dim;
    sl.g.xv = sl.g.xk + xrows * d.qk_dim;
    sl.g.xu = xu;
}

// Per pair in flight: query segments, group-sum gradients, causal partial-block terms.
struct PairGrad {
    int32_t *seg;      // [Nq + 1] segment starts; nseg segments
    int32_t *tile_first;  // [tiles + 1] the first segment of each query tile
    int64_t nseg;
    double *dksum, *dvsum;  // [G][d], [G][dv]
    float *cp, *up;    // causal: [query heads][Nq] each query's partial-block C and U
};

struct BLayout {
    Buffers fwd;
    PairGrad *grads;     // [chunk]
    int64_t *task_first; // [chunk + 1] each pair slot's first task
    Slot *slots;         // [wave]
    float *slot_base;
    int32_t *slot_xu;    // [wave][max_expanded]
    int64_t wave;
    BackScratch *scratch;  // [threads]
};

int64_t wave_slots(const Desc &d) {
    // Enough slots to keep every thread busy, within 8 MiB (or a few per thread): a wave
    // is written and read back while it is still in the cache, and a small workspace is
    // not mapped (and faulted in) anew by the allocator on every call.
    const size_t per = slot_floats(d), room = (size_t)1 << 21;
    const int64_t most = d.batch * d.kv_heads * d.group_size() * d.q_len;  // tasks at most
    const int64_t w = std::max<int64_t>(4 * d.threads, (int64_t)(room / per));
    return std::max<int64_t>(1, std::min(w, most));
}

BLayout blayout(Arena &arena, const Desc &d) {
    BLayout L;
    L.fwd = layout(arena, d);
    const int64_t chunk = L.fwd.chunk;
    const size_t g = (size_t)max_groups(d);
    L.grads = arena.take<PairGrad>((size_t)chunk);
    L.task_first = arena.take<int64_t>((size_t)chunk + 1);
    for (int64_t t = 0; t < chunk; t++) {
        PairGrad pg{};
        pg.seg = arena.take<int32_t>((size_t)d.q_len + 1);
        pg.tile_first = arena.take<int32_t>((size_t)(d.q_len + kAttendQueries - 1) / kAttendQueries + 1);
        pg.dksum = arena.take<double>(g * d.qk_dim);
        pg.dvsum = arena.take<double>(g * d.v_dim);
        if (d.causal) {
            pg.cp = arena.take<float>((size_t)d.group_size() * d.q_len);
            pg.up = arena.take<float>((size_t)d.group_size() * d.q_len);
        }
        if (L.grads) L.grads[t] = pg;
    }
    L.wave = wave_slots(d);
    L.slots = arena.take<Slot>((size_t)L.wave);
    L.slot_base = arena.take<float>((size_t)L.wave * slot_floats(d));
    L.slot_xu = arena.take<int32_t>((size_t)(L.wave * max_expanded(d)));
    if (L.slots)
        for (int64_t w = 0; w < L.wave; w++)
            carve_slot(L.slots[w], d, L.slot_base + w * slot_floats(d),
                       L.slot_xu + w * max_expanded(d));
    L.scratch = per_thread<BackScratch>(arena, d.threads,
                                        [&](Arena &a) { return back_scratch_layout(a, d); });
    return L;
}

// Segments: each tile of kAttendQueries queries (fixed, as in the forward) is cut where the
// windows of its queries drift further apart than the scratch band holds (the forward's
// rule). tile_segments writes the starts of tile m's segments (if `seg`) and returns
// how many there are.
int64_t tile_segments(const Desc &d, const Pair &p, int64_t m, int32_t *seg) {
    const int64_t cap = max_band(d);
    const int64_t i1 = std::min(d.q_len, (m + 1) * kAttendQueries);
    int64_t n = 0;
    for (int64_t i = m * kAttendQueries; i < i1;) {
        if (seg) seg[n] = (int32_t)i;
        n++;
        const int64_t s = window_range(d, p, i).s;
        int64_t e = i + 1;
        while (e < i1 && window_range(d, p, e).e - s <= cap) e++;
        i = e;
    }
    return n;
}

SMYRF_VECTOR_CLONES
void add_row(float *dst, const float *src, int64_t n) {
    for (int64_t x = 0; x < n; x++) dst[x] += src[x];
}

// Adds the slots [w0, w1) (all of pair slot `t`, in task order) to the valid keys
// [u0, u1) of the pair.
void reduce_keys(const Desc &d, const GradArgs &a, const Pair &p, const Slot *slots, int64_t w0, int64_t w1, int64_t u0, int64_t u1) {
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    for (int64_t w = w0; w < w1; w++) {
        const Slot &sl = slots[w];
        const Rows &r = sl.rows;
        auto add = [&](int64_t u, int64_t row) {
            add_row(a.dk.row(p.b, p.hk, p.valid[u]), sl.g.dk + row * dim, dim);
            add_row(a.dv.row(p.b, p.hk, p.valid[u]), sl.g.dv + row * dv, dv);
        };
        // Band rows in [u0, u1), then the sink rows.
        const int64_t s0 = r.c.s0;
        const int64_t j0 = std::max<int64_t>(0, u0 - s0), j1 = std::min(r.c.band, u1 - s0);
        for (int64_t j = j0; j < j1; j++) add(s0 + j, r.fixed + j);
        for (int64_t x = 0; x < r.sinks; x++)
            if (r.sink_key[x] >= u0 && r.sink_key[x] < u1) add(r.sink_key[x], r.groups + x);
        for (int64_t x = 0; x < r.expanded; x++) {  // expanded members, in the tile's order
            const int64_t u = sl.g.xu[x];
            if (u < u0 || u >= u1) continue;
            add_row(a.dk.row(p.b, p.hk, p.valid[u]), sl.g.xk + x * dim, dim);
            add_row(a.dv.row(p.b, p.hk, p.valid[u]), sl.g.xv + x * dv, dv);
        }
    }
}

SMYRF_VECTOR_CLONES
void reduce_groups(const Desc &d, const Pair &p, const PairGrad &pg, const Slot *slots,
                   int64_t w0, int64_t w1) {
    const int64_t dim = d.qk_dim, dv = d.v_dim, G = p.groups;
    for (int64_t w = w0; w < w1; w++)
        for (int64_t g = 0; g < G; g++) {
            for (int64_t x = 0; x < dim; x++) pg.dksum[g * dim + x] += slots[w].g.dk[g * dim + x];
            for (int64_t x = 0; x < dv; x++) pg.dvsum[g * dv + x] += slots[w].g.dv[g * dv + x];
        }
}

// Every member key takes its group's sum gradient; causal members also the partial-block
// gradients of the later window starts of their block. Part `x` of the pair: non-causal,
// valid keys [x kReduceTile, (x + 1) kReduceTile); causal, block x. Parts touch disjoint
// keys; `acc` is per-thread float64 scratch of d + dv, `next` of one per query head.
SMYRF_VECTOR_CLONES
void scatter_groups(const Desc &d, const GradArgs &a, const Pair &p, const PairGrad &pg,
                    int64_t x, double *acc, int64_t *next) {
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    auto add = [&](int64_t u, const double *sk, const double *sv) {
        float *k = a.dk.row(p.b, p.hk, p.valid[u]), *v = a.dv.row(p.b, p.hk, p.valid[u]);
        for (int64_t c = 0; c < dim; c++) k[c] += (float)sk[c];
        for (int64_t c = 0; c < dv; c++) v[c] += (float)sv[c];
    };
    if (!d.causal) {
        const int64_t u1 = std::min(p.n_valid, (x + 1) * kReduceTile);
        for (int64_t u = x * kReduceTile; u < u1; u++)
            add(u, pg.dksum + p.label[u] * dim, pg.dvsum + p.label[u] * dv);
        return;
    }
    const int32_t *v = p.valid, *end = p.valid + p.n_valid;
    const int64_t g = x, heads = d.group_size();
    const int64_t u0 = std::lower_bound(v, end, (int32_t)(g * p.block)) - v;
    const int64_t u1 = std::lower_bound(v, end, (int32_t)std::min(d.k_len, (g + 1) * p.block)) - v;
    // Window starts are non-decreasing in the query: per head, the last query whose
    // window starts before u1, then down.
    const auto start = [&](int64_t i) { return window_range(d, p, i).s; };
    for (int64_t hl = 0; hl < heads; hl++) {
        int64_t lo = 0, hi = d.q_len;
        while (lo < hi) {
            const int64_t mid = (lo + hi) / 2;
            if (start(mid) < u1) lo = mid + 1; else hi = mid;
        }
        next[hl] = lo - 1;
    }
    // Suffix sums: member u gets the block's whole-group gradient plus, for the queries
    // whose window starts at a later u' of its block (pk[u'] sums the members before u'),
    // scale C q and U dout, accumulated in float64 in descending order from the former.
    double *rk = acc, *rv = acc + dim;
    std::copy(pg.dksum + g * dim, pg.dksum + (g + 1) * dim, rk);
    std::copy(pg.dvsum + g * dv, pg.dvsum + (g + 1) * dv, rv);
    for (int64_t u = u1 - 1; u >= u0; u--) {
        if (!(u == 0 && d.sinks >= 1)) add(u, rk, rv);
        for (int64_t hl = 0; hl < heads; hl++)
            for (int64_t &i = next[hl]; i >= 0 && start(i) == u; i--) {
                const int64_t at = hl * d.q_len + i;
                const float ck = (float)d.scale * pg.cp[at], cu = pg.up[at];
                if (ck == 0.0f && cu == 0.0f) continue;
                const int64_t h = p.hk * heads + hl;
                const float *q = a.q.row(p.b, h, i), *o = a.dout.row(p.b, h, i);
                for (int64_t c = 0; c < dim; c++) rk[c] += ck * q[c];
                for (int64_t c = 0; c < dv; c++) rv[c] += cu * o[c];
            }
    }
}

}  // namespace
}  // namespace hybrid

size_t hybrid_backward_workspace(const Desc &d) { return layout_bytes(hybrid::blayout, d); }

void hybrid_backward_run(const Desc &d, const GradArgs &g, void *workspace) {
    using namespace hybrid;
    Arena arena(workspace);
    const BLayout L = blayout(arena, d);
    const int64_t pairs = d.batch * d.kv_heads, heads = d.group_size();
    const int64_t dim = d.qk_dim, dv = d.v_dim;
    // The forward's build reads q, k, v, key_mask only.
    Args fa;
    fa.q = g.q, fa.k = g.k, fa.v = g.v, fa.out = g.out;
    fa.key_mask = g.key_mask, fa.lse = nullptr;

    for (int64_t first = 0; first < pairs; first += L.fwd.chunk) {
        const int64_t np = std::min(L.fwd.chunk, pairs - first);
        build_pairs(d, fa, L.fwd, first, np);
        // Zero dk, dv and the group gradients of the pairs; cut the query segments.
        const int64_t ktiles = (d.k_len + kReduceTile - 1) / kReduceTile;
        const int64_t qtiles = (d.q_len + kAttendQueries - 1) / kAttendQueries;
        parallel_for(np * (ktiles + qtiles), d.threads, [&](int64_t task, int) {
            const int64_t t = task / (ktiles + qtiles), x = task % (ktiles + qtiles);
            const Pair &p = L.fwd.pairs[t];
            PairGrad &pg = L.grads[t];
            if (x >= ktiles) {  // segment count of query tile x - ktiles
                pg.tile_first[x - ktiles + 1] = (int32_t)tile_segments(d, p, x - ktiles, nullptr);
                return;
            }
            const int64_t j1 = std::min(d.k_len, (x + 1) * kReduceTile);
            for (int64_t j = x * kReduceTile; j < j1; j++) {
                std::fill(g.dk.row(p.b, p.hk, j), g.dk.row(p.b, p.hk, j) + dim, 0.0f);
                std::fill(g.dv.row(p.b, p.hk, j), g.dv.row(p.b, p.hk, j) + dv, 0.0f);
            }
            if (x == 0) {
                const size_t G = (size_t)std::max<int64_t>(p.groups, 0);
                std::fill(pg.dksum, pg.dksum + G * dim, 0.0);
                std::fill(pg.dvsum, pg.dvsum + G * dv, 0.0);
            }
        });
        for (int64_t t = 0; t < np; t++) {
            PairGrad &pg = L.grads[t];
            pg.tile_first[0] = 0;
            for (int64_t m = 0; m < qtiles; m++) pg.tile_first[m + 1] += pg.tile_first[m];
            pg.nseg = pg.tile_first[qtiles];
            pg.seg[pg.nseg] = (int32_t)d.q_len;
        }
        parallel_for(np * qtiles, d.threads, [&](int64_t task, int) {
            const PairGrad &pg = L.grads[task / qtiles];
            const int64_t m = task % qtiles;
            tile_segments(d, L.fwd.pairs[task / qtiles], m, pg.seg + pg.tile_first[m]);
        });
        // Tasks in order: pair slot, query head, segment.
        int64_t total = 0;
        int64_t *off = L.task_first;
        for (int64_t t = 0; t < np; t++) off[t] = total, total += heads * L.grads[t].nseg;
        off[np] = total;
        for (int64_t w0 = 0; w0 < total; w0 += L.wave) {
            const int64_t w1 = std::min(total, w0 + L.wave);
            parallel_for(w1 - w0, d.threads, [&](int64_t x, int thread) {
                const int64_t task = w0 + x;
                const int64_t t = std::upper_bound(off, off + np + 1, task) - off - 1;
                const Pair &p = L.fwd.pairs[t];
                const PairGrad &pg = L.grads[t];
                const int64_t local = task - off[t];
                const int64_t h = p.hk * heads + local / pg.nseg, sgi = local % pg.nseg;
                Slot &sl = L.slots[x];
                sl.pair = t, sl.h = h, sl.i0 = pg.seg[sgi], sl.n = pg.seg[sgi + 1] - pg.seg[sgi];
                const int64_t at = (local / pg.nseg) * d.q_len + sl.i0;
                sl.g.cp = d.causal ? pg.cp + at : nullptr;
                sl.g.up = d.causal ? pg.up + at : nullptr;
                sl.rows = tile_grads(d, g, p, h, sl.i0, sl.n, sl.g, L.scratch[thread]);
            });
            // Reduction by key tiles of each pair, in task order; then the group sums.
            parallel_for(np * (ktiles + 1), d.threads, [&](int64_t task, int) {
                const int64_t t = task / (ktiles + 1), kt = task % (ktiles + 1);
                const int64_t a0 = std::max(w0, off[t]) - w0, a1 = std::min(w1, off[t + 1]) - w0;
                if (a0 >= a1) return;
                const Pair &p = L.fwd.pairs[t];
                if (kt == ktiles) {
                    reduce_groups(d, p, L.grads[t], L.slots, a0, a1);
                    return;
                }
                const int64_t u0 = kt * kReduceTile;
                if (u0 >= p.n_valid) return;
                reduce_keys(d, g, p, L.slots, a0, a1, u0,
                            std::min(p.n_valid, u0 + kReduceTile));
            });
        }
        // Scatter the group gradients to their members, by key tiles or causal blocks.
        const int64_t block = (d.k_len + d.summaries - 1) / d.summaries;
        const int64_t parts = d.causal ? (d.k_len + block - 1) / block
                                       : (d.k_len + kReduceTile - 1) / kReduceTile;
        parallel_for(np * parts, d.threads, [&](int64_t task, int thread) {
            const Pair &p = L.fwd.pairs[task / parts];
            const int64_t x = task % parts;
            if (p.groups == 0 || (d.causal ? x >= p.groups : x * kReduceTile >= p.n_valid)) return;
            const BackScratch sc = L.scratch[thread];
            scatter_groups(d, g, p, L.grads[task / parts], x, sc.f.acc, sc.next);
        });
    }
}

}  // namespace smyrf::cpu
