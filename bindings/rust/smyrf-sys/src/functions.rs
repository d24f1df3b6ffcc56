//! The header's functions. Those that take no pointer and accept any value are declared
//! `safe`; every other one is unsafe to call and follows the header's contract.

use core::ffi::{c_char, c_double, c_uint, c_void};

use crate::constants::{smyrf_config, smyrf_param, smyrf_plan, smyrf_status};

unsafe extern "C" {
    /// The library's version, `SMYRF_VERSION_NUMBER` of the build that made it.
    pub safe fn smyrf_version_number() -> c_uint;

    /// A static English name for a status ("unknown status" for unknown values). Never NULL.
    pub safe fn smyrf_status_string(status: smyrf_status) -> *const c_char;

    /// The message of the last failed call on this thread ("" if none). Valid until the
    /// next libsmyrf call on the same thread. Never NULL.
    pub safe fn smyrf_last_error_message() -> *const c_char;

    /// The inclusive range `[*lower, *upper]` that `smyrf_config_set` accepts for `p`.
    pub fn smyrf_param_bounds(p: smyrf_param, lower: *mut i64, upper: *mut i64) -> smyrf_status;

    /// The parameter's name as spelled in the header, or NULL for an unknown parameter.
    pub safe fn smyrf_param_name(p: smyrf_param) -> *const c_char;

    /// A new configuration holding every default.
    pub fn smyrf_config_create(cfg: *mut *mut smyrf_config) -> smyrf_status;

    /// Frees a configuration; NULL is a no-op.
    pub fn smyrf_config_destroy(cfg: *mut smyrf_config);

    /// Sets `p`; a value outside its bounds is refused and `cfg` is left unchanged.
    pub fn smyrf_config_set(cfg: *mut smyrf_config, p: smyrf_param, value: i64) -> smyrf_status;

    /// Reads `p` as set (0 for a value still to be derived).
    pub fn smyrf_config_get(
        cfg: *const smyrf_config,
        p: smyrf_param,
        value: *mut i64,
    ) -> smyrf_status;

    /// Sets the softmax scale applied to q.k: a positive value that fp32 represents (from
    /// `FLT_TRUE_MIN` to `FLT_MAX`; the kernels multiply in fp32), or 0 for the default
    /// `1/sqrt(qk_dim)`.
    pub fn smyrf_config_set_scale(cfg: *mut smyrf_config, scale: c_double) -> smyrf_status;

    /// Reads the scale as set (0 = the default).
    pub fn smyrf_config_get_scale(cfg: *const smyrf_config, scale: *mut c_double) -> smyrf_status;

    /// Checks `cfg`, resolves derived values, picks and prepares the backend.
    pub fn smyrf_plan_create(plan: *mut *mut smyrf_plan, cfg: *const smyrf_config) -> smyrf_status;

    /// Frees a plan; NULL is a no-op. Undefined while another thread executes it.
    pub fn smyrf_plan_destroy(plan: *mut smyrf_plan);

    /// The resolved value of `p` in the plan (derived values and strides filled in).
    pub fn smyrf_plan_get(plan: *const smyrf_plan, p: smyrf_param, value: *mut i64)
    -> smyrf_status;

    /// The resolved softmax scale of the plan.
    pub fn smyrf_plan_get_scale(plan: *const smyrf_plan, scale: *mut c_double) -> smyrf_status;

    /// Bytes of scratch memory `smyrf_execute` needs when given a workspace (0 for NULL).
    pub fn smyrf_plan_workspace_size(plan: *const smyrf_plan) -> usize;

    /// "cpu" or "cuda"; "" for NULL. A static string.
    pub fn smyrf_plan_backend_name(plan: *const smyrf_plan) -> *const c_char;

    /// Runs the plan on q, k, v into out (and lse); see the header for every argument.
    /// Safe to call on one plan from several threads at once with distinct outputs.
    pub fn smyrf_execute(
        plan: *const smyrf_plan,
        q: *const c_void,
        k: *const c_void,
        v: *const c_void,
        key_mask: *const u8,
        out: *mut c_void,
        lse: *mut f32,
        workspace: *mut c_void,
        workspace_bytes: usize,
        stream: *mut c_void,
    ) -> smyrf_status;

    /// Bytes of scratch memory `smyrf_execute_backward` needs when given a workspace.
    pub fn smyrf_plan_backward_workspace_size(plan: *const smyrf_plan) -> usize;

    /// The gradients dq, dk, dv of out for the upstream gradient dout, from the forward's
    /// inputs, out and lse (required); see the header for every argument.
    pub fn smyrf_execute_backward(
        plan: *const smyrf_plan,
        q: *const c_void,
        k: *const c_void,
        v: *const c_void,
        key_mask: *const u8,
        out: *const c_void,
        lse: *const f32,
        dout: *const c_void,
        dq: *mut c_void,
        dk: *mut c_void,
        dv: *mut c_void,
        workspace: *mut c_void,
        workspace_bytes: usize,
        stream: *mut c_void,
    ) -> smyrf_status;
}
