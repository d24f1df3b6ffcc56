//! `Plan::backward`: the same bits as the raw `smyrf_execute_backward`, gradients that
//! match finite differences of the forward, every argument check, an error of the library
//! carried through, and concurrent calls on one plan.

mod common;

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;
use std::thread;

use common::{Shape, assert_error, c_plan, huge_allocations_refused, random};
use smyrf::{
    Backend, BackwardExtras, Bf16, Builder, Dtype, Element, Extras, F16, Forward, Gradients,
    Layout, Mode, Plan, Status, Strides,
};
use smyrf_sys as sys;

/// Grouped-query attention (two query heads per key head), lengths that are no multiple
/// of any tile or cluster size.
const SHAPE: Shape =
    Shape { batch: 2, heads: 4, kv_heads: 2, q_len: 150, k_len: 130, qk_dim: 24, v_dim: 20 };

/// An element type built from f32 and compared by its bits.
trait Value: Element + Default + std::fmt::Debug + Send + Sync + 'static {
    fn from_f32(x: f32) -> Self;
    fn bits(self) -> u32;
}

impl Value for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
}

impl Value for F16 {
    fn from_f32(x: f32) -> Self {
        F16::from_f32(x)
    }
    fn bits(self) -> u32 {
        u32::from(self.0)
    }
}

impl Value for Bf16 {
    fn from_f32(x: f32) -> Self {
        Bf16::from_f32(x)
    }
    fn bits(self) -> u32 {
        u32::from(self.0)
    }
}

fn values<T: Value>(count: usize, seed: u64) -> Vec<T> {
    random(count, seed).into_iter().map(T::from_f32).collect()
}

fn bits<T: Value>(values: &[T]) -> Vec<u32> {
    values.iter().map(|&x| x.bits()).collect()
}

/// One key in seven is padding.
fn mask(shape: &Shape) -> Vec<u8> {
    (0..shape.batch * shape.k_len).map(|i| u8::from(i % 7 != 3)).collect()
}

/// One case of the comparison with the raw calls.
#[derive(Debug, Clone, Copy)]
struct Case {
    mode: Mode,
    dtype: Dtype,
    layout: Layout,
    causal: bool,
}

impl Case {
    /// The C parameters of the problem, as (param, value) pairs.
    fn c_params(&self) -> Vec<(sys::smyrf_param, i64)> {
        let mut params = SHAPE.c_params();
        params.extend([
            (sys::SMYRF_PARAM_MODE, self.mode.value()),
            (sys::SMYRF_PARAM_N_HASHES, 3),
            (sys::SMYRF_PARAM_Q_CLUSTER_SIZE, 32),
            (sys::SMYRF_PARAM_CAUSAL, i64::from(self.causal)),
            (sys::SMYRF_PARAM_SEED, 1234),
            (sys::SMYRF_PARAM_DTYPE, self.dtype.value()),
            (sys::SMYRF_PARAM_BACKEND, sys::SMYRF_BACKEND_CPU as i64),
            (sys::SMYRF_PARAM_LAYOUT, self.layout.value()),
            (sys::SMYRF_PARAM_BUDGET, 40),
        ]);
        params
    }

    /// The same problem through the builder.
    fn builder(&self) -> Builder {
        SHAPE
            .builder()
            .mode(self.mode)
            .n_hashes(3)
            .q_cluster_size(32)
            .causal(self.causal)
            .seed(1234)
            .dtype(self.dtype)
            .backend(Backend::Cpu)
            .layout(self.layout)
            .budget(40)
    }
}

/// Everything a forward and backward pass compute: out, lse, dq, dk, dv.
#[derive(Debug)]
struct Results<T> {
    out: Vec<T>,
    lse: Vec<f32>,
    dq: Vec<T>,
    dk: Vec<T>,
    dv: Vec<T>,
}

/// Inputs of a forward and backward pass.
struct Inputs<T> {
    q: Vec<T>,
    k: Vec<T>,
    v: Vec<T>,
    dout: Vec<T>,
    mask: Option<Vec<u8>>,
}

impl<T: Value> Inputs<T> {
    fn new(shape: &Shape, seed: u64, masked: bool) -> Inputs<T> {
        Inputs {
            q: values(shape.q(), seed),
            k: values(shape.k(), seed + 1),
            v: values(shape.v(), seed + 2),
            dout: values(shape.out(), seed + 3),
            mask: masked.then(|| mask(shape)),
        }
    }
}

/// Forward then backward with nothing but smyrf-sys calls, outputs starting as zeros.
fn raw_run<T: Value>(case: &Case, x: &Inputs<T>) -> Results<T> {
    let mut r = Results {
        out: vec![T::default(); SHAPE.out()],
        lse: vec![0.0f32; SHAPE.lse()],
        dq: vec![T::default(); SHAPE.q()],
        dk: vec![T::default(); SHAPE.k()],
        dv: vec![T::default(); SHAPE.v()],
    };
    let mask = x.mask.as_ref().map_or(ptr::null(), |m| m.as_ptr());
    // SAFETY: the C contract: live handles, buffers of the sizes of SHAPE (contiguous in
    // either layout), outputs distinct from the inputs.
    unsafe {
        let plan = c_plan(&case.c_params());
        let status = sys::smyrf_execute(
            plan,
            x.q.as_ptr().cast::<c_void>(),
            x.k.as_ptr().cast::<c_void>(),
            x.v.as_ptr().cast::<c_void>(),
            mask,
            r.out.as_mut_ptr().cast::<c_void>(),
            r.lse.as_mut_ptr(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        );
        assert_eq!(status, sys::SMYRF_OK);
        let status = sys::smyrf_execute_backward(
            plan,
            x.q.as_ptr().cast::<c_void>(),
            x.k.as_ptr().cast::<c_void>(),
            x.v.as_ptr().cast::<c_void>(),
            mask,
            r.out.as_ptr().cast::<c_void>(),
            r.lse.as_ptr(),
            x.dout.as_ptr().cast::<c_void>(),
            r.dq.as_mut_ptr().cast::<c_void>(),
            r.dk.as_mut_ptr().cast::<c_void>(),
            r.dv.as_mut_ptr().cast::<c_void>(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        );
        assert_eq!(status, sys::SMYRF_OK);
        sys::smyrf_plan_destroy(plan);
    }
    r
}

/// Forward then backward through the safe API, gradients starting as NaN (so that a value
/// not written shows), with or without a caller workspace for the backward.
fn safe_run<T: Value>(plan: &Plan, x: &Inputs<T>, workspace: bool) -> Results<T> {
    let n = plan.lengths();
    let nan = T::from_f32(f32::NAN);
    let mut r = Results {
        out: vec![T::default(); n.out],
        lse: vec![0.0f32; n.lse],
        dq: vec![nan; n.q],
        dk: vec![nan; n.k],
        dv: vec![nan; n.v],
    };
    let key_mask = x.mask.as_deref();
    let extras = Extras { key_mask, lse: Some(&mut r.lse), workspace: None };
    plan.execute_with(&x.q, &x.k, &x.v, &mut r.out, extras).unwrap();

    let mut scratch = vec![0xa5u8; n.backward_workspace];
    let forward = Forward { q: &x.q, k: &x.k, v: &x.v, out: &r.out, lse: &r.lse };
    let grads = Gradients { dq: &mut r.dq, dk: &mut r.dk, dv: &mut r.dv };
    let extras = BackwardExtras { key_mask, workspace: workspace.then_some(&mut scratch[..]) };
    plan.backward_with(forward, &x.dout, grads, extras).unwrap();
    r
}

fn assert_same_bits<T: Value>(got: &Results<T>, want: &Results<T>, what: &str) {
    assert_eq!(bits(&got.out), bits(&want.out), "out, {what}");
    assert_eq!(bits(&got.lse), bits(&want.lse), "lse, {what}");
    assert_eq!(bits(&got.dq), bits(&want.dq), "dq, {what}");
    assert_eq!(bits(&got.dk), bits(&want.dk), "dk, {what}");
    assert_eq!(bits(&got.dv), bits(&want.dv), "dv, {what}");
}

fn matches_the_raw_calls<T: Value>(case: Case, masked: bool) {
    let plan = case.builder().plan().unwrap_or_else(|error| panic!("{case:?}: {error}"));
    let x = Inputs::<T>::new(&SHAPE, 10, masked);
    let want = raw_run(&case, &x);
    let what = format!("{case:?}, mask {masked}");
    assert!(bits(&want.dq).iter().any(|&b| b != 0), "{what}: the gradients are zeros");
    assert_same_bits(&safe_run(&plan, &x, false), &want, &what);
    assert_same_bits(&safe_run(&plan, &x, true), &want, &format!("{what}, workspace"));
}

/// Every mode, GQA, in f32 with and without a key mask, and in both layouts.
#[test]
fn f32_matches_the_raw_calls_bit_for_bit() {
    for mode in [Mode::Smyrf, Mode::Dense, Mode::Hybrid] {
        for (layout, causal, masked) in
            [(Layout::Bhnd, false, true), (Layout::Bnhd, true, true), (Layout::Bhnd, true, false)]
        {
            let case = Case { mode, dtype: Dtype::F32, layout, causal };
            matches_the_raw_calls::<f32>(case, masked);
        }
    }
}

/// The reduced-precision element types go through the same call.
#[test]
fn f16_and_bf16_match_the_raw_calls_bit_for_bit() {
    for mode in [Mode::Smyrf, Mode::Dense, Mode::Hybrid] {
        let case = Case { mode, dtype: Dtype::F16, layout: Layout::Bhnd, causal: false };
        matches_the_raw_calls::<F16>(case, true);
        let case = Case { mode, dtype: Dtype::Bf16, layout: Layout::Bnhd, causal: true };
        matches_the_raw_calls::<Bf16>(case, true);
    }
}

/// sum(dout * out) of the plan's forward, accumulated in f64.
fn loss(plan: &Plan, q: &[f32], k: &[f32], v: &[f32], dout: &[f32], mask: &[u8]) -> f64 {
    let mut out = vec![0.0f32; plan.lengths().out];
    let extras = Extras { key_mask: Some(mask), ..Extras::default() };
    plan.execute_with(q, k, v, &mut out, extras).unwrap();
    out.iter().zip(dout).map(|(&o, &g)| f64::from(o) * f64::from(g)).sum()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// x + t e.
fn step(x: &[f32], e: &[f32], t: f64) -> Vec<f32> {
    x.iter().zip(e).map(|(&x, &e)| (f64::from(x) + t * f64::from(e)) as f32).collect()
}

/// The derivative of sum(dout * out) along a random direction of q, of k, of v and of all
/// three at once, by central differences of the DENSE forward (Richardson-extrapolated),
/// equals the dot product of the direction with dq, dk, dv. Each of dq, dk, dv is checked
/// on its own, so that errors cannot cancel, to a relative 1e-3; a gradient off by 1%
/// (or of the wrong sign, or zero) fails.
#[test]
fn gradients_match_finite_differences() {
    let shape = Shape { batch: 2, heads: 4, kv_heads: 2, q_len: 9, k_len: 11, qk_dim: 6, v_dim: 5 };
    let plan = shape.builder().mode(Mode::Dense).scale(0.6).threads(1).plan().unwrap();
    let n = plan.lengths();
    // Inputs of magnitude ~2 give softmax rows far from uniform.
    let scaled = |count, seed| random(count, seed).iter().map(|x| 2.0 * x).collect::<Vec<_>>();
    let (q, k, v, dout) = (scaled(n.q, 21), scaled(n.k, 22), random(n.v, 23), random(n.out, 24));
    let mut key_mask = vec![1u8; n.key_mask];
    key_mask[3] = 0; // batch 0, key 3
    key_mask[shape.k_len + 10] = 0; // batch 1, the last key

    let mut out = vec![0.0f32; n.out];
    let mut lse = vec![0.0f32; n.lse];
    let extras = Extras { key_mask: Some(&key_mask), lse: Some(&mut lse), workspace: None };
    plan.execute_with(&q, &k, &v, &mut out, extras).unwrap();
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; n.q], vec![0.0f32; n.k], vec![0.0f32; n.v]);
    let forward = Forward { q: &q, k: &k, v: &v, out: &out, lse: &lse };
    let grads = Gradients { dq: &mut dq, dk: &mut dk, dv: &mut dv };
    let extras = BackwardExtras { key_mask: Some(&key_mask), workspace: None };
    plan.backward_with(forward, &dout, grads, extras).unwrap();

    // Padded keys get zero gradients, exactly.
    for (b, j) in [(0, 3), (1, shape.k_len - 1)] {
        for h in 0..shape.kv_heads {
            let row = (b * shape.kv_heads + h) * shape.k_len + j;
            assert!(dk[row * shape.qk_dim..][..shape.qk_dim].iter().all(|&x| x == 0.0));
            assert!(dv[row * shape.v_dim..][..shape.v_dim].iter().all(|&x| x == 0.0));
        }
    }

    let (eq, ek, ev) = (random(n.q, 31), random(n.k, 32), random(n.v, 33));
    let zq = vec![0.0f32; n.q];
    let (zk, zv) = (vec![0.0f32; n.k], vec![0.0f32; n.v]);
    let cases = [
        ("q", &eq, &zk, &zv, dot(&dq, &eq)),
        ("k", &zq, &ek, &zv, dot(&dk, &ek)),
        ("v", &zq, &zk, &ev, dot(&dv, &ev)),
        ("q, k, v", &eq, &ek, &ev, dot(&dq, &eq) + dot(&dk, &ek) + dot(&dv, &ev)),
    ];
    for (name, eq, ek, ev, analytic) in cases {
        let central = |h: f64| {
            let at = |t: f64| {
                loss(&plan, &step(&q, eq, t), &step(&k, ek, t), &step(&v, ev, t), &dout, &key_mask)
            };
            (at(h) - at(-h)) / (2.0 * h)
        };
        let h = 1e-2;
        let numeric = (4.0 * central(h / 2.0) - central(h)) / 3.0;
        let error = (numeric - analytic).abs() / analytic.abs();
        eprintln!(
            "{name}: numeric {numeric:.6}, analytic {analytic:.6}, relative error {error:.2e}"
        );
        assert!(analytic.abs() > 0.2, "{name}: the derivative {analytic} is too small to test");
        assert!(error < 1e-3, "{name}: numeric {numeric} vs analytic {analytic}");
    }
}

/// Every argument of `backward_with` whose length is wrong is refused before the call,
/// by name, and nothing is written.
#[test]
fn arguments_are_checked_before_the_call() {
    let shape =
        Shape { batch: 2, heads: 2, kv_heads: 1, q_len: 32, k_len: 48, qk_dim: 8, v_dim: 6 };
    let plan = shape.builder().mode(Mode::Dense).plan().unwrap();
    let n = plan.lengths();
    assert_eq!(
        (n.q, n.k, n.v, n.out, n.key_mask, n.lse),
        (shape.q(), shape.k(), shape.v(), shape.out(), 96, 128)
    );
    let x = Inputs::<f32>::new(&shape, 40, true);
    let (out, lse) = (random(n.out, 44), random(n.lse, 45));
    let (mut dq, mut dk, mut dv) = (vec![7.0f32; n.q], vec![7.0f32; n.k], vec![7.0f32; n.v]);
    let full = Forward { q: &x.q, k: &x.k, v: &x.v, out: &out, lse: &lse };
    let invalid = Status::InvalidArgument;

    macro_rules! refused {
        ($forward:expr, $dout:expr, $grads:expr, $extras:expr, $words:expr) => {
            assert_error(plan.backward_with($forward, $dout, $grads, $extras), invalid, $words)
        };
    }
    let none = BackwardExtras::default;
    fn grads<'a>(dq: &'a mut [f32], dk: &'a mut [f32], dv: &'a mut [f32]) -> Gradients<'a, f32> {
        Gradients { dq, dk, dv }
    }

    // The forward's inputs and outputs, and dout.
    let f = Forward { q: &x.q[1..], ..full };
    refused!(f, &x.dout, grads(&mut dq, &mut dk, &mut dv), none(), &["q has", "at least"]);
    let f = Forward { k: &x.k[1..], ..full };
    refused!(f, &x.dout, grads(&mut dq, &mut dk, &mut dv), none(), &["k has", "at least"]);
    let f = Forward { v: &x.v[1..], ..full };
    refused!(f, &x.dout, grads(&mut dq, &mut dk, &mut dv), none(), &["v has", "at least"]);
    let f = Forward { out: &out[1..], ..full };
    refused!(f, &x.dout, grads(&mut dq, &mut dk, &mut dv), none(), &["out has", "at least"]);
    let short = &x.dout[1..];
    refused!(full, short, grads(&mut dq, &mut dk, &mut dv), none(), &["dout has", "at least"]);
    // lse is required and exactly [B, H, Nq]: missing (empty), short or long.
    let long = vec![0.0f32; n.lse + 1];
    for (lse, len) in [(&[][..], "0"), (&lse[1..], "127"), (&long[..], "129")] {
        let f = Forward { lse, ..full };
        let words = &["lse has", len, "[B, H, Nq] = 128"];
        refused!(f, &x.dout, grads(&mut dq, &mut dk, &mut dv), none(), words);
    }

    // The gradients.
    let d = &x.dout;
    refused!(full, d, grads(&mut dq[1..], &mut dk, &mut dv), none(), &["dq has", "at least"]);
    refused!(full, d, grads(&mut dq, &mut dk[1..], &mut dv), none(), &["dk has", "at least"]);
    refused!(full, d, grads(&mut dq, &mut dk, &mut dv[1..]), none(), &["dv has", "at least"]);

    // The extras.
    for len in [n.key_mask - 1, n.key_mask + 1] {
        let mask = vec![1u8; len];
        let extras = BackwardExtras { key_mask: Some(&mask), workspace: None };
        refused!(full, d, grads(&mut dq, &mut dk, &mut dv), extras, &["key_mask", "[B, Nk]"]);
    }
    if n.backward_workspace > 0 {
        let mut workspace = vec![0u8; n.backward_workspace - 1];
        let extras = BackwardExtras { key_mask: None, workspace: Some(&mut workspace) };
        refused!(full, d, grads(&mut dq, &mut dk, &mut dv), extras, &["workspace has"]);
    }

    // Slices of another element type than the plan's.
    let half = vec![F16::default(); n.q.max(n.k).max(n.out)];
    let (mut hq, mut hk, mut hv) = (half.clone(), half.clone(), half.clone());
    let f = Forward { q: &half, k: &half, v: &half, out: &half, lse: &lse };
    let g = Gradients { dq: &mut hq, dk: &mut hk, dv: &mut hv };
    assert_error(plan.backward(f, &half, g), invalid, &["F16", "F32"]);

    // Nothing was written by a refused call.
    assert!(dq.iter().chain(&dk).chain(&dv).all(|&x| x == 7.0));

    // And the same arguments, all right, pass.
    let extras = BackwardExtras { key_mask: x.mask.as_deref(), workspace: None };
    plan.backward_with(full, d, grads(&mut dq, &mut dk, &mut dv), extras).unwrap();
}

/// A plan on another backend than the CPU is refused: its memory is not host slices.
#[test]
fn a_device_plan_is_refused() {
    let plan = match Builder::new().q_len(8).qk_dim(8).backend(Backend::Cuda).plan() {
        Ok(plan) => plan,
        // A build without CUDA, or a machine without a device: nothing to refuse.
        Err(error) if error.status() == Status::BackendUnavailable => {
            eprintln!("skipped: no CUDA plan ({error})");
            return;
        }
        Err(error) => panic!("unexpected error {error}"),
    };
    let n = plan.lengths();
    let (q, lse) = (vec![0.0f32; n.q], vec![0.0f32; n.lse]);
    let (mut dq, mut dk, mut dv) = (q.clone(), q.clone(), q.clone());
    let f = Forward { q: &q, k: &q, v: &q, out: &q, lse: &lse };
    let g = Gradients { dq: &mut dq, dk: &mut dk, dv: &mut dv };
    assert_error(plan.backward(f, &q, g), Status::Unsupported, &["Plan::backward", "cpu"]);
}

/// Total RAM plus swap, in bytes (0 if unknown).
fn memory_and_swap() -> usize {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| -> usize {
        info.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (kib("MemTotal:") + kib("SwapTotal:")) * 1024
}

/// A failure inside the library reaches the caller with its status and message: a
/// backward without a caller workspace allocates its own, here about a terabyte (1024
/// threads' scratch), which the kernel refuses when it checks commitments (overcommit
/// mode 0 or 2) and the machine has less memory than that. Nothing is written.
#[test]
fn a_library_failure_carries_its_status_and_message() {
    if !huge_allocations_refused() {
        return;
    }
    let shape = Shape {
        batch: 1,
        heads: 1,
        kv_heads: 1,
        q_len: 1 << 20,
        k_len: 1 << 20,
        qk_dim: 1,
        v_dim: 1,
    };
    let plan = shape.builder().mode(Mode::Hybrid).budget(1 << 19).threads(1024).plan().unwrap();
    let n = plan.lengths();
    let memory = memory_and_swap();
    if memory == 0 || n.backward_workspace < 4 * memory {
        eprintln!("skipped: {} workspace bytes and {memory} bytes of memory", n.backward_workspace);
        return;
    }
    let (q, lse) = (vec![0.5f32; n.q], vec![0.0f32; n.lse]);
    let (mut dq, mut dk, mut dv) = (vec![7.0f32; n.q], vec![7.0f32; n.k], vec![7.0f32; n.v]);
    let f = Forward { q: &q, k: &q, v: &q, out: &q, lse: &lse };
    let g = Gradients { dq: &mut dq, dk: &mut dk, dv: &mut dv };
    assert_error(plan.backward(f, &q, g), Status::OutOfMemory, &["allocate", "workspace"]);
    assert!(dq.iter().chain(&dk).chain(&dv).all(|&x| x == 7.0));
}

/// One plan differentiated from several threads at once gives every thread the
/// single-thread gradients, with and without caller workspaces.
#[test]
fn concurrent_backward_on_one_plan() {
    let shape =
        Shape { batch: 2, heads: 4, kv_heads: 2, q_len: 200, k_len: 170, qk_dim: 16, v_dim: 12 };
    let plan = Arc::new(
        shape
            .builder()
            .mode(Mode::Smyrf)
            .n_hashes(3)
            .q_cluster_size(40)
            .seed(7)
            .threads(2)
            .plan()
            .unwrap(),
    );
    let inputs: Arc<Vec<Inputs<f32>>> =
        Arc::new((0..6u64).map(|i| Inputs::new(&shape, 100 + 10 * i, i % 2 == 0)).collect());
    let alone: Vec<Results<f32>> = inputs.iter().map(|x| safe_run(&plan, x, false)).collect();

    let workers: Vec<_> = (0..inputs.len())
        .map(|i| {
            let (plan, inputs) = (Arc::clone(&plan), Arc::clone(&inputs));
            thread::spawn(move || {
                (0..4).map(|round| safe_run(&plan, &inputs[i], round % 2 == 0)).collect::<Vec<_>>()
            })
        })
        .collect();
    for (i, worker) in workers.into_iter().enumerate() {
        for (round, results) in worker.join().unwrap().iter().enumerate() {
            assert_same_bits(results, &alone[i], &format!("thread {i}, round {round}"));
        }
    }
}

/// q strides under which head h's token i is head h - 1's token i + 1: a forward may read
/// such rows, but dq is written with q's strides, so the backward is refused, naming dq,
/// and writes nothing (before, two threads added into the same dq rows).
#[test]
fn shared_query_rows_are_refused_by_the_backward() {
    let (heads, len, d) = (4i64, 12i64, 8i64);
    let plan = Builder::new()
        .heads(heads)
        .q_len(len)
        .qk_dim(d)
        .mode(Mode::Dense)
        .threads(2)
        .q_strides(Strides { batch: (len + heads) * d, head: d, token: d })
        .plan()
        .unwrap();
    let n = plan.lengths();
    let (q, k, v) = (random(n.q, 1), random(n.k, 2), random(n.v, 3));
    let (mut out, mut lse) = (vec![0.0f32; n.out], vec![0.0f32; n.lse]);
    plan.execute_with(&q, &k, &v, &mut out, Extras { lse: Some(&mut lse), ..Extras::default() })
        .unwrap();
    let dout = random(n.out, 4);
    let (mut dq, mut dk, mut dv) = (vec![7.0f32; n.q], vec![7.0f32; n.k], vec![7.0f32; n.v]);
    let f = Forward { q: &q, k: &k, v: &v, out: &out, lse: &lse };
    let g = Gradients { dq: &mut dq, dk: &mut dk, dv: &mut dv };
    assert_error(plan.backward(f, &dout, g), Status::InvalidArgument, &["dq", "overlap"]);
    assert!(dq.iter().chain(&dk).chain(&dv).all(|&x| x == 7.0));
}
