// HYBRID step 3 on the GPU, the device code and its launch sequence: hybrid_groups.cu
// runs it on the device, tests/cuda/sim on the CPU (it includes this header). See
// hybrid_groups.cu for what the steps compute.
#pragma once

#include "core/random.hpp"
#include "cuda/hybrid.cuh"

#include <climits>

// Internal to the including file (the library, or the simulator test): no symbol clashes.
namespace smyrf::gpu::hy {
namespace {

constexpr int kThreads = 256;

__device__ inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The first of the n ascending values of x that is >= value.
__device__ inline int lower_bound(const int32_t *x, int n, long long value) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (x[mid] < value) lo = mid + 1; else hi = mid;
    }
    return lo;
}

template <class T>
__device__ inline const T *row_of(const T *base, const Strides &s, long long b, int h, int j) {
    return base + b * s.batch + (long long)h * s.head + (long long)j * s.token;
}

// |c|^2 of the centre at c (d floats), by the warp; lane 0 gets it.
__device__ inline float warp_norm(const float *c, int d, int lane) {
    float x = 0.0f;
    for (int i = lane; i < d; i += 32) x = fmaf(c[i], c[i], x);
    return group_sum<32>(x, 0xffffffffu);
}

// Each pair's PairInfo (as cpu/hybrid.cpp, prepare) and the range of its sorts.
__global__ void pair_setup(Problem p, HybridParams hp, const int32_t *__restrict__ n_valid,
                           HybridWork hw) {
    const int pairs = p.B * p.Hkv;
    const int pair = blockIdx.x * blockDim.x + threadIdx.x;
    if (pair >= pairs) return;
    PairInfo in{};
    in.n = n_valid[pair / p.Hkv];
    in.dense = hp.budget >= in.n || hp.window >= in.n;
    in.groups = in.dense ? 0 : p.causal ? ceil_div(p.Nk, hp.block) : min(hp.summaries, in.n);
    // Expansion only where a group can fit (docs/algorithm.md); else its keys widen the window.
    in.expand = !in.dense && !p.causal && (long long)in.n <= (long long)in.groups * hp.expand
                    ? hp.expand : 0;
    in.window = in.dense ? in.n : hp.window + hp.expand - in.expand;
    in.smallest = 0;
    hw.info[pair] = in;
    const long long base = (long long)pair * p.Nk;
    hw.seg_begin[pair] = (int32_t)base;
    hw.seg_end[pair] = (int32_t)(base + (!in.dense && !p.causal ? in.n : 0));
}

// Sort inputs: u for every slot; non-causal, the seeded hash of every valid key,
// h_j = mix64(mix64(mix64(seed) ^ kv_head) ^ j) (j: the key's position).
__global__ void hash_keys(Problem p, HybridParams hp, const int32_t *__restrict__ valid,
                          HybridWork hw) {
    const long long slots = (long long)p.B * p.Hkv * p.Nk;
    for (long long x = blockIdx.x * (long long)blockDim.x + threadIdx.x; x < slots;
         x += (long long)gridDim.x * blockDim.x) {
        const int pair = (int)(x / p.Nk), u = (int)(x % p.Nk), hk = pair % p.Hkv;
        hw.ident[x] = u;
        if (p.causal || u >= hw.info[pair].n) continue;
        const uint64_t base = mix64(mix64(hp.seed) ^ (uint64_t)hk);
        hw.hash_in[x] = mix64(base ^ (uint64_t)valid[(long long)(pair / p.Hkv) * p.Nk + u]);
    }
}

// One block per pair: the G keys first in hash order become the centres in position
// order (that order is the assignment's tie-break), and their norms.
template <class T>
__global__ void __launch_bounds__(kThreads)
init_centres(Problem p, HybridParams hp, const T *__restrict__ k, const int32_t *__restrict__ valid,
             HybridWork hw) {
    const int pair = blockIdx.x, G = hw.info[pair].groups;
    if (p.causal || G == 0) return;
    const long long b = pair / p.Hkv, slot0 = (long long)pair * p.Nk;
    const int hk = pair % p.Hkv;
    const int32_t *drawn = hw.order + slot0;  // valid key indices by hash
    int32_t *init = hw.members + slot0;       // scratch until the first member sort
    for (int t = threadIdx.x; t < G; t += blockDim.x) {
        const int32_t x = drawn[t];
        int rank = 0;  // distinct indices: the rank is the sorted place
        for (int y = 0; y < G; y++) rank += drawn[y] < x;
        init[rank] = x;
    }
    __syncthreads();
    float *centres = hw.centres + (long long)pair * hp.max_groups * p.d;
    for (long long e = threadIdx.x; e < (long long)G * p.d; e += blockDim.x) {
        const int g = (int)(e / p.d), c = (int)(e % p.d);
        centres[e] = to_f32(row_of(k, p.k, b, hk, valid[b * p.Nk + init[g]])[c]);
    }
    __syncthreads();
    const int lane = threadIdx.x % 32;
    for (int g = threadIdx.x / 32; g < G; g += blockDim.x / 32) {
        const float norm = warp_norm(centres + (long long)g * p.d, p.d, lane);
        if (lane == 0) hw.cnorm[(long long)pair * hp.max_groups + g] = norm;
    }
}

// Each valid key's nearest centre: argmin_g |c_g|^2 - 2 k . c_g, the first minimum
// winning (cpu/hybrid_kmeans.cpp, nearest).
template <class T>
__global__ void assign(Problem p, HybridParams hp, const T *__restrict__ k,
                       const int32_t *__restrict__ valid, HybridWork hw) {
    const long long slots = (long long)p.B * p.Hkv * p.Nk;
    for (long long x = blockIdx.x * (long long)blockDim.x + threadIdx.x; x < slots;
         x += (long long)gridDim.x * blockDim.x) {
        const int pair = (int)(x / p.Nk), u = (int)(x % p.Nk);
        const PairInfo in = hw.info[pair];
        if (in.groups == 0 || u >= in.n) continue;
        const long long b = pair / p.Hkv;
        const T *krow = row_of(k, p.k, b, pair % p.Hkv, valid[b * p.Nk + u]);
        const float *cen = hw.centres + (long long)pair * hp.max_groups * p.d;
        const float *cnorm = hw.cnorm + (long long)pair * hp.max_groups;
        float best = 0.0f;
        int label = 0;
        for (int g = 0; g < in.groups; g++) {
            float dot = 0.0f;
            for (int c = 0; c < p.d; c++) dot = fmaf(to_f32(krow[c]), cen[(long long)g * p.d + c], dot);
            const float dist = cnorm[g] + -2.0f * dot;
            if (g == 0 || dist < best) best = dist, label = g;
        }
        hw.label[x] = label;
    }
}

// One block per pair: where each group's members start in the sorted labels, the counts,
// and the smallest non-empty group.
__global__ void __launch_bounds__(kThreads) group_bounds(Problem p, HybridParams hp, HybridWork hw) {
    const int pair = blockIdx.x;
    const PairInfo in = hw.info[pair];
    if (p.causal || in.groups == 0) return;
    const int32_t *labels = hw.label_sorted + (long long)pair * p.Nk;
    int32_t *start = hw.member_start + (long long)pair * (hp.max_groups + 1);
    int32_t *count = hw.count + (long long)pair * hp.max_groups;
    for (int g = threadIdx.x; g <= in.groups; g += blockDim.x) start[g] = lower_bound(labels, in.n, g);
    __syncthreads();
    for (int g = threadIdx.x; g < in.groups; g += blockDim.x) count[g] = start[g + 1] - start[g];
    __syncthreads();
    if (threadIdx.x == 0) {
        int smallest = INT_MAX;
        for (int g = 0; g < in.groups; g++)
            if (count[g] > 0) smallest = min(smallest, count[g]);
        hw.info[pair].smallest = smallest;
    }
}

// One block per (pair, group): the float64 sums of its members' keys (and, final, values)
// in position order. moving: the centre becomes their mean (an empty group keeps its
// centre) and its norm is refreshed; else ksum and vsum are written.
template <class T>
__global__ void __launch_bounds__(128)
group_sums(Problem p, HybridParams hp, const T *__restrict__ k, const T *__restrict__ v,
           const int32_t *__restrict__ valid, bool moving, HybridWork hw) {
    const int pair = (int)(blockIdx.x / hp.max_groups), g = (int)(blockIdx.x % hp.max_groups);
    const PairInfo in = hw.info[pair];
    if (p.causal || g >= in.groups) return;
    const long long b = pair / p.Hkv, slot0 = (long long)pair * p.Nk;
    const int hk = pair % p.Hkv;
    const int32_t *start = hw.member_start + (long long)pair * (hp.max_groups + 1);
    const int m0 = start[g], m1 = start[g + 1];
    const long long at = (long long)pair * hp.max_groups + g;
    const int width = moving ? p.d : p.d + p.dv;
    for (int x = threadIdx.x; x < width; x += blockDim.x) {
        double acc = 0.0;
        for (int m = m0; m < m1; m++) {
            const int j = valid[b * p.Nk + hw.members[slot0 + m]];
            acc += x < p.d ? to_f32(row_of(k, p.k, b, hk, j)[x])
                           : to_f32(row_of(v, p.v, b, hk, j)[x - p.d]);
        }
        if (moving) {
            if (m1 > m0) hw.centres[at * p.d + x] = (float)(acc / (double)(m1 - m0));
        } else if (x < p.d) {
            hw.ksum[at * p.d + x] = (float)acc;
        } else {
            hw.vsum[at * p.dv + x - p.d] = (float)acc;
        }
    }
    if (!moving) return;
    __syncthreads();
    if (threadIdx.x < 32) {
        const float norm = warp_norm(hw.centres + at * p.d, p.d, threadIdx.x);
        if (threadIdx.x == 0) hw.cnorm[at] = norm;
    }
}

// Causal, one block per (pair, positional block g): the block's members are its valid
// keys without the first sink; pk, pv, pn of key u hold the sums of the members before it
// (cpu/hybrid_groups.cpp, block_sums).
template <class T>
__global__ void __launch_bounds__(128)
block_sums(Problem p, HybridParams hp, const T *__restrict__ k, const T *__restrict__ v,
           const int32_t *__restrict__ valid, HybridWork hw) {
    const int pair = (int)(blockIdx.x / hp.max_groups), g = (int)(blockIdx.x % hp.max_groups);
    const PairInfo in = hw.info[pair];
    if (g >= in.groups) return;
    const long long b = pair / p.Hkv, slot0 = (long long)pair * p.Nk;
    const int hk = pair % p.Hkv;
    const int32_t *vl = valid + b * p.Nk;
    const int u0 = lower_bound(vl, in.n, (long long)g * hp.block);
    const int u1 = lower_bound(vl, in.n, min((long long)p.Nk, (long long)(g + 1) * hp.block));
    const long long at = (long long)pair * hp.max_groups + g;
    for (int x = threadIdx.x; x < p.d + p.dv; x += blockDim.x) {
        double acc = 0.0;
        int n = 0;
        for (int u = u0; u < u1; u++) {
            if (x < p.d) hw.pk[(slot0 + u) * p.d + x] = (float)acc;
            else hw.pv[(slot0 + u) * p.dv + x - p.d] = (float)acc;
            if (x == 0) hw.pn[slot0 + u] = n;
            if (u == 0 && hp.sinks >= 1) continue;
            acc += x < p.d ? to_f32(row_of(k, p.k, b, hk, vl[u])[x])
                           : to_f32(row_of(v, p.v, b, hk, vl[u])[x - p.d]);
            n++;
        }
        if (x < p.d) hw.ksum[at * p.d + x] = (float)acc;
        else hw.vsum[at * p.dv + x - p.d] = (float)acc;
        if (x == 0) hw.count[at] = n;
    }
}

// The whole of step 3 on an executor: ex.launch(kernel, grid, block, smem, args...) runs a
// kernel, ex.sort(keys_in, keys_out, values_out, p, hw) the stable segmented sort of every
// non-causal, non-dense pair's valid keys with the indices u as values (launch.cuh: CUDA;
// tests/cuda/sim: the simulator).
template <class Exec, class T>
void build_groups(const Exec &ex, const Problem &p, const HybridParams &hp, const T *k, const T *v,
                  const int32_t *valid, const int32_t *n_valid, const HybridWork &hw) {
    const int pairs = p.B * p.Hkv;
    const long long slots = (long long)pairs * p.Nk;
    const unsigned groups_grid = (unsigned)((long long)pairs * hp.max_groups);
    ex.launch(pair_setup, blocks_for(pairs, 128), 128, 0, p, hp, n_valid, hw);
    if (p.causal) {
        ex.launch(block_sums<T>, groups_grid, 128, 0, p, hp, k, v, valid, hw);
        return;
    }
    ex.launch(hash_keys, stride_grid(slots, kThreads), kThreads, 0, p, hp, valid, hw);
    ex.sort(hw.hash_in, hw.hash_out, hw.order, p, hw);
    ex.launch(init_centres<T>, (unsigned)pairs, kThreads, 0, p, hp, k, valid, hw);
    auto members = [&] {  // each group's members, their start and count
        ex.sort(hw.label, hw.label_sorted, hw.members, p, hw);
        ex.launch(group_bounds, (unsigned)pairs, kThreads, 0, p, hp, hw);
    };
    for (int it = 0; it < hp.iters; it++) {
        if (it > 0) {
            members();
            ex.launch(group_sums<T>, groups_grid, 128, 0, p, hp, k, v, valid, true, hw);
        }
        ex.launch(assign<T>, stride_grid(slots, kThreads), kThreads, 0, p, hp, k, valid, hw);
    }
    members();
    ex.launch(group_sums<T>, groups_grid, 128, 0, p, hp, k, v, valid, false, hw);
}


}  // namespace
}  // namespace smyrf::gpu::hy
