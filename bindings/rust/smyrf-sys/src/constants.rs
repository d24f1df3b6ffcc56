//! The header's enum types, enumerators and version macros.

use core::ffi::c_uint;
use core::marker::{PhantomData, PhantomPinned};

/// `SMYRF_VERSION_MAJOR`: the major version of the header these declarations mirror.
pub const SMYRF_VERSION_MAJOR: c_uint = 0;
/// `SMYRF_VERSION_MINOR`.
pub const SMYRF_VERSION_MINOR: c_uint = 1;
/// `SMYRF_VERSION_PATCH`.
pub const SMYRF_VERSION_PATCH: c_uint = 0;
/// `SMYRF_VERSION_NUMBER`: major * 10000 + minor * 100 + patch.
pub const SMYRF_VERSION_NUMBER: c_uint =
    SMYRF_VERSION_MAJOR * 10000 + SMYRF_VERSION_MINOR * 100 + SMYRF_VERSION_PATCH;

// The enums have no negative enumerator, so GCC and Clang give them the type
// `unsigned int`; the values are small, so MSVC's `int` passes the same way.

/// `enum smyrf_status`.
pub type smyrf_status = c_uint;
pub const SMYRF_OK: smyrf_status = 0;
pub const SMYRF_ERR_INVALID_ARGUMENT: smyrf_status = 1;
pub const SMYRF_ERR_UNSUPPORTED: smyrf_status = 2;
pub const SMYRF_ERR_OUT_OF_MEMORY: smyrf_status = 3;
pub const SMYRF_ERR_BACKEND_UNAVAILABLE: smyrf_status = 4;
pub const SMYRF_ERR_DEVICE: smyrf_status = 5;
pub const SMYRF_ERR_INTERNAL: smyrf_status = 6;

/// `enum smyrf_param`.
pub type smyrf_param = c_uint;
pub const SMYRF_PARAM_BATCH: smyrf_param = 0;
pub const SMYRF_PARAM_HEADS: smyrf_param = 1;
pub const SMYRF_PARAM_KV_HEADS: smyrf_param = 2;
pub const SMYRF_PARAM_Q_LEN: smyrf_param = 3;
pub const SMYRF_PARAM_K_LEN: smyrf_param = 4;
pub const SMYRF_PARAM_QK_DIM: smyrf_param = 5;
pub const SMYRF_PARAM_V_DIM: smyrf_param = 6;
pub const SMYRF_PARAM_MODE: smyrf_param = 7;
pub const SMYRF_PARAM_N_HASHES: smyrf_param = 8;
pub const SMYRF_PARAM_Q_CLUSTER_SIZE: smyrf_param = 9;
pub const SMYRF_PARAM_K_CLUSTER_SIZE: smyrf_param = 10;
pub const SMYRF_PARAM_CAUSAL: smyrf_param = 11;
pub const SMYRF_PARAM_SEED: smyrf_param = 12;
pub const SMYRF_PARAM_DTYPE: smyrf_param = 13;
pub const SMYRF_PARAM_BACKEND: smyrf_param = 14;
pub const SMYRF_PARAM_DEVICE: smyrf_param = 15;
pub const SMYRF_PARAM_THREADS: smyrf_param = 16;
pub const SMYRF_PARAM_LAYOUT: smyrf_param = 17;
pub const SMYRF_PARAM_BUDGET: smyrf_param = 18;
pub const SMYRF_PARAM_WINDOW: smyrf_param = 19;
pub const SMYRF_PARAM_SUMMARIES: smyrf_param = 20;
pub const SMYRF_PARAM_SINKS: smyrf_param = 21;
pub const SMYRF_PARAM_KMEANS_ITERS: smyrf_param = 22;
pub const SMYRF_PARAM_Q_STRIDE_BATCH: smyrf_param = 23;
pub const SMYRF_PARAM_Q_STRIDE_HEAD: smyrf_param = 24;
pub const SMYRF_PARAM_Q_STRIDE_TOKEN: smyrf_param = 25;
pub const SMYRF_PARAM_K_STRIDE_BATCH: smyrf_param = 26;
pub const SMYRF_PARAM_K_STRIDE_HEAD: smyrf_param = 27;
pub const SMYRF_PARAM_K_STRIDE_TOKEN: smyrf_param = 28;
pub const SMYRF_PARAM_V_STRIDE_BATCH: smyrf_param = 29;
pub const SMYRF_PARAM_V_STRIDE_HEAD: smyrf_param = 30;
pub const SMYRF_PARAM_V_STRIDE_TOKEN: smyrf_param = 31;
pub const SMYRF_PARAM_OUT_STRIDE_BATCH: smyrf_param = 32;
pub const SMYRF_PARAM_OUT_STRIDE_HEAD: smyrf_param = 33;
pub const SMYRF_PARAM_OUT_STRIDE_TOKEN: smyrf_param = 34;
pub const SMYRF_PARAM_EXPAND: smyrf_param = 35;

/// `enum smyrf_mode` (the value of `SMYRF_PARAM_MODE`).
pub type smyrf_mode = c_uint;
pub const SMYRF_MODE_SMYRF: smyrf_mode = 0;
pub const SMYRF_MODE_DENSE: smyrf_mode = 1;
pub const SMYRF_MODE_HYBRID: smyrf_mode = 2;

/// `enum smyrf_dtype` (the value of `SMYRF_PARAM_DTYPE`).
pub type smyrf_dtype = c_uint;
pub const SMYRF_DTYPE_F32: smyrf_dtype = 0;
pub const SMYRF_DTYPE_F16: smyrf_dtype = 1;
pub const SMYRF_DTYPE_BF16: smyrf_dtype = 2;

/// `enum smyrf_backend` (the value of `SMYRF_PARAM_BACKEND`).
pub type smyrf_backend = c_uint;
pub const SMYRF_BACKEND_AUTO: smyrf_backend = 0;
pub const SMYRF_BACKEND_CPU: smyrf_backend = 1;
pub const SMYRF_BACKEND_CUDA: smyrf_backend = 2;

/// `enum smyrf_layout` (the value of `SMYRF_PARAM_LAYOUT`).
pub type smyrf_layout = c_uint;
pub const SMYRF_LAYOUT_BHND: smyrf_layout = 0;
pub const SMYRF_LAYOUT_BNHD: smyrf_layout = 1;

/// `smyrf_config`: an opaque configuration, only ever behind a pointer.
#[repr(C)]
pub struct smyrf_config {
    _opaque: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `smyrf_plan`: an opaque plan, only ever behind a pointer.
#[repr(C)]
pub struct smyrf_plan {
    _opaque: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, PhantomPinned)>,
}
