//! The safe API computes exactly what the raw C calls compute for the same seed.

mod common;

use std::ffi::c_void;
use std::ptr;

use common::{Shape, c_plan, random};
use smyrf::{Bf16, Builder, Dtype, Extras, F16, Mode};
use smyrf_sys as sys;

const SHAPE: Shape =
    Shape { batch: 2, heads: 4, kv_heads: 2, q_len: 150, k_len: 130, qk_dim: 24, v_dim: 20 };

/// The C parameters of the problem, as (param, value) pairs.
fn c_params(mode: sys::smyrf_mode, dtype: sys::smyrf_dtype) -> Vec<(sys::smyrf_param, i64)> {
    let mut params = SHAPE.c_params();
    params.extend([
        (sys::SMYRF_PARAM_MODE, mode as i64),
        (sys::SMYRF_PARAM_N_HASHES, 3),
        (sys::SMYRF_PARAM_Q_CLUSTER_SIZE, 32),
        (sys::SMYRF_PARAM_CAUSAL, 1),
        (sys::SMYRF_PARAM_SEED, 1234),
        (sys::SMYRF_PARAM_DTYPE, dtype as i64),
        (sys::SMYRF_PARAM_BACKEND, sys::SMYRF_BACKEND_CPU as i64),
        (sys::SMYRF_PARAM_BUDGET, 40),
    ]);
    params
}

/// The same problem through the builder.
fn builder(mode: Mode, dtype: Dtype) -> Builder {
    SHAPE
        .builder()
        .mode(mode)
        .n_hashes(3)
        .q_cluster_size(32)
        .causal(true)
        .seed(1234)
        .dtype(dtype)
        .budget(40)
}

/// One key in seven is padding.
fn mask() -> Vec<u8> {
    (0..SHAPE.batch * SHAPE.k_len).map(|i| u8::from(i % 7 != 3)).collect()
}

/// Runs the problem with nothing but smyrf-sys calls: (out, lse).
fn raw_run<T: Copy + Default>(
    mode: sys::smyrf_mode,
    dtype: sys::smyrf_dtype,
    q: &[T],
    k: &[T],
    v: &[T],
    mask: &[u8],
) -> (Vec<T>, Vec<f32>) {
    let mut out = vec![T::default(); SHAPE.out()];
    let mut lse = vec![0.0f32; SHAPE.lse()];
    // SAFETY: the C contract: live handles, buffers of the sizes of SHAPE.
    unsafe {
        let plan = c_plan(&c_params(mode, dtype));
        let status = sys::smyrf_execute(
            plan,
            q.as_ptr().cast::<c_void>(),
            k.as_ptr().cast::<c_void>(),
            v.as_ptr().cast::<c_void>(),
            mask.as_ptr(),
            out.as_mut_ptr().cast::<c_void>(),
            lse.as_mut_ptr(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        );
        assert_eq!(status, sys::SMYRF_OK);
        sys::smyrf_plan_destroy(plan);
    }
    (out, lse)
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|x| x.to_bits()).collect()
}

/// Every mode, f32, with a mask, lse and a caller workspace.
#[test]
fn f32_matches_the_raw_calls_bit_for_bit() {
    for (mode, c_mode) in [
        (Mode::Smyrf, sys::SMYRF_MODE_SMYRF),
        (Mode::Dense, sys::SMYRF_MODE_DENSE),
        (Mode::Hybrid, sys::SMYRF_MODE_HYBRID),
    ] {
        f32_matches(mode, c_mode);
    }
}

fn f32_matches(mode: Mode, c_mode: sys::smyrf_mode) {
    let (q, k, v) = (random(SHAPE.q(), 1), random(SHAPE.k(), 2), random(SHAPE.v(), 3));
    let mask = mask();
    let (want_out, want_lse) = raw_run(c_mode, sys::SMYRF_DTYPE_F32, &q, &k, &v, &mask);

    let plan = builder(mode, Dtype::F32).plan().unwrap();
    let mut out = vec![0.0f32; SHAPE.out()];
    let mut lse = vec![0.0f32; SHAPE.lse()];
    let extras = Extras { key_mask: Some(&mask), lse: Some(&mut lse), workspace: None };
    plan.execute_with(&q, &k, &v, &mut out, extras).unwrap();
    assert_eq!(bits(&out), bits(&want_out), "{mode:?}");
    assert_eq!(bits(&lse), bits(&want_lse), "{mode:?}");

    // A caller workspace changes nothing.
    let mut workspace = vec![0u8; plan.lengths().workspace];
    let mut again = vec![0.0f32; SHAPE.out()];
    let extras = Extras { key_mask: Some(&mask), lse: None, workspace: Some(&mut workspace) };
    plan.execute_with(&q, &k, &v, &mut again, extras).unwrap();
    assert_eq!(bits(&again), bits(&want_out), "{mode:?} with a workspace");
}

#[test]
fn f16_and_bf16_match_the_raw_calls_bit_for_bit() {
    let (q, k, v) = (random(SHAPE.q(), 4), random(SHAPE.k(), 5), random(SHAPE.v(), 6));
    let mask = mask();

    let half = |x: &[f32]| x.iter().map(|&x| F16::from_f32(x)).collect::<Vec<_>>();
    let (hq, hk, hv) = (half(&q), half(&k), half(&v));
    let raw = |x: &[F16]| x.iter().map(|h| h.0).collect::<Vec<u16>>();
    let (want, _) = raw_run(
        sys::SMYRF_MODE_SMYRF,
        sys::SMYRF_DTYPE_F16,
        &raw(&hq),
        &raw(&hk),
        &raw(&hv),
        &mask,
    );
    let plan = builder(Mode::Smyrf, Dtype::F16).plan().unwrap();
    let mut out = vec![F16::default(); SHAPE.out()];
    let extras = Extras { key_mask: Some(&mask), ..Extras::default() };
    plan.execute_with(&hq, &hk, &hv, &mut out, extras).unwrap();
    assert_eq!(raw(&out), want);

    let brain = |x: &[f32]| x.iter().map(|&x| Bf16::from_f32(x)).collect::<Vec<_>>();
    let (bq, bk, bv) = (brain(&q), brain(&k), brain(&v));
    let raw = |x: &[Bf16]| x.iter().map(|h| h.0).collect::<Vec<u16>>();
    let (want, _) = raw_run(
        sys::SMYRF_MODE_SMYRF,
        sys::SMYRF_DTYPE_BF16,
        &raw(&bq),
        &raw(&bk),
        &raw(&bv),
        &mask,
    );
    let plan = builder(Mode::Smyrf, Dtype::Bf16).plan().unwrap();
    let mut out = vec![Bf16::default(); SHAPE.out()];
    let extras = Extras { key_mask: Some(&mask), ..Extras::default() };
    plan.execute_with(&bq, &bk, &bv, &mut out, extras).unwrap();
    assert_eq!(raw(&out), want);
}

#[test]
fn reduced_precision_is_close_to_f32() {
    let (q, k, v) = (random(SHAPE.q(), 7), random(SHAPE.k(), 8), random(SHAPE.v(), 9));
    let mut want = vec![0.0f32; SHAPE.out()];
    builder(Mode::Smyrf, Dtype::F32).plan().unwrap().execute(&q, &k, &v, &mut want).unwrap();

    let half = |x: &[f32]| x.iter().map(|&x| F16::from_f32(x)).collect::<Vec<_>>();
    let mut out = vec![F16::default(); SHAPE.out()];
    let plan = builder(Mode::Smyrf, Dtype::F16).plan().unwrap();
    plan.execute(&half(&q), &half(&k), &half(&v), &mut out).unwrap();
    let worst = out.iter().zip(&want).map(|(h, &w)| (h.to_f32() - w).abs()).fold(0.0, f32::max);
    assert!(worst < 2e-2, "f16 differs from f32 by {worst}");
}
