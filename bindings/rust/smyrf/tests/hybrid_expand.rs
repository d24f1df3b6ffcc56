//! HYBRID expansion (`Param::Expand`): keys per query spent expanding the summaries with
//! the most weight into their members. Set, it plans and runs and changes the output of a
//! problem outside the dense limit whose groups fit; a causal problem, or one whose groups
//! average more than `expand` keys, does not expand: its expand keys join the window,
//! which gives the output of expand = 0.

mod common;

use common::{Shape, random};
use smyrf::{Mode, Param};

/// N = 256 keys and a budget of 64 keys per query: far from the dense limit. The budget
/// derives 13 summaries and 2 sinks: with EXPAND the groups fit (256 <= 13 x 24), with
/// NO_FIT they average more than 8 keys.
const SHAPE: Shape =
    Shape { batch: 1, heads: 2, kv_heads: 2, q_len: 256, k_len: 256, qk_dim: 16, v_dim: 16 };
const BUDGET: i64 = 64;
const EXPAND: i64 = 24;
const NO_FIT: i64 = 8;

fn hybrid(expand: i64) -> smyrf::Builder {
    SHAPE.builder().mode(Mode::Hybrid).budget(BUDGET).seed(7).expand(expand)
}

fn run(expand: i64) -> Vec<f32> {
    run_with(hybrid(expand), expand)
}

fn run_with(builder: smyrf::Builder, expand: i64) -> Vec<f32> {
    let plan = builder.plan().unwrap();
    assert_eq!(plan.get(Param::Expand).unwrap(), expand);
    let (budget, window) = (plan.get(Param::Budget).unwrap(), plan.get(Param::Window).unwrap());
    let (summaries, sinks) = (plan.get(Param::Summaries).unwrap(), plan.get(Param::Sinks).unwrap());
    assert_eq!(budget, BUDGET);
    assert_eq!(window + sinks + summaries + expand, budget, "the derived window makes room");
    let (q, k, v) = (random(SHAPE.q(), 11), random(SHAPE.k(), 12), random(SHAPE.v(), 13));
    let mut out = vec![f32::NAN; SHAPE.out()];
    plan.execute(&q, &k, &v, &mut out).unwrap();
    assert!(out.iter().all(|x| x.is_finite()), "expand = {expand}");
    out
}

#[test]
fn expand_defaults_to_derived_and_round_trips() {
    let config = smyrf::Builder::new().build().unwrap();
    assert_eq!(config.get(Param::Expand).unwrap(), -1, "-1: derived from the budget");
    let config = hybrid(EXPAND).build().unwrap();
    assert_eq!(config.get(Param::Expand).unwrap(), EXPAND);
    assert_eq!(Param::Expand.name(), "SMYRF_PARAM_EXPAND");
    let (lower, upper) = Param::Expand.bounds().unwrap();
    assert_eq!((lower, upper), (-1, i64::from(i32::MAX)));
}

#[test]
fn expand_runs_and_changes_the_output() {
    let plain = run(0);
    let expanded = run(EXPAND);
    let differs = plain.iter().zip(&expanded).filter(|(a, b)| a != b).count();
    assert!(differs > 0, "expand = {EXPAND} gave the output of expand = 0");
    // The same plan twice gives the same output.
    assert_eq!(run(EXPAND), expanded);
}

#[test]
fn causal_does_not_expand() {
    let expanded = run_with(hybrid(EXPAND).causal(true), EXPAND);
    assert_eq!(expanded, run_with(hybrid(0).causal(true), 0));
}

#[test]
fn groups_that_do_not_fit_do_not_expand() {
    assert_eq!(run(NO_FIT), run(0));
}
