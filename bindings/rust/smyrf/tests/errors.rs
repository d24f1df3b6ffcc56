//! Every status the safe API can produce, each with its message.

mod common;

use common::{Shape, assert_error, huge_allocations_refused, random};
use smyrf::{Backend, Builder, Config, Extras, F16, Mode, Param, Status, Strides};

const SHAPE: Shape =
    Shape { batch: 2, heads: 2, kv_heads: 2, q_len: 32, k_len: 48, qk_dim: 8, v_dim: 8 };

#[test]
fn a_value_out_of_bounds_is_refused_by_name() {
    let mut config = Config::new().unwrap();
    let (lower, upper) = Param::Heads.bounds().unwrap();
    assert_error(
        config.set(Param::Heads, lower - 1),
        Status::InvalidArgument,
        &["SMYRF_PARAM_HEADS"],
    );
    assert_error(
        config.set(Param::Heads, upper + 1),
        Status::InvalidArgument,
        &["SMYRF_PARAM_HEADS"],
    );
    assert_eq!(config.get(Param::Heads).unwrap(), 1, "a refused value leaves the config unchanged");
    assert_error(config.set_scale(-1.0), Status::InvalidArgument, &["scale"]);
    assert_error(config.set_scale(f64::NAN), Status::InvalidArgument, &["scale"]);

    // The builder reports the first refused value.
    let result = Builder::new().q_len(8).qk_dim(8).n_hashes(0).heads(0).plan();
    assert_error(result, Status::InvalidArgument, &["SMYRF_PARAM_N_HASHES"]);
    assert_error(
        Builder::new().q_len(8).qk_dim(8).scale(f64::INFINITY).plan(),
        Status::InvalidArgument,
        &["scale"],
    );
}

#[test]
fn a_bad_combination_is_refused_at_plan_creation() {
    assert_error(Builder::new().qk_dim(8).plan(), Status::InvalidArgument, &["SMYRF_PARAM_Q_LEN"]);
    assert_error(
        Builder::new().q_len(8).qk_dim(8).heads(6).kv_heads(4).plan(),
        Status::InvalidArgument,
        &["SMYRF_PARAM_KV_HEADS"],
    );
    let partial = Builder::new().q_len(8).qk_dim(8).param(Param::QStrideBatch, 64);
    assert_error(partial.plan(), Status::InvalidArgument, &["SMYRF_PARAM_Q_STRIDE_HEAD"]);
    let narrow =
        Builder::new().q_len(8).qk_dim(8).out_strides(Strides { batch: 64, head: 64, token: 4 });
    assert_error(narrow.plan(), Status::InvalidArgument, &["SMYRF_PARAM_OUT_STRIDE_TOKEN"]);
}

#[test]
fn a_backend_not_built_in_is_unavailable() {
    let result = Builder::new().q_len(8).qk_dim(8).backend(Backend::Cuda).plan();
    match result {
        Err(error) if error.status() == Status::BackendUnavailable => {
            assert!(error.message().contains("CUDA"), "{error}");
        }
        Err(error) => panic!("unexpected error {error}"),
        // A CUDA build with a device: this crate refuses host slices on it.
        Ok(plan) => {
            let (q, mut out) = (vec![0.0f32; plan.lengths().q], vec![0.0f32; plan.lengths().out]);
            assert_error(plan.execute(&q, &q, &q, &mut out), Status::Unsupported, &["cpu"]);
        }
    }
}

#[test]
fn slices_are_checked_before_the_call() {
    let plan = SHAPE.builder().mode(Mode::Dense).plan().unwrap();
    let n = plan.lengths();
    assert_eq!(
        (n.q, n.k, n.v, n.out, n.key_mask, n.lse),
        (SHAPE.q(), SHAPE.k(), SHAPE.v(), SHAPE.out(), 96, 128)
    );
    let (q, k, v) = (random(n.q, 1), random(n.k, 2), random(n.v, 3));
    let mut out = vec![0.0f32; n.out];

    let invalid = Status::InvalidArgument;
    assert_error(plan.execute(&q[1..], &k, &v, &mut out), invalid, &["q has", "at least"]);
    assert_error(plan.execute(&q, &k[1..], &v, &mut out), invalid, &["k has"]);
    assert_error(plan.execute(&q, &k, &v[1..], &mut out), invalid, &["v has"]);
    assert_error(plan.execute(&q, &k, &v, &mut out[1..]), invalid, &["out has"]);

    let half = vec![F16::default(); n.q.max(n.k)];
    let mut half_out = vec![F16::default(); n.out];
    assert_error(plan.execute(&half, &half, &half, &mut half_out), invalid, &["F16", "F32"]);

    let mask = vec![1u8; n.key_mask + 1];
    let extras = Extras { key_mask: Some(&mask), ..Extras::default() };
    assert_error(plan.execute_with(&q, &k, &v, &mut out, extras), invalid, &["key_mask"]);

    let mut lse = vec![0.0f32; n.lse - 1];
    let extras = Extras { lse: Some(&mut lse), ..Extras::default() };
    assert_error(plan.execute_with(&q, &k, &v, &mut out, extras), invalid, &["lse"]);

    let mut workspace = vec![0u8; n.workspace - 1];
    let extras = Extras { workspace: Some(&mut workspace), ..Extras::default() };
    assert_error(plan.execute_with(&q, &k, &v, &mut out, extras), invalid, &["workspace"]);

    // Nothing was written by a refused call.
    assert!(out.iter().all(|&x| x == 0.0));
}

/// SMYRF hash directions for 65536 heads of dimension 65536 over 256 rounds need 4 TiB:
/// plan creation fails with OUT_OF_MEMORY. Run only where the kernel refuses such an
/// allocation outright (overcommit mode 0 or 2), never where it would hand it out.
#[test]
fn an_allocation_failure_is_out_of_memory() {
    if !huge_allocations_refused() {
        return;
    }
    let huge = Builder::new().q_len(1).heads(65536).qk_dim(65536).n_hashes(256).mode(Mode::Smyrf);
    assert_error(huge.plan(), Status::OutOfMemory, &[]);
}

#[test]
fn every_status_code_round_trips() {
    let all = [
        Status::InvalidArgument,
        Status::Unsupported,
        Status::OutOfMemory,
        Status::BackendUnavailable,
        Status::Device,
        Status::Internal,
        Status::Unknown(77),
    ];
    let names = ["invalid argument", "unsupported", "out of memory", "backend unavailable"];
    for (i, status) in all.into_iter().enumerate() {
        assert_eq!(Status::from_code(status.code()), Some(status));
        assert!(!status.as_str().is_empty());
        if let Some(name) = names.get(i) {
            assert_eq!(status.as_str(), *name);
        }
    }
    assert_eq!(Status::from_code(0), None);
    assert_eq!(Status::Unknown(77).as_str(), "unknown status");
}

/// HYBRID goes through the generic configuration; the CPU backend plans and executes it.
#[test]
fn hybrid_plans_and_executes() {
    let plan = SHAPE.builder().mode(Mode::Hybrid).budget(16).plan().unwrap();
    assert!(plan.get(Param::Window).unwrap() >= 1);
    let n = plan.lengths();
    let (q, k, v) = (random(n.q, 4), random(n.k, 5), random(n.v, 6));
    let mut out = vec![f32::NAN; n.out];
    plan.execute(&q, &k, &v, &mut out).unwrap();
    assert!(out.iter().all(|x| x.is_finite()));
}
