//! The enumerated parameter values: mode, element type, backend, layout.

use smyrf_sys as sys;

/// Defines a fieldless enum over C constants, with conversions to and from the `int64`
/// value a parameter holds.
macro_rules! c_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:path,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The parameter value (the C enumerator).
            pub fn value(self) -> i64 {
                match self {
                    $($name::$variant => $value as i64,)+
                }
            }

            /// The variant whose C enumerator is `value`; `None` for a value this crate
            /// does not know.
            pub fn from_value(value: i64) -> Option<Self> {
                $(if value == $value as i64 {
                    return Some($name::$variant);
                })+
                None
            }
        }
    };
}

c_enum! {
    /// What is computed (`SMYRF_PARAM_MODE`).
    Mode {
        /// The SMYRF algorithm: hashed, balanced clusters (the default).
        Smyrf = sys::SMYRF_MODE_SMYRF,
        /// Exact attention, tiled.
        Dense = sys::SMYRF_MODE_DENSE,
        /// A sliding window and sink keys exactly, the rest summarised by k-means groups.
        Hybrid = sys::SMYRF_MODE_HYBRID,
    }
}

c_enum! {
    /// The element type of q, k, v and out (`SMYRF_PARAM_DTYPE`).
    Dtype {
        /// `f32` (the default).
        F32 = sys::SMYRF_DTYPE_F32,
        /// IEEE binary16, [`F16`](crate::F16).
        F16 = sys::SMYRF_DTYPE_F16,
        /// bfloat16, [`Bf16`](crate::Bf16).
        Bf16 = sys::SMYRF_DTYPE_BF16,
    }
}

c_enum! {
    /// Where the plan runs (`SMYRF_PARAM_BACKEND`).
    Backend {
        /// CUDA when built in and a device exists, else the CPU.
        Auto = sys::SMYRF_BACKEND_AUTO,
        /// The CPU.
        Cpu = sys::SMYRF_BACKEND_CPU,
        /// A CUDA device.
        Cuda = sys::SMYRF_BACKEND_CUDA,
    }
}

c_enum! {
    /// The memory layout of q, k, v and out (`SMYRF_PARAM_LAYOUT`) unless strides are set.
    Layout {
        /// `[batch, heads, tokens, dim]`, contiguous (the default).
        Bhnd = sys::SMYRF_LAYOUT_BHND,
        /// `[batch, tokens, heads, dim]`, contiguous.
        Bnhd = sys::SMYRF_LAYOUT_BNHD,
    }
}
