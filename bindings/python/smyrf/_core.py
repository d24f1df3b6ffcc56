"""The NumPy layer: Plan (a prepared problem) and attention() (one call)."""

import numbers

import numpy as np

from . import capi

MODES = {
    "smyrf": capi.SMYRF_MODE_SMYRF,
    "dense": capi.SMYRF_MODE_DENSE,
    "hybrid": capi.SMYRF_MODE_HYBRID,
}
BACKENDS = {
    "auto": capi.SMYRF_BACKEND_AUTO,
    "cpu": capi.SMYRF_BACKEND_CPU,
    "cuda": capi.SMYRF_BACKEND_CUDA,
}
LAYOUTS = {"bhnd": capi.SMYRF_LAYOUT_BHND, "bnhd": capi.SMYRF_LAYOUT_BNHD}
DTYPES = {
    "float32": capi.SMYRF_DTYPE_F32,
    "float16": capi.SMYRF_DTYPE_F16,
    "bfloat16": capi.SMYRF_DTYPE_BF16,
}
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
TENSORS = ("q", "k", "v", "out")

_STRIDE_PARAMS = {
    "q": capi.SMYRF_PARAM_Q_STRIDE_BATCH,
    "k": capi.SMYRF_PARAM_K_STRIDE_BATCH,
    "v": capi.SMYRF_PARAM_V_STRIDE_BATCH,
    "out": capi.SMYRF_PARAM_OUT_STRIDE_BATCH,
}

# Resolved parameters a Plan reports by name (Plan.get).
PARAMS = {
    "batch": capi.SMYRF_PARAM_BATCH,
    "heads": capi.SMYRF_PARAM_HEADS,
    "kv_heads": capi.SMYRF_PARAM_KV_HEADS,
    "q_len": capi.SMYRF_PARAM_Q_LEN,
    "k_len": capi.SMYRF_PARAM_K_LEN,
    "qk_dim": capi.SMYRF_PARAM_QK_DIM,
    "v_dim": capi.SMYRF_PARAM_V_DIM,
    "mode": capi.SMYRF_PARAM_MODE,
    "n_hashes": capi.SMYRF_PARAM_N_HASHES,
    "q_cluster_size": capi.SMYRF_PARAM_Q_CLUSTER_SIZE,
    "k_cluster_size": capi.SMYRF_PARAM_K_CLUSTER_SIZE,
    "causal": capi.SMYRF_PARAM_CAUSAL,
    "seed": capi.SMYRF_PARAM_SEED,
    "dtype": capi.SMYRF_PARAM_DTYPE,
    "backend": capi.SMYRF_PARAM_BACKEND,
    "device": capi.SMYRF_PARAM_DEVICE,
    "threads": capi.SMYRF_PARAM_THREADS,
    "layout": capi.SMYRF_PARAM_LAYOUT,
    "budget": capi.SMYRF_PARAM_BUDGET,
    "window": capi.SMYRF_PARAM_WINDOW,
    "summaries": capi.SMYRF_PARAM_SUMMARIES,
    "sinks": capi.SMYRF_PARAM_SINKS,
    "kmeans_iters": capi.SMYRF_PARAM_KMEANS_ITERS,
    "expand": capi.SMYRF_PARAM_EXPAND,
}


def choice(name, value, table):
    """table[value], or a ValueError listing what is accepted."""
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, table))}; got {value!r}")
    return table[value]


def integer(name, value, *, optional=False):
    """value as a Python int (None -> 0 when optional); bools and floats are refused."""
    if value is None and optional:
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    value = int(value)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{name} = {value} does not fit in a signed 64-bit integer")
    return value


def seed_bits(seed):
    """Any int seed as the int64 whose bits the library reads as uint64."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    seed = int(seed) % 2**64
    return seed - 2**64 if seed >= 2**63 else seed


def check_head_dims(d, dv):
    """Refuses a zero last dimension of q and k (d) or of v (dv). The library would read
    it as qk_dim "not set" or v_dim "same as qk_dim", and its message would not say that
    a tensor has an empty last dimension."""
    if d == 0:
        raise ValueError("q and k have last dimension 0; the head dimension must be >= 1")
    if dv == 0:
        raise ValueError("v has last dimension 0; the head dimension must be >= 1")


def logical_shape(layout, b, h, n, d):
    """The array shape of a [b, h, n, d] tensor in layout."""
    return (b, h, n, d) if layout == "bhnd" else (b, n, h, d)


def default_strides(layout, b, h, n, d):
    """Element strides (batch, head, token) of a contiguous tensor in layout."""
    return (h * n * d, n * d, d) if layout == "bhnd" else (n * h * d, d, h * d)


class Plan:
    """A prepared attention problem (smyrf_plan): create once per shape, execute often.

    Sizes are keywords: batch, heads, q_len, qk_dim, and optionally kv_heads (grouped-query
    attention; divides heads), k_len (cross-attention), v_dim. `strides` maps "q", "k",
    "v", "out" to (batch, head, token) element strides of views of larger arrays; a
    tensor not named follows `layout`. Errors in the combination raise
    smyrf.InvalidArgumentError (a ValueError) with the library's explanation.

    dtype "bfloat16" has no NumPy arrays: such a plan runs only through
    execute_addresses() and backward_addresses() (smyrf.torch's bfloat16 tensors).

    backend defaults to "cpu", not the library's "auto": execute() and backward() take
    NumPy arrays, which live in host memory, and "auto" would pick CUDA on a CUDA build
    with a GPU. Pass backend="auto" or "cuda" for a plan run through execute_addresses()
    on device memory.

    The plan is immutable: execute() may run from several threads at once. Use it as a
    context manager, or call close(), to free it deterministically.
    """

    def __init__(self, *, q_len, qk_dim, batch=1, heads=1, kv_heads=None, k_len=None,
                 v_dim=None, dtype="float32", mode="smyrf", n_hashes=2, q_cluster_size=64,
                 k_cluster_size=None, causal=False, scale=None, seed=0, budget=None,
                 window=None, summaries=None, sinks=None, kmeans_iters=None, expand=None,
                 backend="cpu", device=0, threads=0, layout="bhnd", strides=None):
        self._handle = None
        if integer("qk_dim", qk_dim) == 0:
            # the library reads 0 as "not set" and would say so
            raise ValueError("qk_dim must be >= 1; got 0")
        self.dtype = dtype
        self.layout = layout
        settings = [
            (capi.SMYRF_PARAM_BATCH, integer("batch", batch)),
            (capi.SMYRF_PARAM_HEADS, integer("heads", heads)),
            (capi.SMYRF_PARAM_KV_HEADS, integer("kv_heads", kv_heads, optional=True)),
            (capi.SMYRF_PARAM_Q_LEN, integer("q_len", q_len)),
            (capi.SMYRF_PARAM_K_LEN, integer("k_len", k_len, optional=True)),
            (capi.SMYRF_PARAM_QK_DIM, integer("qk_dim", qk_dim)),
            (capi.SMYRF_PARAM_V_DIM, integer("v_dim", v_dim, optional=True)),
            (capi.SMYRF_PARAM_MODE, choice("mode", mode, MODES)),
            (capi.SMYRF_PARAM_N_HASHES, integer("n_hashes", n_hashes)),
            (capi.SMYRF_PARAM_Q_CLUSTER_SIZE, integer("q_cluster_size", q_cluster_size)),
            (capi.SMYRF_PARAM_K_CLUSTER_SIZE,
             integer("k_cluster_size", k_cluster_size, optional=True)),
            (capi.SMYRF_PARAM_CAUSAL, int(bool(causal))),
            (capi.SMYRF_PARAM_SEED, seed_bits(seed)),
            (capi.SMYRF_PARAM_DTYPE, choice("dtype", dtype, DTYPES)),
            (capi.SMYRF_PARAM_BACKEND, choice("backend", backend, BACKENDS)),
            (capi.SMYRF_PARAM_DEVICE, integer("device", device)),
            (capi.SMYRF_PARAM_THREADS, integer("threads", threads)),
            (capi.SMYRF_PARAM_LAYOUT, choice("layout", layout, LAYOUTS)),
        ]
        hybrid = [("budget", budget, capi.SMYRF_PARAM_BUDGET),
                  ("window", window, capi.SMYRF_PARAM_WINDOW),
                  ("summaries", summaries, capi.SMYRF_PARAM_SUMMARIES),
                  ("sinks", sinks, capi.SMYRF_PARAM_SINKS),
                  ("kmeans_iters", kmeans_iters, capi.SMYRF_PARAM_KMEANS_ITERS),
                  ("expand", expand, capi.SMYRF_PARAM_EXPAND)]
        for name, value, param in hybrid:
            if value is not None:
                if mode != "hybrid":
                    raise ValueError(f"{name} applies to mode='hybrid' only (mode={mode!r})")
                settings.append((param, integer(name, value)))
        for name, triple in (strides or {}).items():
            if name not in _STRIDE_PARAMS:
                raise ValueError(f"strides: unknown tensor {name!r} (expected one of {TENSORS})")
            if len(triple) != 3:
                raise ValueError(f"strides[{name!r}] must be (batch, head, token)")
            for i, s in enumerate(triple):
                settings.append((_STRIDE_PARAMS[name] + i, integer(f"strides[{name!r}]", s)))
        if scale is not None and (not isinstance(scale, numbers.Real) or isinstance(scale, bool)):
            raise TypeError(f"scale must be a float; got {type(scale).__name__}")

        cfg = capi.smyrf_config_create()
        try:
            for param, value in settings:
                capi.smyrf_config_set(cfg, param, value)
            if scale is not None:
                capi.smyrf_config_set_scale(cfg, float(scale))
            self._handle = capi.smyrf_plan_create(cfg)
        finally:
            capi.smyrf_config_destroy(cfg)

        g = self.get
        self.backend = capi.smyrf_plan_backend_name(self._handle)
        self.scale = capi.smyrf_plan_get_scale(self._handle)
        self.workspace_size = capi.smyrf_plan_workspace_size(self._handle)
        self.backward_workspace_size = capi.smyrf_plan_backward_workspace_size(self._handle)
        b, h, hkv = g("batch"), g("heads"), g("kv_heads")
        nq, nk, d, dv = g("q_len"), g("k_len"), g("qk_dim"), g("v_dim")
        # [b, h, n, dim] of each tensor and its resolved element strides.
        self.dims = {"q": (b, h, nq, d), "k": (b, hkv, nk, d), "v": (b, hkv, nk, dv),
                     "out": (b, h, nq, dv)}
        self.strides = {
            name: tuple(capi.smyrf_plan_get(self._handle, p + i) for i in range(3))
            for name, p in _STRIDE_PARAMS.items()}

    def get(self, name):
        """A resolved parameter by name ("k_len", "window", ...): derived values filled in."""
        self._check_open()
        return capi.smyrf_plan_get(self._handle, choice("name", name, PARAMS))

    def close(self):
        """Frees the plan; later calls raise ValueError. Safe to call twice."""
        handle, self._handle = self._handle, None
        if handle is not None:
            capi.smyrf_plan_destroy(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        if self._handle is None:
            return "<smyrf.Plan (closed)>"
        mode = {v: k for k, v in MODES.items()}[self.get("mode")]
        return (f"<smyrf.Plan mode={mode} backend={self.backend} dtype={self.dtype} "
                f"q={self.dims['q']} k={self.dims['k']} v={self.dims['v']}>")

    def _check_open(self):
        if self._handle is None:
            raise ValueError("this smyrf.Plan is closed")

    def _check_numpy(self):
        """The plan can run NumPy arrays (execute, backward)."""
        self._check_open()
        if self.backend != "cpu":
            raise ValueError(f"NumPy arrays live in host memory; this plan runs on "
                             f"{self.backend!r}: create it with backend='cpu'")
        if self.dtype == "bfloat16":
            raise TypeError("this plan has dtype='bfloat16', which NumPy has no arrays of: it "
                            "runs only through execute_addresses() and backward_addresses() "
                            "(as smyrf.torch does); create it with dtype='float32' or "
                            "'float16' for execute() and backward()")

    def execute(self, q, k, v, *, key_padding_mask=None, out=None, return_lse=False):
        """Attention of NumPy arrays q, k, v (shapes, dtype and strides of the plan).

        key_padding_mask: [batch, k_len] bool or integer, true / nonzero = valid key.
        out: optional preallocated output with the plan's out strides; by default a new
        array with those strides.
        Returns out, or (out, lse) with lse [batch, heads, q_len] float32.
        """
        self._check_numpy()
        for name, arr in (("q", q), ("k", k), ("v", v)):
            self._check_array(name, arr)
        b, h, nq, _ = self.dims["out"]
        if out is None:
            out = self._empty_like_plan("out")
        else:
            self._check_array("out", out)
            if not out.flags.writeable:
                raise ValueError("out is read-only")
        mask = self._mask_array(key_padding_mask)
        lse = np.empty((b, h, nq), dtype=np.float32) if return_lse else None
        capi.smyrf_execute(self._handle, q, k, v, mask, out, lse, None, 0, None)
        return (out, lse) if return_lse else out

    def backward(self, q, k, v, out, lse, dout, *, key_padding_mask=None, dq=None, dk=None,
                 dv=None):
        """Gradients (dq, dk, dv) of a loss with respect to q, k, v, given its gradient
        dout with respect to out (smyrf_execute_backward).

        q, k, v, key_padding_mask: the forward's inputs; out, lse: what
        execute(..., return_lse=True) returned for them; dout: shape and strides of out.
        The clusters (SMYRF) or groups (HYBRID) are recomputed from the seed and are
        constants: no gradient flows through the hashing. With grouped-query attention dk
        and dv sum over the query heads of each group; padded keys get zero gradient.
        dq, dk, dv: optional preallocated outputs with the shapes and strides of q, k, v;
        by default new arrays with those strides (a view of a fused QKV array gets a
        gradient array spanning as much memory as the view does).
        """
        self._check_numpy()
        for name, arr in (("q", q), ("k", k), ("v", v), ("out", out)):
            self._check_array(name, arr)
        self._check_array("out", dout, label="dout")
        b, h, nq, _ = self.dims["out"]
        if not isinstance(lse, np.ndarray):
            raise TypeError(f"lse must be a numpy.ndarray; got {type(lse).__name__}")
        if lse.dtype != np.float32 or lse.shape != (b, h, nq):
            raise ValueError(f"lse must be float32 of shape {(b, h, nq)}; got {lse.dtype} "
                             f"{lse.shape}")
        lse = np.ascontiguousarray(lse)
        grads = []
        for name, given in (("q", dq), ("k", dk), ("v", dv)):
            if given is None:
                given = self._empty_like_plan(name)
            else:
                self._check_array(name, given, label="d" + name)
                if not given.flags.writeable:
                    raise ValueError(f"d{name} is read-only")
            grads.append(given)
        mask = self._mask_array(key_padding_mask)
        capi.smyrf_execute_backward(self._handle, q, k, v, mask, out, lse, dout, *grads,
                                    None, 0, None)
        return tuple(grads)

    def execute_addresses(self, q, k, v, key_padding_mask, out, lse, stream=None,
                          workspace=None, workspace_bytes=0):
        """smyrf_execute on raw addresses (ints; 0 or None = NULL), for tensors of other
        libraries (smyrf.torch). Nothing is checked here: the caller owns the shapes."""
        self._check_open()
        capi.smyrf_execute(self._handle, q, k, v, key_padding_mask, out, lse, workspace,
                           workspace_bytes, stream)

    def backward_addresses(self, q, k, v, key_padding_mask, out, lse, dout, dq, dk, dv,
                           stream=None, workspace=None, workspace_bytes=0):
        """smyrf_execute_backward on raw addresses (ints; 0 or None = NULL), for tensors
        of other libraries (smyrf.torch). Nothing is checked here."""
        self._check_open()
        capi.smyrf_execute_backward(self._handle, q, k, v, key_padding_mask, out, lse, dout,
                                    dq, dk, dv, workspace, workspace_bytes, stream)

    def _empty_like_plan(self, name):
        """A new array with the shape, dtype and element strides the plan expects of
        tensor `name` (its own memory, sized to the span of those strides)."""
        b, h, n, d = self.dims[name]
        sb, sh, sn = self.strides[name]
        span = (b - 1) * sb + (h - 1) * sh + (n - 1) * sn + d
        flat = np.empty(span, dtype=self.dtype)
        item = flat.itemsize
        shape = logical_shape(self.layout, b, h, n, d)
        strides = (sb * item, sh * item, sn * item, item) if self.layout == "bhnd" \
            else (sb * item, sn * item, sh * item, item)
        arr = np.lib.stride_tricks.as_strided(flat, shape=shape, strides=strides)
        return arr

    def _check_array(self, name, arr, label=None):
        """arr must have the dtype, shape and strides the plan expects of tensor `name`
        (error messages call it `label`, default name)."""
        label = label or name
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{label} must be a numpy.ndarray; got {type(arr).__name__}")
        if arr.dtype != np.dtype(self.dtype):
            raise TypeError(f"{label} has dtype {arr.dtype}; the plan expects {self.dtype}")
        want = logical_shape(self.layout, *self.dims[name])
        if arr.shape != want:
            raise ValueError(f"{label} has shape {arr.shape}; the plan expects {want} "
                             f"({self.layout})")
        # The strides of a length-1 dimension are never used (array_strides reports the
        # layout's there), so only the others must match.
        sizes = self.dims[name][:3]
        got = array_strides(label, arr, self.layout)
        if any(n > 1 and s != w for n, s, w in zip(sizes, got, self.strides[name])):
            raise ValueError(f"{label} has element strides {arr.strides} / {arr.itemsize}; "
                             f"the plan expects (batch, head, token) = {self.strides[name]} "
                             "and a contiguous last dimension")

    def _mask_array(self, mask):
        b, _, nk, _ = self.dims["k"]
        return mask_array(mask, b, nk)


def mask_dtype_error(dtype):
    """The TypeError for a key-padding mask that is neither bool nor integer (smyrf.torch
    raises the same). Such a mask is refused, not read as nonzero = valid: the usual float
    mask is additive (0 = keep, -inf = pad) and would come out inverted."""
    return TypeError(f"key_padding_mask must be bool or an integer type (true / nonzero = "
                     f"valid key); got {dtype}. An additive float mask (0 = keep, -inf = "
                     f"pad) converts with mask == 0")


def mask_array(mask, b, nk):
    """A key-padding mask [b, nk] as the library reads it (None stays None), or the
    error saying what is wrong with it."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"key_padding_mask must be a numpy.ndarray; got {type(mask).__name__}")
    if mask.shape != (b, nk):
        raise ValueError(f"key_padding_mask has shape {mask.shape}; expected {(b, nk)}")
    if mask.dtype != np.bool_ and not np.issubdtype(mask.dtype, np.integer):
        raise mask_dtype_error(mask.dtype)
    if mask.dtype not in (np.bool_, np.uint8):
        mask = mask != 0  # the library reads one byte per key
    return np.ascontiguousarray(mask)


def array_strides(name, arr, layout):
    """(batch, head, token) element strides of a 4-d array, or a ValueError saying why the
    library cannot address it. Strides of length-1 dimensions are never used, so they are
    reported as the contiguous layout's, and so are an empty array's (nothing is read)."""
    if arr.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions ({layout}); got shape {arr.shape}")
    order = (0, 1, 2) if layout == "bhnd" else (0, 2, 1)
    b, h, n, d = (arr.shape[i] for i in order + (3,))
    fallback = default_strides(layout, b, h, n, d)
    if arr.size == 0:
        return fallback
    size = arr.itemsize
    if arr.shape[3] > 1 and arr.strides[3] != size:
        raise ValueError(f"{name} must be contiguous in its last dimension; "
                         "use numpy.ascontiguousarray")
    if not arr.flags.aligned:
        raise ValueError(f"{name} is not aligned to its element size")
    result = []
    for axis, default in zip(order, fallback):
        stride = arr.strides[axis]
        if arr.shape[axis] == 1:
            result.append(default)
        elif stride <= 0 or stride % size:
            raise ValueError(f"{name} has stride {stride} bytes in dimension {axis}: "
                             "only positive multiples of the element size are supported "
                             "(broadcast or reversed views need numpy.ascontiguousarray)")
        else:
            result.append(stride // size)
    return tuple(result)


def _dtype_name(arrays):
    for name, arr in zip("qkv", arrays):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray; got {type(arr).__name__}")
    dt = arrays[0].dtype
    for arr in arrays:
        if arr.dtype != dt:
            raise TypeError(f"q, k, v must share one dtype; got {arrays[0].dtype}, "
                            f"{arrays[1].dtype}, {arrays[2].dtype}")
    if dt == np.float32:
        return "float32"
    if dt == np.float16:
        return "float16"
    raise TypeError(f"q, k, v must be float32 or float16; got {dt}")


def attention(q, k, v, *, n_hashes=2, q_cluster_size=64, k_cluster_size=None, causal=False,
              key_padding_mask=None, scale=None, seed=0, mode="smyrf", budget=None,
              expand=None, backend="auto", layout="bhnd", threads=0, return_lse=False):
    """SMYRF (or dense, or hybrid) attention of NumPy arrays, without copying them.

    q [B, H, Nq, d], k [B, Hkv, Nk, d], v [B, Hkv, Nk, dv] in layout "bhnd" (or
    [B, N, H, d] with layout="bnhd"); float32 or float16; Hkv divides H (grouped-query
    attention). Views with a contiguous last dimension are read in place.
    key_padding_mask [B, Nk], bool or integer: true / nonzero = valid key (a float mask is
    refused: convert an additive one with mask == 0). causal: bottom-right aligned mask.
    scale defaults to 1/sqrt(d). mode="hybrid" takes `budget` keys per query, of which
    `expand` (default: derived, round(budget / 3); 0 = none) go to the exact members of
    the summaries with the most weight (budget = window + sinks + summaries + expand; a
    causal problem, or one whose groups average more than `expand` keys, does not expand:
    those keys join the window). NumPy
    arrays always run on the CPU backend (backend "auto" or "cpu").
    Returns out (shape of q with dv as last dimension, contiguous in `layout`), or
    (out, lse) with return_lse=True; lse is [B, H, Nq] float32. With no batch, head,
    query or key, out is zeros and lse -inf, as SDPA answers (the library is not called).
    """
    dtype = _dtype_name((q, k, v))
    choice("layout", layout, LAYOUTS)
    if choice("backend", backend, BACKENDS) == capi.SMYRF_BACKEND_CUDA:
        raise ValueError("NumPy arrays live in host memory: use backend='cpu' (or "
                         "smyrf.torch for CUDA tensors)")
    sq, sk, sv = (array_strides(n, a, layout) for n, a in (("q", q), ("k", k), ("v", v)))
    order = (0, 1, 2, 3) if layout == "bhnd" else (0, 2, 1, 3)
    b, h, nq, d = (q.shape[i] for i in order)
    bk, hkv, nk, dk = (k.shape[i] for i in order)
    bv, hv, nv, dv = (v.shape[i] for i in order)
    if (bk, bv) != (b, b):
        raise ValueError(f"batch sizes differ: q {b}, k {bk}, v {bv}")
    if dk != d:
        raise ValueError(f"q and k must share their last dimension; got {d} and {dk}")
    if (hv, nv) != (hkv, nk):
        raise ValueError(f"k and v must have the same heads and length; got k {k.shape}, "
                         f"v {v.shape} ({layout})")
    check_head_dims(d, dv)
    if h % hkv if hkv else h:
        raise ValueError(f"k's {hkv} heads must divide q's {h} heads (grouped-query attention)")
    if 0 in (b, h, nq, nk):
        # The library refuses zero sizes; the answer is SDPA's (a query without keys gets
        # zeros and lse -inf, the library's rule for a row with no allowed key).
        choice("mode", mode, MODES)
        mask_array(key_padding_mask, b, nk)
        out = np.zeros(logical_shape(layout, b, h, nq, dv), dtype=q.dtype)
        lse = np.full((b, h, nq), -np.inf, dtype=np.float32)
        return (out, lse) if return_lse else out
    strides = {}
    for name, arr, st in (("q", q, sq), ("k", k, sk), ("v", v, sv)):
        n_tokens = nq if name == "q" else nk
        heads = h if name == "q" else hkv
        width = arr.shape[3]
        if st != default_strides(layout, b, heads, n_tokens, width):
            strides[name] = st
    with Plan(batch=b, heads=h, kv_heads=hkv, q_len=nq, k_len=nk, qk_dim=d, v_dim=dv,
              dtype=dtype, mode=mode, n_hashes=n_hashes, q_cluster_size=q_cluster_size,
              k_cluster_size=k_cluster_size, causal=causal, scale=scale, seed=seed,
              budget=budget, expand=expand, backend="cpu", threads=threads, layout=layout,
              strides=strides) as plan:
        return plan.execute(q, k, v, key_padding_mask=key_padding_mask, return_lse=return_lse)
