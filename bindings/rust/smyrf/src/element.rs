//! The element types a plan executes on: `f32`, [`F16`] and [`Bf16`].

use crate::kinds::Dtype;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for super::F16 {}
    impl Sealed for super::Bf16 {}
}

/// An element type of q, k, v and out. A plan executes only on the type of its
/// [`Dtype`]; implemented for `f32`, [`F16`] and [`Bf16`] and nothing else.
pub trait Element: Copy + sealed::Sealed {
    /// The dtype whose memory layout this type has.
    const DTYPE: Dtype;
}

impl Element for f32 {
    const DTYPE: Dtype = Dtype::F32;
}

/// An IEEE binary16 value, stored as its bits (the library converts to f32 inside).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct F16(pub u16);

impl Element for F16 {
    const DTYPE: Dtype = Dtype::F16;
}

/// A bfloat16 value, stored as its bits (the upper half of an f32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl Element for Bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
}

/// `value >> shift` rounded to nearest, ties to even (`shift` in 1..32).
fn shift_round_even(value: u32, shift: u32) -> u32 {
    let kept = value >> shift;
    let rest = value & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rest > half || (rest == half && kept & 1 == 1) { kept + 1 } else { kept }
}

impl F16 {
    /// The nearest binary16 value (ties to even; overflow gives infinity, NaN stays NaN).
    pub fn from_f32(x: f32) -> F16 {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exponent = ((bits >> 23) & 0xff) as i32;
        let mantissa = bits & 0x7f_ffff;
        if exponent == 0xff {
            let nan = if mantissa != 0 { 0x200 } else { 0 };
            return F16(sign | 0x7c00 | nan);
        }
        let half_exponent = exponent - 127 + 15;
        if half_exponent >= 0x1f {
            return F16(sign | 0x7c00);
        }
        if half_exponent >= 1 {
            // Exponent and mantissa rounded together: a carry bumps the exponent (to
            // infinity at the top).
            let combined = ((half_exponent as u32) << 23) | mantissa;
            return F16(sign | shift_round_even(combined, 13) as u16);
        }
        // Subnormal in binary16: the 24-bit significand in units of 2^-24.
        let shift = (14 - half_exponent) as u32;
        if shift > 24 {
            return F16(sign);
        }
        F16(sign | shift_round_even(mantissa | 0x80_0000, shift) as u16)
    }

    /// The exact f32 value.
    pub fn to_f32(self) -> f32 {
        let sign = u32::from(self.0 & 0x8000) << 16;
        let exponent = u32::from((self.0 >> 10) & 0x1f);
        let mantissa = u32::from(self.0 & 0x3ff);
        match exponent {
            0 => {
                let magnitude = mantissa as f32 * f32::powi(2.0, -24);
                if sign != 0 { -magnitude } else { magnitude }
            }
            0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
            _ => f32::from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13)),
        }
    }
}

impl Bf16 {
    /// The nearest bfloat16 value (ties to even; NaN stays NaN).
    pub fn from_f32(x: f32) -> Bf16 {
        let bits = x.to_bits();
        if x.is_nan() {
            return Bf16((bits >> 16) as u16 | 0x40);
        }
        Bf16(shift_round_even(bits, 16) as u16)
    }

    /// The exact f32 value.
    pub fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}
