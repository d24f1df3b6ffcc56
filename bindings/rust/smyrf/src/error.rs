//! Statuses and the error type.

use std::ffi::{CStr, c_char};
use std::fmt;

use smyrf_sys as sys;

/// A failing `smyrf_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// A value out of range, a bad combination, a slice of the wrong length, ...
    InvalidArgument,
    /// Valid, but not implemented by this backend (or, from this crate, not usable on
    /// host slices).
    Unsupported,
    /// A host or device allocation failed.
    OutOfMemory,
    /// The backend is not built in, or there is no device.
    BackendUnavailable,
    /// The device runtime reported an error.
    Device,
    /// A bug in libsmyrf.
    Internal,
    /// A status this crate does not know (from a newer library), with its code.
    Unknown(u32),
}

impl Status {
    /// The status of a C status code; `None` for `SMYRF_OK`.
    pub fn from_code(code: u32) -> Option<Status> {
        Some(match code {
            sys::SMYRF_OK => return None,
            sys::SMYRF_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::SMYRF_ERR_UNSUPPORTED => Status::Unsupported,
            sys::SMYRF_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::SMYRF_ERR_BACKEND_UNAVAILABLE => Status::BackendUnavailable,
            sys::SMYRF_ERR_DEVICE => Status::Device,
            sys::SMYRF_ERR_INTERNAL => Status::Internal,
            other => Status::Unknown(other),
        })
    }

    /// The C status code.
    pub fn code(self) -> u32 {
        match self {
            Status::InvalidArgument => sys::SMYRF_ERR_INVALID_ARGUMENT,
            Status::Unsupported => sys::SMYRF_ERR_UNSUPPORTED,
            Status::OutOfMemory => sys::SMYRF_ERR_OUT_OF_MEMORY,
            Status::BackendUnavailable => sys::SMYRF_ERR_BACKEND_UNAVAILABLE,
            Status::Device => sys::SMYRF_ERR_DEVICE,
            Status::Internal => sys::SMYRF_ERR_INTERNAL,
            Status::Unknown(code) => code,
        }
    }

    /// The library's English name of the status (`smyrf_status_string`).
    pub fn as_str(self) -> &'static str {
        // SAFETY: smyrf_status_string returns a static string, never NULL.
        unsafe { c_str(sys::smyrf_status_string(self.code())) }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call: the status and the message saying which argument was wrong and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

/// The result of every fallible call of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error raised by this crate itself (a check done before calling C).
    pub(crate) fn new(status: Status, message: String) -> Error {
        Error { status, message }
    }

    /// What kind of failure this is.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The library's message (or this crate's, for checks it makes before calling C).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

/// `Ok` for `SMYRF_OK`; otherwise the error with this thread's last library message. Call
/// it right after the failing C call, before any other libsmyrf call on the thread.
pub(crate) fn check(code: sys::smyrf_status) -> Result<()> {
    match Status::from_code(code) {
        None => Ok(()),
        Some(status) => {
            // SAFETY: the message lives until the next libsmyrf call on this thread; it is
            // copied before any.
            let message = unsafe { c_str(sys::smyrf_last_error_message()) }.to_owned();
            Err(Error { status, message })
        }
    }
}

/// The text of a C string; "" for NULL or for text that is not UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that lives at least for `'a`.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char) -> &'a str {
    if ptr.is_null() {
        return "";
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(ptr) }.to_str().unwrap_or("")
}
