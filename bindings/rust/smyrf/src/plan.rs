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

// SAFETY: the C library documents a plan as immutable after creation and smyrf_execute as
// safe on one plan from several threads at once; it is freed only by `Drop`, which owns
// it, so never while another thread executes it.
unsafe impl Send for Plan {}
// SAFETY: as above; `&Plan` only reads the plan or executes it.
unsafe impl Sync for Plan {}

/// The slice lengths a plan's [`Plan::execute`] takes, in elements (bytes for the mask
/// and the workspace).
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
        self.check_arguments::<T>(q, k, v, out, &extras)?;
        let Extras { key_mask, lse, workspace } = extras;
        let (workspace_ptr, workspace_bytes) = match workspace {
            Some(w) => (w.as_mut_ptr().cast::<c_void>(), w.len()),
            None => (ptr::null_mut(), 0),
        };
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

    /// Refuses what the C library would read or write out of bounds, or could not run on
    /// host slices.
    fn check_arguments<T: Element>(
        &self,
        q: &[T],
        k: &[T],
        v: &[T],
        out: &[T],
        extras: &Extras<'_>,
    ) -> Result<()> {
        let invalid = |message: String| Err(Error::new(Status::InvalidArgument, message));
        if self.backend_name() != "cpu" {
            return Err(Error::new(
                Status::Unsupported,
                format!(
                    "the plan runs on the {} backend; Plan::execute takes host slices and needs the cpu backend",
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
        let n = &self.lengths;
        for (name, len, need) in [
            ("q", q.len(), n.q),
            ("k", k.len(), n.k),
            ("v", v.len(), n.v),
            ("out", out.len(), n.out),
        ] {
            if len < need {
                return invalid(format!(
                    "{name} has {len} elements; the plan needs at least {need}"
                ));
            }
        }
        if let Some(mask) = extras.key_mask {
            if mask.len() != n.key_mask {
                return invalid(format!(
                    "key_mask has {} bytes; the plan needs [B, Nk] = {}",
                    mask.len(),
                    n.key_mask
                ));
            }
        }
        if let Some(lse) = &extras.lse {
            if lse.len() != n.lse {
                return invalid(format!(
                    "lse has {} elements; the plan needs [B, H, Nq] = {}",
                    lse.len(),
                    n.lse
                ));
            }
        }
        if let Some(workspace) = &extras.workspace {
            if workspace.len() < n.workspace {
                return invalid(format!(
                    "workspace has {} bytes; the plan needs at least {}",
                    workspace.len(),
                    n.workspace
                ));
            }
        }
        Ok(())
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
        Ok(Lengths {
            q: extent(Param::Q_STRIDES, heads, q_len, qk_dim)?,
            k: extent(Param::K_STRIDES, kv_heads, k_len, qk_dim)?,
            v: extent(Param::V_STRIDES, kv_heads, k_len, v_dim)?,
            out: extent(Param::OUT_STRIDES, heads, q_len, v_dim)?,
            key_mask: to_usize(batch.checked_mul(k_len))?,
            lse: to_usize(batch.checked_mul(heads).and_then(|n| n.checked_mul(q_len)))?,
            workspace,
        })
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
