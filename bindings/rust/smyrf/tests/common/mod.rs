//! Helpers shared by the integration tests: seeded inputs and a naive f64 attention.
#![allow(dead_code)] // each test binary uses a different part

/// A problem shape, tensors in BHND layout.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    pub k_len: usize,
    pub qk_dim: usize,
    pub v_dim: usize,
}

impl Shape {
    pub fn q(&self) -> usize {
        self.batch * self.heads * self.q_len * self.qk_dim
    }
    pub fn k(&self) -> usize {
        self.batch * self.kv_heads * self.k_len * self.qk_dim
    }
    pub fn v(&self) -> usize {
        self.batch * self.kv_heads * self.k_len * self.v_dim
    }
    pub fn out(&self) -> usize {
        self.batch * self.heads * self.q_len * self.v_dim
    }
    pub fn lse(&self) -> usize {
        self.batch * self.heads * self.q_len
    }

    /// The shape as C parameters, (param, value) pairs for `smyrf_config_set`.
    pub fn c_params(&self) -> Vec<(smyrf_sys::smyrf_param, i64)> {
        vec![
            (smyrf_sys::SMYRF_PARAM_BATCH, self.batch as i64),
            (smyrf_sys::SMYRF_PARAM_HEADS, self.heads as i64),
            (smyrf_sys::SMYRF_PARAM_KV_HEADS, self.kv_heads as i64),
            (smyrf_sys::SMYRF_PARAM_Q_LEN, self.q_len as i64),
            (smyrf_sys::SMYRF_PARAM_K_LEN, self.k_len as i64),
            (smyrf_sys::SMYRF_PARAM_QK_DIM, self.qk_dim as i64),
            (smyrf_sys::SMYRF_PARAM_V_DIM, self.v_dim as i64),
        ]
    }

    /// A builder with this shape set.
    pub fn builder(&self) -> smyrf::Builder {
        smyrf::Builder::new()
            .batch(self.batch as i64)
            .heads(self.heads as i64)
            .kv_heads(self.kv_heads as i64)
            .q_len(self.q_len as i64)
            .k_len(self.k_len as i64)
            .qk_dim(self.qk_dim as i64)
            .v_dim(self.v_dim as i64)
    }
}

/// Deterministic uniform values in [-1, 1) from a seed (SplitMix64).
pub fn random(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Exact softmax attention in f64 on BHND tensors: (out, lse). `mask`: [B, Nk], nonzero
/// = valid key; causal is bottom-right aligned. A row without allowed keys gets zeros and
/// -inf.
pub fn naive_attention(
    s: &Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[u8]>,
    causal: bool,
    scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; s.out()];
    let mut lse = vec![f64::NEG_INFINITY; s.lse()];
    let group = s.heads / s.kv_heads;
    for b in 0..s.batch {
        for h in 0..s.heads {
            let kh = h / group;
            for i in 0..s.q_len {
                let qi = &q[((b * s.heads + h) * s.q_len + i) * s.qk_dim..][..s.qk_dim];
                let allowed = |j: usize| {
                    mask.is_none_or(|m| m[b * s.k_len + j] != 0)
                        && (!causal || j + s.q_len <= i + s.k_len)
                };
                let scores: Vec<(usize, f64)> = (0..s.k_len)
                    .filter(|&j| allowed(j))
                    .map(|j| {
                        let kj = &k[((b * s.kv_heads + kh) * s.k_len + j) * s.qk_dim..][..s.qk_dim];
                        let dot: f64 = qi.iter().zip(kj).map(|(&x, &y)| x as f64 * y as f64).sum();
                        (j, scale * dot)
                    })
                    .collect();
                if scores.is_empty() {
                    continue;
                }
                let max = scores.iter().map(|&(_, x)| x).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|&(_, x)| (x - max).exp()).sum();
                let row = (b * s.heads + h) * s.q_len + i;
                lse[row] = max + sum.ln();
                let o = &mut out[row * s.v_dim..][..s.v_dim];
                for &(j, x) in &scores {
                    let p = (x - max).exp() / sum;
                    let vj = &v[((b * s.kv_heads + kh) * s.k_len + j) * s.v_dim..][..s.v_dim];
                    for (oc, &vc) in o.iter_mut().zip(vj) {
                        *oc += p * vc as f64;
                    }
                }
            }
        }
    }
    (out, lse)
}

/// The largest absolute difference.
pub fn max_diff(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).map(|(&g, &w)| (g as f64 - w).abs()).fold(0.0, f64::max)
}

/// Asserts `result` failed with `status` and a message containing every one of `words`.
pub fn assert_error<T: std::fmt::Debug>(
    result: smyrf::Result<T>,
    status: smyrf::Status,
    words: &[&str],
) {
    let error: smyrf::Error = result.expect_err("the call should fail");
    eprintln!("{error}");
    assert_eq!(error.status(), status, "{error}");
    for word in words {
        assert!(error.message().contains(word), "{word:?} not in {:?}", error.message());
    }
    assert_eq!(error.to_string(), format!("{}: {}", status.as_str(), error.message()));
    let source: &dyn std::error::Error = &error;
    assert!(source.source().is_none());
}

/// A plan made through the raw C calls from (param, value) pairs, each asserted to
/// succeed; the caller destroys it with `smyrf_plan_destroy`.
pub fn c_plan(params: &[(smyrf_sys::smyrf_param, i64)]) -> *mut smyrf_sys::smyrf_plan {
    // SAFETY: the handles come from the library and go back to it as its header documents.
    unsafe {
        let mut cfg = std::ptr::null_mut();
        assert_eq!(smyrf_sys::smyrf_config_create(&mut cfg), smyrf_sys::SMYRF_OK);
        for &(param, value) in params {
            assert_eq!(smyrf_sys::smyrf_config_set(cfg, param, value), smyrf_sys::SMYRF_OK);
        }
        let mut plan = std::ptr::null_mut();
        assert_eq!(smyrf_sys::smyrf_plan_create(&mut plan, cfg), smyrf_sys::SMYRF_OK);
        smyrf_sys::smyrf_config_destroy(cfg);
        plan
    }
}

/// Whether the kernel refuses an impossible allocation outright (overcommit mode 0 or 2),
/// so that a test can expect OUT_OF_MEMORY; where it could grant it, says so on stderr.
pub fn huge_allocations_refused() -> bool {
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    let refused = matches!(mode.trim(), "0" | "2");
    if !refused {
        eprintln!("skipped: overcommit mode {:?} could grant the allocation", mode.trim());
    }
    refused
}
