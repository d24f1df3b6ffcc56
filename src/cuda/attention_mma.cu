// Stage 4 on the tensor cores, for fp16/bf16 with d = dv in {64, 128} and 16-byte aligned
// rows (the common case; attention.cu handles everything else). FlashAttention-2's
// register-resident scheme on mma.sync m16n8k16: each of the 4 warps owns 16 query rows;
// Q stays in registers as A fragments, S = Q K^T lands in registers, the online softmax
// runs there, P is repacked in registers as the A fragment of O += P V. Key and value
// rows are gathered by their sorted positions with cp.async, two tiles deep, so the next
// tile's loads overlap this tile's arithmetic.
//
// Stage 5 is fused at both ends: the rounds merge into the fp32 state (w.acc, w.m, w.l) by
// log-sum-exp as in attention.cu, and the last round (DENSE: its one launch) finishes the
// combine itself: out = acc / l in the caller's dtype, lse = m + log l, or the fallback
// for a query that met no key. The last round never writes the state back, and no
// combine pass runs.
#include "cuda/common.cuh"

#include <climits>

namespace smyrf::gpu {
namespace {

constexpr int kWarps = 4;
constexpr int kBq = 16 * kWarps;  // query rows per block
constexpr int kBk = 32;           // keys per tile
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// ---------------------------------------------------------------- PTX wrappers

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

template <class T> struct Mma;
template <> struct Mma<__half> {
    __device__ static void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    __device__ static uint32_t pack(float lo, float hi) {
        const __half2 h = __floats2half2_rn(lo, hi);
        return *(const uint32_t *)&h;
    }
};
template <> struct Mma<__nv_bfloat16> {
    __device__ static void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    __device__ static uint32_t pack(float lo, float hi) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *(const uint32_t *)&h;
    }
};

// Shared memory: Q [kBq][D+8], K and V [2][kBk][D+8] (the 8-element pad puts the 8 rows
// an ldmatrix reads in 8 different bank groups), key positions [2][kBk], query positions.
template <class T, int D>
constexpr size_t smem_bytes() {
    return sizeof(T) * (size_t)(kBq + 4 * kBk) * (D + 8) + sizeof(int) * (2 * kBk + kBq);
}

// 3 blocks per SM (168 registers, no spills at D = 128): 18% faster than 2 with 64-key
// tiles on the H200 (bench/cuda/NOTES.md).
template <class T, int D>
__global__ void __launch_bounds__(kWarps * 32, 3)
attention_mma_kernel(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v,
                     Problem p, AttentionJob job, const int32_t *__restrict__ valid,
                     const int32_t *__restrict__ n_valid, float *__restrict__ acc,
                     float *__restrict__ gm, float *__restrict__ gl, T *__restrict__ out,
                     float *__restrict__ lse) {
    constexpr int LD = D + 8, CH = D / 8;  // row stride; 16-byte chunks per row
    constexpr int KS = D / 16, NT = kBk / 8, DT = D / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    T *Qs = (T *)smem;
    T *Ks = Qs + kBq * LD;
    T *Vs = Ks + 2 * kBk * LD;
    int *kpos = (int *)(Vs + 2 * kBk * LD);
    int *qpos = kpos + 2 * kBk;

    const BlockWork bw = block_work(p, job, kBq, blockIdx.x, valid, n_valid);
    if (bw.nq == 0) return;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const T *qbase = q + bw.b * p.q.batch + (long long)bw.h * p.q.head;
    const T *kbase = k + bw.b * p.k.batch + (long long)bw.hk * p.k.head;
    const T *vbase = v + bw.b * p.v.batch + (long long)bw.hk * p.v.head;

    for (int r = tid; r < kBq; r += blockDim.x)
        qpos[r] = r < bw.nq ? (bw.qlist ? bw.qlist[r] : bw.q0 + r) : 0;
    __syncthreads();
    for (int e = tid; e < kBq * CH; e += blockDim.x) {
        const int r = e / CH, c = (e % CH) * 8;
        cp_async16(Qs + r * LD + c, qbase + (long long)qpos[r] * p.q.token + c, r < bw.nq);
    }
    const int tiles = (bw.nk + kBk - 1) / kBk;
    auto load_tile = [&](int t) {  // key tile t into buffer t & 1
        const int buf = t & 1, kt0 = t * kBk;
        T *Kb = Ks + buf * kBk * LD, *Vb = Vs + buf * kBk * LD;
        for (int e = tid; e < kBk * CH; e += blockDim.x) {
            const int r = e / CH, c = (e % CH) * 8;
            const bool ok = kt0 + r < bw.nk;
            const long long j = ok ? bw.klist[kt0 + r] : 0;
            cp_async16(Kb + r * LD + c, kbase + j * p.k.token + c, ok);
            cp_async16(Vb + r * LD + c, vbase + j * p.v.token + c, ok);
            if (c == 0) kpos[buf * kBk + r] = (int)j;
        }
        cp_async_commit();
    };
    if (tiles > 0) load_tile(0);  // with Q: one group
    else cp_async_commit();
    if (tiles > 1) load_tile(1);

    const int wrow0 = warp * 16, g = lane >> 2, cq = (lane & 3) * 2;
    const bool active = wrow0 < bw.nq;
    long long limit[2];
    for (int rr = 0; rr < 2; rr++) {
        const int row = wrow0 + g + 8 * rr;
        limit[rr] = p.causal && row < bw.nq ? (long long)qpos[row] + p.causal_offset : LLONG_MAX;
    }
    const float scale2 = p.scale * kLog2e;  // scores in log2 units: exp2 in the softmax
    uint32_t qf[KS][4];
    float o[DT][4];
#pragma unroll
    for (int j = 0; j < DT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m_run[2] = {kNegInf, kNegInf}, l_part[2] = {0.0f, 0.0f};

    for (int t = 0; t < tiles; t++) {
        if (t + 1 < tiles) cp_async_wait<1>();
        else cp_async_wait<0>();
        __syncthreads();  // tile t (and Q) landed for every thread
        const int buf = t & 1, nkt = min(kBk, bw.nk - t * kBk);
        const T *Kb = Ks + buf * kBk * LD, *Vb = Vs + buf * kBk * LD;
        const int *kp = kpos + buf * kBk;
        if (active) {
            if (t == 0) {
#pragma unroll
                for (int ks = 0; ks < KS; ks++)
                    ldsm_x4(qf[ks], Qs + (wrow0 + (lane % 16)) * LD + ks * 16 + (lane / 16) * 8);
            }
            // S = Q K^T: each x4 load gives the B fragments of two 8-key column blocks.
            float s[NT][4];
#pragma unroll
            for (int j = 0; j < NT; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < KS; ks++) {
#pragma unroll
                for (int jp = 0; jp < NT / 2; jp++) {
                    uint32_t b[4];
                    ldsm_x4(b, Kb + (jp * 16 + (lane % 8) + (lane / 16) * 8) * LD + ks * 16 +
                                   ((lane / 8) % 2) * 8);
                    Mma<T>::run(s[2 * jp], qf[ks], b[0], b[1]);
                    Mma<T>::run(s[2 * jp + 1], qf[ks], b[2], b[3]);
                }
            }
            // Online softmax on rows g and g + 8 (a quad of lanes shares each row).
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                float mx = kNegInf;
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int c = j * 8 + cq + e;
                        const bool ok = c < nkt && kp[c] <= limit[rr];
                        const float x = ok ? s[j][2 * rr + e] * scale2 : kNegInf;
                        s[j][2 * rr + e] = x;
                        mx = fmaxf(mx, x);
                    }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float m_new = fmaxf(m_run[rr], mx);
                const float m_use = m_new == kNegInf ? 0.0f : m_new;  // no -inf - -inf
                const float alpha = exp2f(m_run[rr] - m_use);
                float sum = 0.0f;
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const float pe = exp2f(s[j][2 * rr + e] - m_use);
                        s[j][2 * rr + e] = pe;
                        sum += pe;
                    }
                l_part[rr] = l_part[rr] * alpha + sum;
                m_run[rr] = m_new;
#pragma unroll
                for (int j = 0; j < DT; j++) o[j][2 * rr] *= alpha, o[j][2 * rr + 1] *= alpha;
            }
            // O += P V: P's accumulator layout is the A fragment layout of the next mma.
#pragma unroll
            for (int kk = 0; kk < kBk / 16; kk++) {
                if (kk * 16 >= nkt) break;  // P and V are zero there
                uint32_t a[4];
                a[0] = Mma<T>::pack(s[2 * kk][0], s[2 * kk][1]);
                a[1] = Mma<T>::pack(s[2 * kk][2], s[2 * kk][3]);
                a[2] = Mma<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                a[3] = Mma<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
                for (int jp = 0; jp < DT / 2; jp++) {
                    uint32_t b[4];
                    ldsm_x4_trans(b, Vb + (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LD +
                                         jp * 16 + (lane / 16) * 8);
                    Mma<T>::run(o[2 * jp], a, b[0], b[1]);
                    Mma<T>::run(o[2 * jp + 1], a, b[2], b[3]);
                }
            }
        }
        __syncthreads();  // buffer t & 1 is free again
        if (t + 2 < tiles) load_tile(t + 2);
    }
    if (tiles == 0) cp_async_wait<0>();

    // Merge with the earlier rounds; the last round writes out and lse.
    if (!active) return;
    const bool first = job.dense || job.round == 0;
    const unsigned quad = 0xfu << (lane & ~3);
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        float l = l_part[rr];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int row = wrow0 + g + 8 * rr;
        if (row >= bw.nq) continue;
        const int i = qpos[row];
        const long long gi = bw.prob * p.Nq + i;
        float *arow = acc + gi * D;
        const float mr = m_run[rr] * kLn2;
        float top = mr, keep = 0.0f, add = 1.0f, total = l;
        if (!first) {
            const float mg = gm[gi], lg = gl[gi];
            if (l == 0.0f) top = mg, keep = 1.0f, add = 0.0f, total = lg;
            else if (lg != 0.0f) {
                top = fmaxf(mg, mr);
                keep = expf(mg - top), add = expf(mr - top);
                total = lg * keep + l * add;
            }
            __syncwarp(quad);  // the row's four lanes have read gm, gl before one writes them
        }
        float val[DT][2];
#pragma unroll
        for (int j = 0; j < DT; j++) {
            const int c = j * 8 + cq;
            float2 prev = make_float2(0.0f, 0.0f);
            if (keep != 0.0f) prev = *(const float2 *)(arow + c);
            val[j][0] = prev.x * keep + (add != 0.0f ? o[j][2 * rr] * add : 0.0f);
            val[j][1] = prev.y * keep + (add != 0.0f ? o[j][2 * rr + 1] * add : 0.0f);
        }
        if (!job.last) {
#pragma unroll
            for (int j = 0; j < DT; j++) *(float2 *)(arow + j * 8 + cq) = make_float2(val[j][0], val[j][1]);
            if ((lane & 3) == 0) gm[gi] = total != 0.0f ? top : kNegInf, gl[gi] = total;
            continue;
        }
        T *orow = out + bw.b * p.out.batch + (long long)bw.h * p.out.head + (long long)i * p.out.token;
        float lse_v;
        if (total != 0.0f) {
            const float inv = 1.0f / total;
#pragma unroll
            for (int j = 0; j < DT; j++) {
                T pair[2] = {from_f32<T>(val[j][0] * inv), from_f32<T>(val[j][1] * inv)};
                *(uint32_t *)(orow + j * 8 + cq) = *(const uint32_t *)pair;
            }
            lse_v = top + logf(total);
        } else {
            lse_v = fallback_row<4>(p, q, k, v, valid, n_valid, bw.b, bw.h, i, orow, lane & 3, quad);
        }
        if (lse && (lane & 3) == 0) lse[gi] = lse_v;
    }
}

template <class T, int D>
void launch(const Problem &p, const AttentionJob &job, const void *q, const void *k,
            const void *v, void *out, float *lse, const Work &w, cudaStream_t s) {
    const long long blocks = (long long)p.B * p.H * tiles_per_problem(p, job, kBq);
    if (blocks > 0x7fffffffLL)
        fail(SMYRF_ERR_UNSUPPORTED, "CUDA backend: %lld attention blocks exceed one grid", blocks);
    attention_mma_kernel<T, D><<<(unsigned)blocks, kWarps * 32, smem_bytes<T, D>(), s>>>(
        (const T *)q, (const T *)k, (const T *)v, p, job, w.valid, w.n_valid, w.acc, w.m, w.l,
        (T *)out, lse);
    SMYRF_CUDA_LAUNCHED();
}

template <class T>
void dispatch(const Problem &p, const AttentionJob &job, const void *q, const void *k,
              const void *v, void *out, float *lse, const Work &w, cudaStream_t s) {
    if (p.d == 64) launch<T, 64>(p, job, q, k, v, out, lse, w, s);
    else launch<T, 128>(p, job, q, k, v, out, lse, w, s);
}

template <class T, int D>
void prepare() {
    SMYRF_CUDA(cudaFuncSetAttribute(attention_mma_kernel<T, D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)smem_bytes<T, D>()));
}

bool aligned16(const void *ptr) { return (uintptr_t)ptr % 16 == 0; }
bool strides8(const Strides &st) { return st.batch % 8 == 0 && st.head % 8 == 0 && st.token % 8 == 0; }

}  // namespace

bool mma_applies(const Problem &p, smyrf_dtype dtype, const void *q, const void *k,
                 const void *v, const void *out) {
    return dtype != SMYRF_DTYPE_F32 && p.d == p.dv && (p.d == 64 || p.d == 128) &&
           aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out) && strides8(p.q) &&
           strides8(p.k) && strides8(p.v) && strides8(p.out);
}

void attention_mma_prepare(smyrf_dtype dtype, int d) {
    if (d != 64 && d != 128) return;
    if (dtype == SMYRF_DTYPE_F16) d == 64 ? prepare<__half, 64>() : prepare<__half, 128>();
    if (dtype == SMYRF_DTYPE_BF16) d == 64 ? prepare<__nv_bfloat16, 64>() : prepare<__nv_bfloat16, 128>();
}

void attention_mma(const Problem &p, smyrf_dtype dtype, const AttentionJob &job, const void *q,
                   const void *k, const void *v, void *out, float *lse, const Work &w,
                   cudaStream_t s) {
    if (dtype == SMYRF_DTYPE_F16) dispatch<__half>(p, job, q, k, v, out, lse, w, s);
    else dispatch<__nv_bfloat16>(p, job, q, k, v, out, lse, w, s);
}

}  // namespace smyrf::gpu
