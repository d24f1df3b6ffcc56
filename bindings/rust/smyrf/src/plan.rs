//! Plans (`smyrf_plan`) and their execution on host slices.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use smyrf_sys as sys;

use crate::element::Element;
use crate::error::{Error, Result, Status, c_str, check};
use crate::kinds::Dtype;
use crate::param::Param;

/// A prepared attention problem: immutable, executed any number of times, from any
/// number of threads at once (each call with its own outputs). Dropping it frees it.
#[derive(Debug)]
pub struct Plan {
    raw: NonNull<sys::smyrf_plan>,
    dtype: Dtype,
    lengths: Lengths,
}

// SAFETY: the C library documents a plan as immutable after creation and smyrf_execute
// and smyrf_execute_backward as safe on one plan from several threads at once; it is freed
// only by `Drop`, which owns it, so never while another thread executes it.
unsafe impl Send for Plan {}
// SAFETY: as above; `&Plan` only reads the plan or executes it (forward or backward).
unsafe impl Sync for Plan {}

/// The slice lengths a plan's [`Plan::execute`] and [`Plan::backward`] take, in elements
/// (bytes for the mask and the workspaces). The gradients dq, dk, dv take the lengths of
/// q, k, v, and dout that of out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lengths {
    /// At least this many elements of q: one past its last element, with its strides.
    pub q: usize,
    /// At least this many elements of k.
    pub k: usize,
    /// At least this many elements of v.
    pub v: usize,
    /// At least this many elements of out.
    pub out: usize,
    /// Exactly this many key-mask bytes, `[B, Nk]`.
    pub key_mask: usize,
    /// Exactly this many lse values, `[B, H, Nq]`.
    pub lse: usize,
    /// At least this many workspace bytes (`smyrf_plan_workspace_size`).
    pub workspace: usize,
    /// At least this many workspace bytes for [`Plan::backward_with`]
    /// (`smyrf_plan_backward_workspace_size`).
    pub backward_workspace: usize,
}

/// The optional arguments of [`Plan::execute_with`].
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// Key-padding mask `[B, Nk]`: nonzero = a valid key. `None`: every key is valid.
    pub key_mask: Option<&'a [u8]>,
    /// Receives the log-sum-exp of each output row, `[B, H, Nq]` (-inf for a row with no
    /// allowed key).
    pub lse: Option<&'a mut [f32]>,
    /// Scratch memory of at least [`Lengths::workspace`] bytes, so that the call allocates
    /// nothing. `None`: the call allocates its own.
    pub workspace: Option<&'a mut [u8]>,
}

/// The forward pass [`Plan::backward`] differentiates: its inputs q, k, v and the out and
/// lse that [`Plan::execute_with`] computed from them (with the same key mask).
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a, T> {
    /// The forward's queries.
    pub q: &'a [T],
    /// The forward's keys.
    pub k: &'a [T],
    /// The forward's values.
    pub v: &'a [T],
    /// The forward's output.
    pub out: &'a [T],
    /// The forward's log-sum-exp of each output row, `[B, H, Nq]` (required: ask the
    /// forward for it with [`Extras::lse`]).
    pub lse: &'a [f32],
}

/// The gradients [`Plan::backward`] writes, each completely, with the layout (strides) of
/// q, k and v respectively.
#[derive(Debug)]
pub struct Gradients<'a, T> {
    /// Receives the gradient with respect to q.
    pub dq: &'a mut [T],
    /// Receives the gradient with respect to k (summed over the query heads of each group
    /// with grouped-query attention; zeros for padded keys).
    pub dk: &'a mut [T],
    /// Receives the gradient with respect to v (summed and zeroed as dk).
    pub dv: &'a mut [T],
}

/// The optional arguments of [`Plan::backward_with`].
#[derive(Debug, Default)]
pub struct BackwardExtras<'a> {
    /// The key-padding mask `[B, Nk]` the forward ran with (nonzero = a valid key). `None`:
    /// every key is valid.
    pub key_mask: Option<&'a [u8]>,
    /// Scratch memory of at least [`Lengths::backward_workspace`] bytes, so that the call
    /// allocates nothing. `None`: the call allocates its own.
    pub workspace: Option<&'a mut [u8]>,
}

impl Plan {
    /// Takes ownership of a plan just created and reads its resolved shape.
    pub(crate) fn from_raw(raw: NonNull<sys::smyrf_plan>) -> Result<Plan> {
        let mut plan = Plan { raw, dtype: Dtype::F32, lengths: Lengths::default() };
        let dtype = plan.get(Param::Dtype)?;
        plan.dtype = Dtype::from_value(dtype).ok_or_else(|| {
            Error::new(
                Status::Unsupported,
                format!("the plan's dtype {dtype} is unknown to this crate"),
            )
        })?;
        plan.lengths = plan.resolve_lengths()?;
        Ok(plan)
    }

    /// The resolved value of `param`: derived values (K_LEN, V_DIM, WINDOW, ...) and the
    /// strides of every tensor filled in.
    pub fn get(&self, param: Param) -> Result<i64> {
        let mut value = 0;
        // SAFETY: `raw` is a live plan; `value` is valid for a write.
        check(unsafe { sys::smyrf_plan_get(self.raw.as_ptr(), param.code(), &mut value) })?;
        Ok(value)
    }

    /// The resolved softmax scale.
    pub fn scale(&self) -> Result<f64> {
        let mut scale = 0.0;
        // SAFETY: `raw` is a live plan; `scale` is valid for a write.
        check(unsafe { sys::smyrf_plan_get_scale(self.raw.as_ptr(), &mut scale) })?;
        Ok(scale)
    }

    /// The element type the plan executes on.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The slice lengths [`Plan::execute`] takes.
    pub fn lengths(&self) -> Lengths {
        self.lengths
    }

    /// The backend the plan runs on: "cpu" or "cuda".
    pub fn backend_name(&self) -> &str {
        // SAFETY: `raw` is live; the name is a static string of the backend.
        unsafe { c_str(sys::smyrf_plan_backend_name(self.raw.as_ptr())) }
    }

    /// Computes attention of q, k, v into out, which is written completely. Slices are
    /// laid out as the plan's layout or strides say and hold [`Plan::dtype`] elements.
    pub fn execute<T: Element>(&self, q: &[T], k: &[T], v: &[T], out: &mut [T]) -> Result<()> {
        self.execute_with(q, k, v, out, Extras::default())
    }

    /// [`Plan::execute`] with a key mask, an lse output or a caller workspace.
    pub fn execute_with<T: Element>(
        &self,
        q: &[T],
        k: &[T],
        v: &[T],
        out: &mut [T],
        extras: Extras<'_>,
    ) -> Result<()> {
        self.check_host::<T>("execute")?;
        let n = &self.lengths;
        check_lengths(&[("q", q.len(), n.q), ("k", k.len(), n.k), ("v", v.len(), n.v)])?;
        check_lengths(&[("out", out.len(), n.out)])?;
        self.check_mask(extras.key_mask)?;
        if let Some(lse) = &extras.lse {
            check_lse(lse, n.lse)?;
        }
        check_workspace(extras.workspace.as_deref(), n.workspace)?;
        let Extras { key_mask, lse, workspace } = extras;
        let (workspace_ptr, workspace_bytes) = raw_workspace(workspace);
        // SAFETY: the plan is live and runs on the CPU, so it reads and writes host memory
        // and returns only when done. Every slice holds at least the extent the plan
        // reads or writes (checked above) in the plan's element type; out, lse and the
        // workspace are exclusive borrows, so they overlap nothing else.
        check(unsafe {
            sys::smyrf_execute(
                self.raw.as_ptr(),
                q.as_ptr().cast(),
                k.as_ptr().cast(),
                v.as_ptr().cast(),
                key_mask.map_or(ptr::null(), <[u8]>::as_ptr),
                out.as_mut_ptr().cast(),
                lse.map_or(ptr::null_mut(), <[f32]>::as_mut_ptr),
                workspace_ptr,
                workspace_bytes,
                ptr::null_mut(),
            )
        })
    }

    /// The gradients of out with respect to q, k and v, given `dout`, the gradient of a loss
    /// with respect to out (`smyrf_execute_backward`). `forward` holds the inputs and the
    /// outputs (out and lse) of a forward pass of this plan; `dout` has the layout of out.
    /// The clusters (SMYRF) or groups (HYBRID) are recomputed from the seed and are
    /// constants: no gradient flows through them. The gradients are written completely.
    ///
    /// ```
    /// use smyrf::{Builder, Extras, Forward, Gradients, Mode};
    ///
    /// let plan = Builder::new().q_len(64).qk_dim(16).mode(Mode::Dense).plan()?;
    /// let n = plan.lengths();
    /// let q: Vec<f32> = (0..n.q).map(|i| (i % 7) as f32 * 0.1).collect();
    /// let (k, v) = (q.clone(), q.clone());
    /// let (mut out, mut lse) = (vec![0.0f32; n.out], vec![0.0f32; n.lse]);
    /// let extras = Extras { lse: Some(&mut lse), ..Extras::default() };
    /// plan.execute_with(&q, &k, &v, &mut out, extras)?;
    ///
    /// let dout = vec![1.0f32; n.out]; // the gradient of sum(out)
    /// let (mut dq, mut dk, mut dv) = (vec![0.0f32; n.q], vec![0.0f32; n.k], vec![0.0f32; n.v]);
    /// let forward = Forward { q: &q, k: &k, v: &v, out: &out, lse: &lse };
    /// plan.backward(forward, &dout, Gradients { dq: &mut dq, dk: &mut dk, dv: &mut dv })?;
    /// // Every softmax row sums to one, so the entries of dv add up to the size of out.
    /// assert!(dv.iter().all(|x| x.is_finite()));
    /// assert!((dv.iter().sum::<f32>() - (n.out as f32)).abs() < 1e-2);
    /// # Ok::<(), smyrf::Error>(())
    /// ```
    pub fn backward<T: Element>(
        &self,
        forward: Forward<'_, T>,
        dout: &[T],
        grads: Gradients<'_, T>,
    ) -> Result<()> {
        self.backward_with(forward, dout, grads, BackwardExtras::default())
    }

    /// [`Plan::backward`] with the forward's key mask or a caller workspace.
    pub fn backward_with<T: Element>(
        &self,
        forward: Forward<'_, T>,
        dout: &[T],
        grads: Gradients<'_, T>,
        extras: BackwardExtras<'_>,
    ) -> Result<()> {
        let Forward { q, k, v, out, lse } = forward;
        let Gradients { dq, dk, dv } = grads;
        self.check_host::<T>("backward")?;
        let n = &self.lengths;
        check_lengths(&[("q", q.len(), n.q), ("k", k.len(), n.k), ("v", v.len(), n.v)])?;
        check_lengths(&[("out", out.len(), n.out), ("dout", dout.len(), n.out)])?;
        check_lse(lse, n.lse)?;
        check_lengths(&[("dq", dq.len(), n.q), ("dk", dk.len(), n.k), ("dv", dv.len(), n.v)])?;
        self.check_mask(extras.key_mask)?;
        check_workspace(extras.workspace.as_deref(), n.backward_workspace)?;
        let BackwardExtras { key_mask, workspace } = extras;
        let (workspace_ptr, workspace_bytes) = raw_workspace(workspace);
        // SAFETY: the plan is live and runs on the CPU, so it reads and writes host memory
        // and returns only when done. Every slice holds at least the extent the plan
        // reads or writes (checked above) in the plan's element type, lse its [B, H, Nq]
        // values; dq, dk, dv and the workspace are exclusive borrows, so they overlap
        // nothing else, and the library refuses strides of q, k or v under which rows of
        // dq, dk or dv would overlap each other.
        check(unsafe {
            sys::smyrf_execute_backward(
                self.raw.as_ptr(),
                q.as_ptr().cast(),
                k.as_ptr().cast(),
                v.as_ptr().cast(),
                key_mask.map_or(ptr::null(), <[u8]>::as_ptr),
                out.as_ptr().cast(),
                lse.as_ptr(),
                dout.as_ptr().cast(),
                dq.as_mut_ptr().cast(),
                dk.as_mut_ptr().cast(),
                dv.as_mut_ptr().cast(),
                workspace_ptr,
                workspace_bytes,
                ptr::null_mut(),
            )
        })
    }

    /// Refuses a plan that could not run on host slices, and slices of another element
    /// type than the plan's. `call` names the method in the message.
    fn check_host<T: Element>(&self, call: &str) -> Result<()> {
        if self.backend_name() != "cpu" {
            return Err(Error::new(
                Status::Unsupported,
                format!(
                    "the plan runs on the {} backend; Plan::{call} takes host slices and needs the cpu backend",
                    self.backend_name()
                ),
            ));
        }
        if T::DTYPE != self.dtype {
            return invalid(format!(
                "the slices hold {:?} elements but the plan's dtype is {:?}",
                T::DTYPE,
                self.dtype
            ));
        }
        Ok(())
    }

    /// Refuses a key mask that is not `[B, Nk]`.
    fn check_mask(&self, key_mask: Option<&[u8]>) -> Result<()> {
        match key_mask {
            Some(mask) if mask.len() != self.lengths.key_mask => invalid(format!(
                "key_mask has {} bytes; the plan needs [B, Nk] = {}",
                mask.len(),
                self.lengths.key_mask
            )),
            _ => Ok(()),
        }
    }

    /// The slice lengths of the resolved shape and strides.
    fn resolve_lengths(&self) -> Result<Lengths> {
        let batch = self.get(Param::Batch)?;
        let heads = self.get(Param::Heads)?;
        let kv_heads = self.get(Param::KvHeads)?;
        let q_len = self.get(Param::QLen)?;
        let k_len = self.get(Param::KLen)?;
        let qk_dim = self.get(Param::QkDim)?;
        let v_dim = self.get(Param::VDim)?;
        let extent = |params: [Param; 3], heads: i64, len: i64, dim: i64| -> Result<usize> {
            let [b, h, t] = params.map(|p| self.get(p));
            let (b, h, t) = (b?, h?, t?);
            let last =
                [(b, batch), (h, heads), (t, len)].iter().try_fold(dim, |acc, &(stride, count)| {
                    acc.checked_add(stride.checked_mul(count - 1)?)
                });
            to_usize(last)
        };
        // SAFETY: `raw` is a live plan.
        let workspace = unsafe { sys::smyrf_plan_workspace_size(self.raw.as_ptr()) };
        // SAFETY: as above.
        let backward_workspace =
            unsafe { sys::smyrf_plan_backward_workspace_size(self.raw.as_ptr()) };
        Ok(Lengths {
            q: extent(Param::Q_STRIDES, heads, q_len, qk_dim)?,
            k: extent(Param::K_STRIDES, kv_heads, k_len, qk_dim)?,
            v: extent(Param::V_STRIDES, kv_heads, k_len, v_dim)?,
            out: extent(Param::OUT_STRIDES, heads, q_len, v_dim)?,
            key_mask: to_usize(batch.checked_mul(k_len))?,
            lse: to_usize(batch.checked_mul(heads).and_then(|n| n.checked_mul(q_len)))?,
            workspace,
            backward_workspace,
        })
    }
}

/// A workspace as the C calls take it: pointer and bytes, or null and 0.
fn raw_workspace(workspace: Option<&mut [u8]>) -> (*mut c_void, usize) {
    match workspace {
        Some(w) => (w.as_mut_ptr().cast::<c_void>(), w.len()),
        None => (ptr::null_mut(), 0),
    }
}

/// An `InvalidArgument` error with `message`.
fn invalid(message: String) -> Result<()> {
    Err(Error::new(Status::InvalidArgument, message))
}

/// Refuses a slice shorter than the plan reads or writes: (name, length, need) each.
fn check_lengths(slices: &[(&str, usize, usize)]) -> Result<()> {
    for &(name, len, need) in slices {
        if len < need {
            return invalid(format!("{name} has {len} elements; the plan needs at least {need}"));
        }
    }
    Ok(())
}

/// Refuses an lse slice that is not `[B, H, Nq]`.
fn check_lse(lse: &[f32], need: usize) -> Result<()> {
    if lse.len() != need {
        return invalid(format!(
            "lse has {} elements; the plan needs [B, H, Nq] = {need}",
            lse.len()
        ));
    }
    Ok(())
}

/// Refuses a workspace smaller than `need` bytes.
fn check_workspace(workspace: Option<&[u8]>, need: usize) -> Result<()> {
    match workspace {
        Some(w) if w.len() < need => {
            invalid(format!("workspace has {} bytes; the plan needs at least {need}", w.len()))
        }
        _ => Ok(()),
    }
}

/// A size the plan resolved, as a slice length.
fn to_usize(value: Option<i64>) -> Result<usize> {
    value.and_then(|v| usize::try_from(v).ok()).ok_or_else(|| {
        Error::new(
            Status::InvalidArgument,
            "a tensor of the plan does not fit in this address space".to_owned(),
        )
    })
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: `raw` came from smyrf_plan_create and is freed once, here; no execute
        // runs, since that borrows the plan.
        unsafe { sys::smyrf_plan_destroy(self.raw.as_ptr()) }
    }
}
