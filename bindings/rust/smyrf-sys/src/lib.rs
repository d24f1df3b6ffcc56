//! Raw declarations of libsmyrf's stable C ABI, `include/smyrf/smyrf.h`, written by hand.
//!
//! Everything here mirrors the header one to one: the same names, the same values, the
//! same contracts (read the header's comments; they are the documentation). The safe API
//! lives in the `smyrf` crate.
//!
//! C enums are declared as integer type aliases with one constant per enumerator, never
//! as Rust enums: a status or parameter value coming back from C that this crate does not
//! know (a newer library) is then still a valid value, not undefined behaviour.
//!
//! The library is found by the build script: `SMYRF_LIB_DIR` and `SMYRF_INCLUDE_DIR`, or
//! else `pkg-config smyrf`.
#![no_std]
#![allow(non_camel_case_types)]

mod constants;
mod functions;

pub use constants::*;
pub use functions::*;
