/* libsmyrf: SMYRF attention (asymmetric LSH, balanced clusters) behind a stable C ABI.
 *
 * The algorithm every backend computes is defined in docs/algorithm.md. In short: for
 * each (batch, query head) problem, queries and keys are mapped by the XBOX+ transform,
 * projected on seeded random directions, sorted, cut into equal-size clusters, and
 * softmax attention runs densely inside each cluster; several hash rounds are merged by
 * their log-sum-exp. DENSE mode computes exact attention tile by tile; HYBRID mode
 * computes a sliding window plus sink keys exactly and summarises the remaining keys by
 * k-means groups.
 *
 * Usage:
 *   smyrf_config *cfg;  smyrf_config_create(&cfg);
 *   smyrf_config_set(cfg, SMYRF_PARAM_Q_LEN, 4096);  ... (sizes, mode, ...)
 *   smyrf_plan *plan;   smyrf_plan_create(&plan, cfg);  smyrf_config_destroy(cfg);
 *   smyrf_execute(plan, q, k, v, NULL, out, NULL, NULL, 0, NULL);   (per request)
 *   smyrf_plan_destroy(plan);
 *
 * Stability: names and numeric values in this header never change and are never reused.
 * New options are new enum values; a changed signature gets a new name (_v2). No struct
 * layout is public.
 *
 * Error contract: every function that can fail returns a smyrf_status. On failure nothing
 * is written to any output argument (out, lse, a handle pointer), and
 * smyrf_last_error_message() returns, for the calling thread, a message naming the
 * argument and the reason. The library never aborts, exits or prints.
 *
 * Thread safety: configs are plain values (use one from one thread at a time). A plan is
 * immutable after smyrf_plan_create: smyrf_execute may be called on one plan from several
 * threads at once, each call with its own out, lse and workspace buffers. Destroying a
 * plan while another thread executes it is undefined.
 *
 * Reproducibility (CPU backend): the same inputs, plan parameters and seed give bitwise
 * identical out and lse, run after run, whatever SMYRF_PARAM_THREADS is.
 */
#ifndef SMYRF_SMYRF_H
#define SMYRF_SMYRF_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(SMYRF_BUILDING_SHARED)
#define SMYRF_API __declspec(dllexport)
#elif defined(_WIN32) && defined(SMYRF_USING_SHARED)
#define SMYRF_API __declspec(dllimport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define SMYRF_API __attribute__((visibility("default")))
#else
#define SMYRF_API
#endif

/* In C++ the enums get int as a fixed underlying type, so any int a C caller passes is a
 * valid value to check (rather than undefined behaviour). C sees plain enums. */
#ifdef __cplusplus
#define SMYRF_ENUM_BASE : int
#else
#define SMYRF_ENUM_BASE
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SMYRF_VERSION_MAJOR 0
#define SMYRF_VERSION_MINOR 1
#define SMYRF_VERSION_PATCH 0
#define SMYRF_VERSION_NUMBER \
    (SMYRF_VERSION_MAJOR * 10000 + SMYRF_VERSION_MINOR * 100 + SMYRF_VERSION_PATCH)

/* The library's version, SMYRF_VERSION_NUMBER of the build that made it. */
SMYRF_API unsigned smyrf_version_number(void);

/* ---------------------------------------------------------------- status and errors */

typedef enum smyrf_status SMYRF_ENUM_BASE {
    SMYRF_OK = 0,
    SMYRF_ERR_INVALID_ARGUMENT = 1,    /* a NULL pointer, a value out of range, ... */
    SMYRF_ERR_UNSUPPORTED = 2,         /* valid, but not implemented by this backend */
    SMYRF_ERR_OUT_OF_MEMORY = 3,       /* host or device allocation failed */
    SMYRF_ERR_BACKEND_UNAVAILABLE = 4, /* the backend is not built in, or no device */
    SMYRF_ERR_DEVICE = 5,              /* the device runtime reported an error */
    SMYRF_ERR_INTERNAL = 6             /* a bug in libsmyrf: please report it */
} smyrf_status;

/* A static English name for a status; unknown values give "unknown status". Never NULL. */
SMYRF_API const char *smyrf_status_string(smyrf_status status);

/* The message of the last failed call on this thread ("" if none yet); successful calls
 * leave it as it is. The text stays valid until the next failing call on the same
 * thread. Never NULL. */
SMYRF_API const char *smyrf_last_error_message(void);

/* ---------------------------------------------------------------- parameters */

/* Every parameter is an int64 set with smyrf_config_set; smyrf_param_bounds gives its
 * range. "0 = derived" means the plan computes the value from the others. */
typedef enum smyrf_param SMYRF_ENUM_BASE {
    SMYRF_PARAM_BATCH = 0,           /* B >= 1, default 1 */
    SMYRF_PARAM_HEADS = 1,           /* query heads H >= 1, default 1 */
    SMYRF_PARAM_KV_HEADS = 2,        /* key/value heads, divides H; 0 = H (default) */
    SMYRF_PARAM_Q_LEN = 3,           /* Nq >= 1, required */
    SMYRF_PARAM_K_LEN = 4,           /* Nk; 0 = Nq (default) */
    SMYRF_PARAM_QK_DIM = 5,          /* d >= 1, required */
    SMYRF_PARAM_V_DIM = 6,           /* dv; 0 = d (default) */
    SMYRF_PARAM_MODE = 7,            /* smyrf_mode, default SMYRF_MODE_SMYRF */
    SMYRF_PARAM_N_HASHES = 8,        /* hash rounds R, default 2 */
    SMYRF_PARAM_Q_CLUSTER_SIZE = 9,  /* queries per cluster cq, default 64 */
    SMYRF_PARAM_K_CLUSTER_SIZE = 10, /* cap on keys per cluster; 0 = no cap (default) */
    SMYRF_PARAM_CAUSAL = 11,         /* 0 or 1; bottom-right aligned mask, default 0 */
    SMYRF_PARAM_SEED = 12,           /* any value (read as uint64 bits), default 0 */
    SMYRF_PARAM_DTYPE = 13,          /* smyrf_dtype of q, k, v, out; default F32 */
    SMYRF_PARAM_BACKEND = 14,        /* smyrf_backend, default AUTO */
    SMYRF_PARAM_DEVICE = 15,         /* CUDA device ordinal, default 0 */
    SMYRF_PARAM_THREADS = 16,        /* CPU worker threads; 0 = as many as the CPUs the
                                        process may run on (the affinity mask of the
                                        thread creating the plan) */
    SMYRF_PARAM_LAYOUT = 17,         /* smyrf_layout of q, k, v, out; default BHND */
    /* HYBRID mode (keys per query = window + sinks + summaries + SMYRF_PARAM_EXPAND). */
    SMYRF_PARAM_BUDGET = 18,         /* keys per query B; 0 = 128, or w + S + G + E
                                        where the window is set (G unset: 26) */
    SMYRF_PARAM_WINDOW = 19,         /* window w; 0 = derived: B - G - S - E */
    SMYRF_PARAM_SUMMARIES = 20,      /* k-means groups G; 0 = derived: max(1, round(B/5)) */
    SMYRF_PARAM_SINKS = 21,          /* sink keys S in 0..2; -1 = derived: 2 (default) */
    SMYRF_PARAM_KMEANS_ITERS = 22,   /* Lloyd iterations I; 0 = default (2) */
    /* Explicit element strides (batch, head, token) of each tensor; the last dimension is
     * always contiguous. 0 = taken from SMYRF_PARAM_LAYOUT. Set all three of a tensor or
     * none. Strides let q, k, v, out be views of larger tensors (e.g. a fused QKV). */
    SMYRF_PARAM_Q_STRIDE_BATCH = 23,
    SMYRF_PARAM_Q_STRIDE_HEAD = 24,
    SMYRF_PARAM_Q_STRIDE_TOKEN = 25,
    SMYRF_PARAM_K_STRIDE_BATCH = 26,
    SMYRF_PARAM_K_STRIDE_HEAD = 27,
    SMYRF_PARAM_K_STRIDE_TOKEN = 28,
    SMYRF_PARAM_V_STRIDE_BATCH = 29,
    SMYRF_PARAM_V_STRIDE_HEAD = 30,
    SMYRF_PARAM_V_STRIDE_TOKEN = 31,
    SMYRF_PARAM_OUT_STRIDE_BATCH = 32,
    SMYRF_PARAM_OUT_STRIDE_HEAD = 33,
    SMYRF_PARAM_OUT_STRIDE_TOKEN = 34,
    /* HYBRID: keys per query E spent on the summaries that weigh most for a query, whose
     * members it then attends exactly (budget = window + sinks + summaries + E); -1 =
     * derived (default): round(B/3), at most B - G - S - 1, and 0 when the window is set.
     * A causal problem, or one whose groups average more than E keys, does not expand:
     * its E keys join the window. */
    SMYRF_PARAM_EXPAND = 35
} smyrf_param;

typedef enum smyrf_mode SMYRF_ENUM_BASE {
    SMYRF_MODE_SMYRF = 0,  /* the paper's algorithm */
    SMYRF_MODE_DENSE = 1,  /* exact attention, tiled (O(N d) memory) */
    SMYRF_MODE_HYBRID = 2  /* window + sinks exact, the rest summarised by k-means groups */
} smyrf_mode;

typedef enum smyrf_dtype SMYRF_ENUM_BASE {
    SMYRF_DTYPE_F32 = 0,
    SMYRF_DTYPE_F16 = 1,  /* IEEE binary16; converted to fp32 inside, fp32 accumulation */
    SMYRF_DTYPE_BF16 = 2  /* bfloat16; same */
} smyrf_dtype;

typedef enum smyrf_backend SMYRF_ENUM_BASE {
    SMYRF_BACKEND_AUTO = 0,  /* CUDA when built in and a device exists, else CPU */
    SMYRF_BACKEND_CPU = 1,
    SMYRF_BACKEND_CUDA = 2
} smyrf_backend;

typedef enum smyrf_layout SMYRF_ENUM_BASE {
    SMYRF_LAYOUT_BHND = 0,  /* [batch, heads, tokens, dim], contiguous */
    SMYRF_LAYOUT_BNHD = 1   /* [batch, tokens, heads, dim], contiguous */
} smyrf_layout;

/* The inclusive range [*lower, *upper] that smyrf_config_set accepts for p. */
SMYRF_API smyrf_status smyrf_param_bounds(smyrf_param p, int64_t *lower, int64_t *upper);

/* The parameter's name as spelled in this header ("SMYRF_PARAM_Q_LEN"), or NULL. */
SMYRF_API const char *smyrf_param_name(smyrf_param p);

/* ---------------------------------------------------------------- configuration */

typedef struct smyrf_config smyrf_config;

/* A new configuration holding every default. */
SMYRF_API smyrf_status smyrf_config_create(smyrf_config **cfg);
SMYRF_API void smyrf_config_destroy(smyrf_config *cfg); /* NULL is a no-op */

/* Sets p. A value outside smyrf_param_bounds is refused and cfg is left unchanged;
 * combinations are checked by smyrf_plan_create. */
SMYRF_API smyrf_status smyrf_config_set(smyrf_config *cfg, smyrf_param p, int64_t value);
SMYRF_API smyrf_status smyrf_config_get(const smyrf_config *cfg, smyrf_param p,
                                        int64_t *value);

/* Softmax temperature applied to q.k: a positive value that fp32 represents (from
 * FLT_TRUE_MIN to FLT_MAX; the kernels multiply in fp32). 0 restores the default
 * 1/sqrt(qk_dim). */
SMYRF_API smyrf_status smyrf_config_set_scale(smyrf_config *cfg, double scale);
SMYRF_API smyrf_status smyrf_config_get_scale(const smyrf_config *cfg, double *scale);

/* ---------------------------------------------------------------- plans */

typedef struct smyrf_plan smyrf_plan;

/* Checks the configuration, resolves derived values, picks the backend and prepares it.
 * The plan copies what it needs: cfg may be destroyed or changed afterwards. Parameters
 * of another mode (HYBRID's in SMYRF or DENSE mode, N_HASHES and the cluster sizes
 * outside SMYRF mode) are neither checked nor used, so one config can serve several
 * modes. */
SMYRF_API smyrf_status smyrf_plan_create(smyrf_plan **plan, const smyrf_config *cfg);
SMYRF_API void smyrf_plan_destroy(smyrf_plan *plan); /* NULL is a no-op */

/* The resolved value of p in the plan (derived values filled in, e.g. K_LEN, WINDOW).
 * Outside their mode, HYBRID's parameters read 0; N_HASHES and the cluster sizes read as
 * set or derived, unchecked and unused. */
SMYRF_API smyrf_status smyrf_plan_get(const smyrf_plan *plan, smyrf_param p, int64_t *value);
SMYRF_API smyrf_status smyrf_plan_get_scale(const smyrf_plan *plan, double *scale);

/* Bytes of scratch memory smyrf_execute needs when given a workspace (any alignment). */
SMYRF_API size_t smyrf_plan_workspace_size(const smyrf_plan *plan);

/* "cpu" or "cuda"; "" for NULL. */
SMYRF_API const char *smyrf_plan_backend_name(const smyrf_plan *plan);

/* Runs the plan.
 *   q        [B, H, Nq, d]   (or the layout / strides of the plan), dtype of the plan
 *   k        [B, Hkv, Nk, d]
 *   v        [B, Hkv, Nk, dv]
 *   key_mask [B, Nk] contiguous, nonzero = valid key; NULL = every key valid
 *   out      [B, H, Nq, dv]  written completely; must not overlap q, k, v, key_mask, lse
 *   lse      [B, H, Nq] contiguous fp32 log-sum-exp of each row (-inf for a row with no
 *            allowed key, whose out row is zeros); NULL = not wanted
 *   workspace, workspace_bytes: scratch of at least smyrf_plan_workspace_size bytes, or
 *            NULL (and 0) to let the call allocate its own
 *   stream   cudaStream_t for the CUDA backend (NULL = the default stream); ignored on CPU
 * Pointers are host pointers for the CPU backend and device pointers for CUDA (the
 * workspace too). q, k, v and out must be aligned to their elements (4 bytes for fp32, 2
 * for fp16 and bf16), lse to 4 bytes; key_mask and the workspace may sit anywhere. Overlap
 * is judged on the bytes from a tensor's first element to its last: an output must not
 * share that range with an input or another output, even where strided rows interleave
 * without touching. On CUDA the call only enqueues work on the stream and returns without
 * synchronising: out and lse are ready when the stream gets there; without a workspace
 * it allocates and frees one on the stream (cudaMallocAsync, cudaFreeAsync). A CUDA plan's
 * calls (create, execute, backward, destroy) make its SMYRF_PARAM_DEVICE the thread's
 * current device while they run and set the previous one back with cudaSetDevice, which
 * since CUDA 12 creates that device's primary context if it had none; a thread that never
 * chose a device counts as on device 0. So with a plan on another device, call
 * cudaSetDevice(plan's device) in the thread first (PyTorch's torch.cuda.set_device), or
 * device 0 gets a context of its own. */
SMYRF_API smyrf_status smyrf_execute(const smyrf_plan *plan, const void *q, const void *k,
                                     const void *v, const uint8_t *key_mask, void *out,
                                     float *lse, void *workspace, size_t workspace_bytes,
                                     void *stream);

/* ---------------------------------------------------------------- gradients */

/* Bytes of scratch memory smyrf_execute_backward needs when given a workspace (any
 * alignment). */
SMYRF_API size_t smyrf_plan_backward_workspace_size(const smyrf_plan *plan);

/* The gradients of out with respect to q, k and v (docs/algorithm.md, "Backward"): the
 * clusters (SMYRF) or groups and labels (HYBRID) are recomputed from the seed and are
 * constants of the forward; no gradient flows through them.
 *   q, k, v, key_mask  the forward's inputs (same plan, same layout and strides)
 *   out, lse           the forward's outputs for those inputs (lse is required)
 *   dout               [B, H, Nq, dv], the gradient of the loss with respect to out
 *                      (out's layout and strides)
 *   dq, dk, dv         written completely, with the strides of q, k, v (gaps between
 *                      strided rows are left as they are); with GQA, dk and dv sum over
 *                      the query heads of each group; padded keys get zeros, and so do
 *                      the dq rows of queries with no allowed key (lse = -inf).
 *                      They must not overlap any input or each other, and the strides
 *                      of q, k and v must not make rows overlap (a forward may read
 *                      such rows; the backward refuses to write them).
 *   workspace, workspace_bytes, stream: as for smyrf_execute (use
 *                      smyrf_plan_backward_workspace_size).
 * Same error and thread-safety contract as smyrf_execute. */
SMYRF_API smyrf_status smyrf_execute_backward(const smyrf_plan *plan, const void *q,
                                              const void *k, const void *v,
                                              const uint8_t *key_mask, const void *out,
                                              const float *lse, const void *dout, void *dq,
                                              void *dk, void *dv, void *workspace,
                                              size_t workspace_bytes, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* SMYRF_SMYRF_H */
