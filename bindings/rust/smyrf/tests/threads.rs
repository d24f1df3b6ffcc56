//! One plan executed from several threads at once gives every thread the single-thread
//! result; `Plan` is `Send + Sync`, `Config` is `Send`.

mod common;

use std::sync::Arc;
use std::thread;

use common::{Shape, random};
use smyrf::{Config, Extras, Mode, Plan};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn plan_is_send_and_sync_config_is_send() {
    assert_send_sync::<Plan>();
    assert_send::<Config>();
    // A config moves to another thread and plans there.
    let mut config = Config::new().unwrap();
    config.set(smyrf::Param::QLen, 16).unwrap();
    config.set(smyrf::Param::QkDim, 4).unwrap();
    let plan = thread::spawn(move || config.plan().unwrap()).join().unwrap();
    assert_eq!(plan.get(smyrf::Param::KLen).unwrap(), 16);
}

#[test]
fn concurrent_execute_on_one_plan() {
    let shape =
        Shape { batch: 2, heads: 4, kv_heads: 4, q_len: 300, k_len: 300, qk_dim: 32, v_dim: 32 };
    let plan = Arc::new(
        shape
            .builder()
            .mode(Mode::Smyrf)
            .n_hashes(4)
            .q_cluster_size(50)
            .seed(99)
            .threads(2)
            .plan()
            .unwrap(),
    );
    let inputs: Vec<[Vec<f32>; 3]> = (0..6u64)
        .map(|i| {
            [random(shape.q(), 3 * i), random(shape.k(), 3 * i + 1), random(shape.v(), 3 * i + 2)]
        })
        .collect();
    let alone: Vec<Vec<f32>> = inputs
        .iter()
        .map(|[q, k, v]| {
            let mut out = vec![0.0f32; shape.out()];
            plan.execute(q, k, v, &mut out).unwrap();
            out
        })
        .collect();

    let inputs = Arc::new(inputs);
    let workers: Vec<_> = (0..6)
        .map(|i| {
            let (plan, inputs) = (Arc::clone(&plan), Arc::clone(&inputs));
            thread::spawn(move || {
                let [q, k, v] = &inputs[i];
                let mut workspace = vec![0u8; plan.lengths().workspace];
                let mut results = Vec::new();
                for round in 0..5 {
                    let mut out = vec![0.0f32; shape.out()];
                    let mut lse = vec![0.0f32; shape.lse()];
                    let extras = Extras {
                        key_mask: None,
                        lse: Some(&mut lse),
                        // Half the calls allocate their own workspace.
                        workspace: (round % 2 == 0).then_some(&mut workspace[..]),
                    };
                    plan.execute_with(q, k, v, &mut out, extras).unwrap();
                    results.push(out);
                }
                results
            })
        })
        .collect();
    for (i, worker) in workers.into_iter().enumerate() {
        for out in worker.join().unwrap() {
            assert!(
                out.iter().zip(&alone[i]).all(|(a, b)| a.to_bits() == b.to_bits()),
                "thread {i}"
            );
        }
    }
}
