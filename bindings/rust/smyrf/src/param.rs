//! The configuration parameters and their bounds.

use smyrf_sys as sys;

use crate::error::{Result, c_str, check};

/// Defines `Param` over the C parameter constants, with the list of all of them.
macro_rules! params {
    ($($(#[$doc:meta])* $variant:ident = $value:path,)+) => {
        /// A configuration parameter (`smyrf_param`). Each holds an `i64`; see
        /// [`Param::bounds`] for its range and the header for its meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Param {
            $($(#[$doc])* $variant,)+
        }

        impl Param {
            /// Every parameter, in the order of their C values.
            pub const ALL: &'static [Param] = &[$(Param::$variant,)+];

            /// The C enumerator.
            pub fn code(self) -> u32 {
                match self {
                    $(Param::$variant => $value,)+
                }
            }
        }
    };
}

params! {
    /// Batch size B >= 1 (default 1).
    Batch = sys::SMYRF_PARAM_BATCH,
    /// Query heads H >= 1 (default 1).
    Heads = sys::SMYRF_PARAM_HEADS,
    /// Key/value heads, dividing H; 0 = H (default).
    KvHeads = sys::SMYRF_PARAM_KV_HEADS,
    /// Query tokens Nq >= 1, required.
    QLen = sys::SMYRF_PARAM_Q_LEN,
    /// Key tokens Nk; 0 = Nq (default).
    KLen = sys::SMYRF_PARAM_K_LEN,
    /// Query/key dimension d >= 1, required.
    QkDim = sys::SMYRF_PARAM_QK_DIM,
    /// Value dimension dv; 0 = d (default).
    VDim = sys::SMYRF_PARAM_V_DIM,
    /// A [`Mode`](crate::Mode) value (default SMYRF).
    Mode = sys::SMYRF_PARAM_MODE,
    /// Hash rounds R (default 2).
    NHashes = sys::SMYRF_PARAM_N_HASHES,
    /// Queries per cluster (default 64).
    QClusterSize = sys::SMYRF_PARAM_Q_CLUSTER_SIZE,
    /// Cap on keys per cluster; 0 = no cap (default).
    KClusterSize = sys::SMYRF_PARAM_K_CLUSTER_SIZE,
    /// 1 for the bottom-right aligned causal mask (default 0).
    Causal = sys::SMYRF_PARAM_CAUSAL,
    /// Seed of the hash directions, read as u64 bits (default 0).
    Seed = sys::SMYRF_PARAM_SEED,
    /// A [`Dtype`](crate::Dtype) value (default F32).
    Dtype = sys::SMYRF_PARAM_DTYPE,
    /// A [`Backend`](crate::Backend) value (default AUTO).
    Backend = sys::SMYRF_PARAM_BACKEND,
    /// CUDA device ordinal (default 0).
    Device = sys::SMYRF_PARAM_DEVICE,
    /// CPU worker threads; 0 = as many as the CPUs the process may run on (default).
    Threads = sys::SMYRF_PARAM_THREADS,
    /// A [`Layout`](crate::Layout) value (default BHND).
    Layout = sys::SMYRF_PARAM_LAYOUT,
    /// HYBRID: keys per query; 0 = 128, or window + sinks + summaries + expand where the
    /// window is set (summaries unset: 26).
    Budget = sys::SMYRF_PARAM_BUDGET,
    /// HYBRID: window w; 0 = derived.
    Window = sys::SMYRF_PARAM_WINDOW,
    /// HYBRID: k-means groups; 0 = derived.
    Summaries = sys::SMYRF_PARAM_SUMMARIES,
    /// HYBRID: sink keys in 0..=2; -1 = derived (2, the default).
    Sinks = sys::SMYRF_PARAM_SINKS,
    /// HYBRID: Lloyd iterations; 0 = default (2).
    KmeansIters = sys::SMYRF_PARAM_KMEANS_ITERS,
    /// Element stride between batches of q; 0 = from the layout.
    QStrideBatch = sys::SMYRF_PARAM_Q_STRIDE_BATCH,
    /// Element stride between heads of q.
    QStrideHead = sys::SMYRF_PARAM_Q_STRIDE_HEAD,
    /// Element stride between tokens of q.
    QStrideToken = sys::SMYRF_PARAM_Q_STRIDE_TOKEN,
    /// Element stride between batches of k.
    KStrideBatch = sys::SMYRF_PARAM_K_STRIDE_BATCH,
    /// Element stride between heads of k.
    KStrideHead = sys::SMYRF_PARAM_K_STRIDE_HEAD,
    /// Element stride between tokens of k.
    KStrideToken = sys::SMYRF_PARAM_K_STRIDE_TOKEN,
    /// Element stride between batches of v.
    VStrideBatch = sys::SMYRF_PARAM_V_STRIDE_BATCH,
    /// Element stride between heads of v.
    VStrideHead = sys::SMYRF_PARAM_V_STRIDE_HEAD,
    /// Element stride between tokens of v.
    VStrideToken = sys::SMYRF_PARAM_V_STRIDE_TOKEN,
    /// Element stride between batches of out.
    OutStrideBatch = sys::SMYRF_PARAM_OUT_STRIDE_BATCH,
    /// Element stride between heads of out.
    OutStrideHead = sys::SMYRF_PARAM_OUT_STRIDE_HEAD,
    /// Element stride between tokens of out.
    OutStrideToken = sys::SMYRF_PARAM_OUT_STRIDE_TOKEN,
    /// HYBRID: keys per query spent expanding the summaries with the most weight into
    /// their members (budget = window + sinks + summaries + expand); default -1, derived:
    /// round(budget / 3) leaving a window of at least one key, or 0 where the window is
    /// set; 0 = none. A causal
    /// problem, or one whose groups average more than this many keys, does not expand:
    /// these keys join the window.
    Expand = sys::SMYRF_PARAM_EXPAND,
}

impl Param {
    /// The (batch, head, token) stride parameters of q.
    pub(crate) const Q_STRIDES: [Param; 3] =
        [Param::QStrideBatch, Param::QStrideHead, Param::QStrideToken];
    /// The stride parameters of k.
    pub(crate) const K_STRIDES: [Param; 3] =
        [Param::KStrideBatch, Param::KStrideHead, Param::KStrideToken];
    /// The stride parameters of v.
    pub(crate) const V_STRIDES: [Param; 3] =
        [Param::VStrideBatch, Param::VStrideHead, Param::VStrideToken];
    /// The stride parameters of out.
    pub(crate) const OUT_STRIDES: [Param; 3] =
        [Param::OutStrideBatch, Param::OutStrideHead, Param::OutStrideToken];

    /// The name as spelled in the C header, e.g. `"SMYRF_PARAM_Q_LEN"`.
    pub fn name(self) -> &'static str {
        // SAFETY: smyrf_param_name returns a static string (or NULL, read as "").
        unsafe { c_str(sys::smyrf_param_name(self.code())) }
    }

    /// The inclusive range of values [`Config::set`](crate::Config::set) accepts.
    pub fn bounds(self) -> Result<(i64, i64)> {
        let (mut lower, mut upper) = (0, 0);
        // SAFETY: both pointers are valid for a write.
        check(unsafe { sys::smyrf_param_bounds(self.code(), &mut lower, &mut upper) })?;
        Ok((lower, upper))
    }
}

/// Explicit element strides of one tensor; the last dimension is always contiguous.
/// Strides let q, k, v and out be views into larger buffers (e.g. a fused QKV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Strides {
    /// Elements between consecutive batch entries.
    pub batch: i64,
    /// Elements between consecutive heads.
    pub head: i64,
    /// Elements between consecutive tokens (at least the row length).
    pub token: i64,
}
