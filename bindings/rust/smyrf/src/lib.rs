//! Safe Rust API of libsmyrf: SMYRF attention (asymmetric LSH, balanced clusters), dense
//! attention and HYBRID attention through the library's stable C ABI.
//!
//! Make a [`Plan`] once per problem shape with a [`Builder`], then execute it per request
//! on host slices:
//!
//! ```
//! use smyrf::{Builder, Mode};
//!
//! let plan = Builder::new().q_len(256).qk_dim(32).n_hashes(4).q_cluster_size(32).plan()?;
//! let q = vec![0.5f32; plan.lengths().q];
//! let (k, v) = (q.clone(), q.clone());
//! let mut out = vec![0.0f32; plan.lengths().out];
//! plan.execute(&q, &k, &v, &mut out)?;
//! assert!((out[0] - 0.5).abs() < 1e-6);
//! # Ok::<(), smyrf::Error>(())
//! ```
//!
//! [`Plan::backward`] computes the gradients of out with respect to q, k and v from a
//! forward's inputs, out and lse.
//!
//! Every failure is an [`Error`] carrying the library's [`Status`] and its message naming
//! the argument and the reason. The same seed gives the same numbers as the C library and
//! every other binding: they all run the same code.
//!
//! Threads: a [`Plan`] is `Send + Sync` (the C library allows executing one plan from
//! several threads at once); a [`Config`] is `Send` but not `Sync` (a configuration is used
//! from one thread at a time).

mod builder;
mod config;
mod element;
mod error;
mod kinds;
mod param;
mod plan;

pub use builder::Builder;
pub use config::Config;
pub use element::{Bf16, Element, F16};
pub use error::{Error, Result, Status};
pub use kinds::{Backend, Dtype, Layout, Mode};
pub use param::{Param, Strides};
pub use plan::{BackwardExtras, Extras, Forward, Gradients, Lengths, Plan};

/// The version of the loaded library, as `major * 10000 + minor * 100 + patch`.
pub fn version_number() -> u32 {
    smyrf_sys::smyrf_version_number()
}
