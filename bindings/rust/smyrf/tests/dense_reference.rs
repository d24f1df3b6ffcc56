//! DENSE mode (and SMYRF with one cluster) against a naive f64 attention.

mod common;

use common::{Shape, max_diff, naive_attention, random};
use smyrf::{Extras, Layout, Mode, Strides};

const SHAPE: Shape =
    Shape { batch: 2, heads: 6, kv_heads: 3, q_len: 70, k_len: 90, qk_dim: 16, v_dim: 12 };

/// Runs `builder` on BHND inputs with a mask and lse: (out, lse).
fn run(
    builder: smyrf::Builder,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[u8],
) -> (Vec<f32>, Vec<f32>) {
    let plan = builder.plan().unwrap();
    let mut out = vec![f32::NAN; SHAPE.out()];
    let mut lse = vec![f32::NAN; SHAPE.lse()];
    let extras = Extras { key_mask: Some(mask), lse: Some(&mut lse), workspace: None };
    plan.execute_with(q, k, v, &mut out, extras).unwrap();
    (out, lse)
}

fn inputs() -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<u8>) {
    let mask = (0..SHAPE.batch * SHAPE.k_len).map(|i| u8::from(i % 5 != 1)).collect();
    (random(SHAPE.q(), 11), random(SHAPE.k(), 12), random(SHAPE.v(), 13), mask)
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    let worst = max_diff(got, want);
    assert!(worst < 1e-5, "{what}: max difference {worst}");
}

#[test]
fn dense_is_exact_attention() {
    let (q, k, v, mask) = inputs();
    for causal in [false, true] {
        for scale in [None, Some(0.3)] {
            let mut builder = SHAPE.builder().mode(Mode::Dense).causal(causal);
            if let Some(scale) = scale {
                builder = builder.scale(scale);
            }
            let (out, lse) = run(builder, &q, &k, &v, &mask);
            let scale = scale.unwrap_or(1.0 / (SHAPE.qk_dim as f64).sqrt());
            let (want_out, want_lse) =
                naive_attention(&SHAPE, &q, &k, &v, Some(&mask), causal, scale);
            assert_close(&out, &want_out, &format!("out, causal {causal}, scale {scale}"));
            assert_close(&lse, &want_lse, &format!("lse, causal {causal}, scale {scale}"));
        }
    }
}

#[test]
fn smyrf_with_one_cluster_is_exact_attention() {
    let (q, k, v, mask) = inputs();
    let builder =
        SHAPE.builder().mode(Mode::Smyrf).n_hashes(3).q_cluster_size(SHAPE.q_len as i64).seed(5);
    let (out, _) = run(builder, &q, &k, &v, &mask);
    let scale = 1.0 / (SHAPE.qk_dim as f64).sqrt();
    let (want, _) = naive_attention(&SHAPE, &q, &k, &v, Some(&mask), false, scale);
    assert_close(&out, &want, "out");
}

/// BHND [b][h][n][c] to BNHD [b][n][h][c].
fn to_bnhd<T: Copy>(x: &[T], batch: usize, heads: usize, len: usize, dim: usize) -> Vec<T> {
    let mut y = x.to_vec();
    for b in 0..batch {
        for h in 0..heads {
            for n in 0..len {
                let from = ((b * heads + h) * len + n) * dim;
                let to = ((b * len + n) * heads + h) * dim;
                y[to..to + dim].copy_from_slice(&x[from..from + dim]);
            }
        }
    }
    y
}

#[test]
fn bnhd_layout_and_strided_views() {
    let shape =
        Shape { batch: 2, heads: 3, kv_heads: 3, q_len: 40, k_len: 40, qk_dim: 8, v_dim: 8 };
    let (q, k, v) = (random(shape.q(), 21), random(shape.k(), 22), random(shape.v(), 23));
    let scale = 1.0 / 8f64.sqrt();
    let (want, _) = naive_attention(&shape, &q, &k, &v, None, true, scale);
    let want_bnhd = to_bnhd(&want, 2, 3, 40, 8);
    let bnhd = |x: &[f32]| to_bnhd(x, 2, 3, 40, 8);

    let plan = shape.builder().mode(Mode::Dense).causal(true).layout(Layout::Bnhd).plan().unwrap();
    let mut out = vec![0.0f32; shape.out()];
    plan.execute(&bnhd(&q), &bnhd(&k), &bnhd(&v), &mut out).unwrap();
    assert!(max_diff(&out, &want_bnhd) < 1e-5);

    // A fused [B, N, 3, H, d] QKV buffer: q, k and v are views at offsets 0, H*d, 2*H*d.
    let (qb, kb, vb) = (bnhd(&q), bnhd(&k), bnhd(&v));
    let row = 3 * 3 * 8;
    let mut qkv = vec![0.0f32; 2 * 40 * row];
    for t in 0..2 * 40 {
        for (part, src) in [&qb, &kb, &vb].into_iter().enumerate() {
            qkv[t * row + part * 24..][..24].copy_from_slice(&src[t * 24..][..24]);
        }
    }
    let fused = Strides { batch: 40 * row as i64, head: 8, token: row as i64 };
    let plan = shape
        .builder()
        .mode(Mode::Dense)
        .causal(true)
        .layout(Layout::Bnhd)
        .q_strides(fused)
        .k_strides(fused)
        .v_strides(fused)
        .plan()
        .unwrap();
    assert!(plan.lengths().q < qkv.len());
    let mut out = vec![0.0f32; shape.out()];
    plan.execute(&qkv, &qkv[24..], &qkv[48..], &mut out).unwrap();
    assert!(max_diff(&out, &want_bnhd) < 1e-5);
}
