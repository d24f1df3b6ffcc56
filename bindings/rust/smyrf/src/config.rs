//! The configuration handle (`smyrf_config`).

use std::ptr::{self, NonNull};

use smyrf_sys as sys;

use crate::builder::Builder;
use crate::error::{Error, Result, Status, check};
use crate::param::Param;
use crate::plan::Plan;

/// A C configuration: every parameter and the scale, checked one by one as they are set
/// and as a whole by [`Config::plan`]. Most programs use a [`Builder`] instead.
///
/// `Send` but not `Sync`: the C library lets a configuration move between threads but
/// not be used from two at once.
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<smyrf::Config>();
/// ```
#[derive(Debug)]
pub struct Config {
    raw: NonNull<sys::smyrf_config>,
}

// SAFETY: a configuration is a plain value with no thread affinity; `&mut self` on every
// setter and the missing `Sync` keep it to one thread at a time.
unsafe impl Send for Config {}

impl Config {
    /// A configuration holding every default.
    pub fn new() -> Result<Config> {
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is valid for a write.
        check(unsafe { sys::smyrf_config_create(&mut raw) })?;
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::new(Status::Internal, "smyrf_config_create returned NULL".to_owned())
        })?;
        Ok(Config { raw })
    }

    /// A builder for a configuration or a plan.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Sets `param`. A value outside [`Param::bounds`] is refused and the configuration is
    /// left unchanged; combinations are checked by [`Config::plan`].
    pub fn set(&mut self, param: Param, value: i64) -> Result<()> {
        // SAFETY: `raw` is a live configuration owned by `self`.
        check(unsafe { sys::smyrf_config_set(self.raw.as_ptr(), param.code(), value) })
    }

    /// The value of `param` as set (0 for a value the plan derives).
    pub fn get(&self, param: Param) -> Result<i64> {
        let mut value = 0;
        // SAFETY: `raw` is live; `value` is valid for a write.
        check(unsafe { sys::smyrf_config_get(self.raw.as_ptr(), param.code(), &mut value) })?;
        Ok(value)
    }

    /// Sets the softmax scale applied to q.k: a positive value that f32 represents (from the
    /// smallest subnormal, about 1.4e-45, to `f32::MAX`; the kernels multiply in f32), or 0
    /// for the default `1/sqrt(qk_dim)`. Any other value is refused (`InvalidArgument`).
    pub fn set_scale(&mut self, scale: f64) -> Result<()> {
        // SAFETY: `raw` is a live configuration owned by `self`.
        check(unsafe { sys::smyrf_config_set_scale(self.raw.as_ptr(), scale) })
    }

    /// The scale as set (0 = the default).
    pub fn scale(&self) -> Result<f64> {
        let mut scale = 0.0;
        // SAFETY: `raw` is live; `scale` is valid for a write.
        check(unsafe { sys::smyrf_config_get_scale(self.raw.as_ptr(), &mut scale) })?;
        Ok(scale)
    }

    /// Checks the configuration as a whole and makes a plan of it. The plan keeps what it
    /// needs: the configuration may be changed or dropped afterwards.
    pub fn plan(&self) -> Result<Plan> {
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is valid for a write; the configuration is live.
        check(unsafe { sys::smyrf_plan_create(&mut raw, self.raw.as_ptr()) })?;
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::new(Status::Internal, "smyrf_plan_create returned NULL".to_owned())
        })?;
        Plan::from_raw(raw)
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        // SAFETY: `raw` came from smyrf_config_create and is freed once, here.
        unsafe { sys::smyrf_config_destroy(self.raw.as_ptr()) }
    }
}
