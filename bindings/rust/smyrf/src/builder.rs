//! A builder for configurations and plans.

use crate::config::Config;
use crate::error::Result;
use crate::kinds::{Backend, Dtype, Layout, Mode};
use crate::param::{Param, Strides};
use crate::plan::Plan;

/// Collects parameter values, then makes a [`Config`] or directly a [`Plan`]. Values are
/// checked when built, in the order they were given; the first refusal is the error,
/// with the library's message naming the parameter.
///
/// Unset parameters keep the C defaults, except the backend: this crate executes on host
/// slices, so the builder starts with [`Backend::Cpu`].
///
/// ```
/// use smyrf::{Builder, Mode};
///
/// let plan = Builder::new().batch(2).heads(8).kv_heads(2).q_len(512).qk_dim(64)
///     .mode(Mode::Smyrf).n_hashes(4).q_cluster_size(64).seed(7).plan()?;
/// assert_eq!(plan.lengths().q, 2 * 8 * 512 * 64);
/// # Ok::<(), smyrf::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Builder {
    values: Vec<(Param, i64)>,
    scale: Option<f64>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// A builder holding the C defaults and the CPU backend.
    pub fn new() -> Builder {
        Builder { values: vec![(Param::Backend, Backend::Cpu.value())], scale: None }
    }

    /// Sets any parameter by its raw value; the typed methods below call this.
    pub fn param(mut self, param: Param, value: i64) -> Builder {
        self.values.push((param, value));
        self
    }

    /// Batch size B.
    pub fn batch(self, batch: i64) -> Builder {
        self.param(Param::Batch, batch)
    }

    /// Query heads H.
    pub fn heads(self, heads: i64) -> Builder {
        self.param(Param::Heads, heads)
    }

    /// Key/value heads (grouped-query attention); must divide H.
    pub fn kv_heads(self, kv_heads: i64) -> Builder {
        self.param(Param::KvHeads, kv_heads)
    }

    /// Query tokens Nq (required).
    pub fn q_len(self, q_len: i64) -> Builder {
        self.param(Param::QLen, q_len)
    }

    /// Key tokens Nk (default Nq).
    pub fn k_len(self, k_len: i64) -> Builder {
        self.param(Param::KLen, k_len)
    }

    /// Query/key dimension d (required).
    pub fn qk_dim(self, qk_dim: i64) -> Builder {
        self.param(Param::QkDim, qk_dim)
    }

    /// Value dimension dv (default d).
    pub fn v_dim(self, v_dim: i64) -> Builder {
        self.param(Param::VDim, v_dim)
    }

    /// What is computed.
    pub fn mode(self, mode: Mode) -> Builder {
        self.param(Param::Mode, mode.value())
    }

    /// Hash rounds R.
    pub fn n_hashes(self, n_hashes: i64) -> Builder {
        self.param(Param::NHashes, n_hashes)
    }

    /// Queries per cluster.
    pub fn q_cluster_size(self, size: i64) -> Builder {
        self.param(Param::QClusterSize, size)
    }

    /// Cap on keys per cluster (0 = no cap).
    pub fn k_cluster_size(self, size: i64) -> Builder {
        self.param(Param::KClusterSize, size)
    }

    /// The bottom-right aligned causal mask.
    pub fn causal(self, causal: bool) -> Builder {
        self.param(Param::Causal, i64::from(causal))
    }

    /// Seed of the hash directions.
    pub fn seed(self, seed: u64) -> Builder {
        self.param(Param::Seed, seed as i64)
    }

    /// Element type of q, k, v and out; execute with slices of the matching [`Element`](crate::Element).
    pub fn dtype(self, dtype: Dtype) -> Builder {
        self.param(Param::Dtype, dtype.value())
    }

    /// Backend (the builder starts with [`Backend::Cpu`]).
    pub fn backend(self, backend: Backend) -> Builder {
        self.param(Param::Backend, backend.value())
    }

    /// CUDA device ordinal.
    pub fn device(self, device: i64) -> Builder {
        self.param(Param::Device, device)
    }

    /// CPU worker threads (0 = as many as the CPUs the process may run on, its affinity
    /// mask); results do not depend on it.
    pub fn threads(self, threads: i64) -> Builder {
        self.param(Param::Threads, threads)
    }

    /// Memory layout of q, k, v and out, for tensors without explicit strides.
    pub fn layout(self, layout: Layout) -> Builder {
        self.param(Param::Layout, layout.value())
    }

    /// HYBRID: keys per query.
    pub fn budget(self, budget: i64) -> Builder {
        self.param(Param::Budget, budget)
    }

    /// HYBRID: sliding window.
    pub fn window(self, window: i64) -> Builder {
        self.param(Param::Window, window)
    }

    /// HYBRID: k-means groups.
    pub fn summaries(self, summaries: i64) -> Builder {
        self.param(Param::Summaries, summaries)
    }

    /// HYBRID: sink keys (0..=2; -1 = derived).
    pub fn sinks(self, sinks: i64) -> Builder {
        self.param(Param::Sinks, sinks)
    }

    /// HYBRID: Lloyd iterations.
    pub fn kmeans_iters(self, iters: i64) -> Builder {
        self.param(Param::KmeansIters, iters)
    }

    /// HYBRID: keys per query spent expanding the heaviest summaries into their members
    /// (-1 = derived from the budget, the default: round(budget / 3); 0 = none; causal
    /// problems, and groups that average more than `expand` keys, do not expand).
    pub fn expand(self, expand: i64) -> Builder {
        self.param(Param::Expand, expand)
    }

    /// Explicit strides of q.
    pub fn q_strides(self, s: Strides) -> Builder {
        self.strides(Param::Q_STRIDES, s)
    }

    /// Explicit strides of k.
    pub fn k_strides(self, s: Strides) -> Builder {
        self.strides(Param::K_STRIDES, s)
    }

    /// Explicit strides of v.
    pub fn v_strides(self, s: Strides) -> Builder {
        self.strides(Param::V_STRIDES, s)
    }

    /// Explicit strides of out.
    pub fn out_strides(self, s: Strides) -> Builder {
        self.strides(Param::OUT_STRIDES, s)
    }

    /// Softmax scale applied to q.k (default `1/sqrt(qk_dim)`); the values accepted are
    /// those of [`Config::set_scale`].
    pub fn scale(mut self, scale: f64) -> Builder {
        self.scale = Some(scale);
        self
    }

    /// A configuration holding the values given.
    pub fn build(&self) -> Result<Config> {
        let mut config = Config::new()?;
        for &(param, value) in &self.values {
            config.set(param, value)?;
        }
        if let Some(scale) = self.scale {
            config.set_scale(scale)?;
        }
        Ok(config)
    }

    /// A plan of the values given.
    pub fn plan(&self) -> Result<Plan> {
        self.build()?.plan()
    }

    fn strides(self, params: [Param; 3], s: Strides) -> Builder {
        self.param(params[0], s.batch).param(params[1], s.head).param(params[2], s.token)
    }
}
