"""libsmyrf as a PyTorch operator: torch.ops.smyrf.attention (a torch.library custom op).

    import smyrf.torch
    out = smyrf.torch.attention(q, k, v, n_hashes=2, q_cluster_size=64)
    out.sum().backward()          # gradients through smyrf_execute_backward

CPU tensors run on the CPU backend, CUDA tensors on the CUDA backend of their device, on
the current CUDA stream, with that device made current for the call by torch (so no
other device gets a CUDA context) and the workspace from torch's caching allocator. Inputs are read in place whatever their strides, as long as the
last dimension is contiguous and a token's row does not overlap the next (a transposed
[B, N, H, D] view costs no copy; a sliding-window view is copied). Fake (meta)
implementations are registered, so torch.compile and torch.export trace through the op.

Autograd: torch.ops.smyrf.attention has a registered backward that calls the second
custom op torch.ops.smyrf.attention_backward (the library's smyrf_execute_backward, with
the forward's out and lse saved). As in the paper, the clusters (SMYRF) and the k-means
groups (HYBRID) are constants of the forward: gradients are those of softmax attention
over the keys each query met, and no gradient flows through the hashing. With
grouped-query attention dk and dv sum over the query heads of each group; padded keys get
zero gradient. The lse output is not differentiable (a statistic of the forward), and
there are no second derivatives (backward through attention_backward raises).

Plans are cached (least recently used first out) by shape, strides, dtype, device and
configuration; clear_plan_cache() empties the cache.
"""

import contextlib
import threading
from collections import OrderedDict
from typing import Optional, Tuple

import torch

from ._core import (LAYOUTS, MODES, Plan, check_head_dims, choice, default_strides, integer,
                    mask_dtype_error, seed_bits)

__all__ = ["attention", "clear_plan_cache", "PLAN_CACHE_SIZE"]

PLAN_CACHE_SIZE = 64

_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}

_plans = OrderedDict()
_plans_lock = threading.Lock()


def clear_plan_cache():
    """Drops every cached plan (plans in use stay alive until their call returns)."""
    with _plans_lock:
        _plans.clear()


def _cached_plan(key, settings_of):
    """The plan cached under key, or a new one, Plan(**settings_of())."""
    with _plans_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    plan = Plan(**settings_of())
    with _plans_lock:
        _plans[key] = plan
        while len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return plan


def _check_inputs(q, k, v, key_padding_mask):
    """Shape, dtype and device rules of the op (shared by the real and fake kernels)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-d [batch, heads, tokens, dim]; got {tuple(t.shape)}")
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name} has dtype {t.dtype}; supported: float32, float16, bfloat16")
        if t.dtype != q.dtype:
            raise TypeError(f"q, k, v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
        if t.device != q.device:
            raise ValueError(f"q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")
    if q.device.type not in ("cpu", "cuda", "meta"):
        raise ValueError(f"smyrf runs CPU and CUDA tensors; got a {q.device.type} tensor")
    b, h, _, d = q.shape
    if k.shape[0] != b or v.shape[0] != b:
        raise ValueError(f"batch sizes differ: q {b}, k {k.shape[0]}, v {v.shape[0]}")
    if k.shape[3] != d:
        raise ValueError(f"q and k must share their last dimension; got {d} and {k.shape[3]}")
    if k.shape[1:3] != v.shape[1:3]:
        raise ValueError(f"k and v must have the same heads and length; got k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    check_head_dims(d, v.shape[3])
    if h % k.shape[1] if k.shape[1] else h:
        raise ValueError(f"k's {k.shape[1]} heads must divide q's {h} heads (grouped-query attention)")
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (b, k.shape[2]):
            raise ValueError(f"key_padding_mask has shape {tuple(key_padding_mask.shape)}; "
                             f"expected {(b, k.shape[2])}")
        if key_padding_mask.device != q.device:
            raise ValueError("key_padding_mask must be on the device of q")
        if key_padding_mask.dtype.is_floating_point or key_padding_mask.dtype.is_complex:
            raise mask_dtype_error(key_padding_mask.dtype)


def _element_strides(t):
    """(batch, head, token) strides of a logical [B, H, N, D] tensor the library can read
    in place, or None when it cannot (then the caller copies)."""
    b, h, n, d = t.shape
    if d > 1 and t.stride(3) != 1:
        return None
    if n > 1 and t.stride(2) < d:
        return None  # tokens whose rows overlap (sliding windows): the library refuses them
    fallback = default_strides("bhnd", b, h, n, d)
    result = []
    for axis in range(3):
        if t.shape[axis] == 1:
            result.append(fallback[axis])
        elif t.stride(axis) <= 0:
            return None
        else:
            result.append(t.stride(axis))
    return tuple(result)


def _no_work(q, k):
    """No query or no key: the library refuses zero sizes, so such a call is answered
    here, as SDPA answers it (a query without keys gets zeros and lse -inf, the library's
    rule for a row with no allowed key)."""
    return 0 in (q.shape[0], q.shape[1], q.shape[2], k.shape[2])


def _empty_out(q, v, out_layout):
    b, h, nq, _ = q.shape
    dv = v.shape[3]
    if out_layout == "bnhd":
        return q.new_empty((b, nq, h, dv)).transpose(1, 2)
    return q.new_empty((b, h, nq, dv))


def _usable(t):
    """t itself when the library can read it in place, else a contiguous copy; and its
    (batch, head, token) element strides."""
    st = _element_strides(t)
    if st is None:
        t = t.contiguous()
        st = _element_strides(t)
    return t, st


def _uint8_mask(key_padding_mask):
    """A bool or integer mask (_check_inputs) as the bytes the library reads."""
    if key_padding_mask is None:
        return None
    mask = key_padding_mask if key_padding_mask.dtype in (torch.bool, torch.uint8) \
        else key_padding_mask != 0
    return mask.contiguous().view(torch.uint8)


def _plan_for(q, v, strides, causal, scale, mode, n_hashes, q_cluster_size, k_cluster_size,
              seed, budget, threads, expand=-1):
    """The cached plan for these shapes, strides (q, k, v, out) and settings."""
    device = q.device
    # The key is the call's own values, cheap to build on every call (a decoder step is
    # short); the settings are worked out only for a new plan.
    key = (device.type, device.index, q.shape, v.shape, q.dtype, strides["q"], strides["k"],
           strides["v"], strides["out"], causal, scale, mode, n_hashes, q_cluster_size,
           k_cluster_size, seed, budget, threads, expand)

    def settings():
        b, h, nq, d = q.shape
        _, hkv, nk, dv = v.shape
        return dict(
            batch=b, heads=h, kv_heads=hkv, q_len=nq, k_len=nk, qk_dim=d, v_dim=dv,
            dtype=_DTYPES[q.dtype], mode=mode, n_hashes=n_hashes,
            q_cluster_size=q_cluster_size, k_cluster_size=k_cluster_size or None,
            causal=causal, scale=scale or None, seed=seed,
            budget=(budget or None) if mode == "hybrid" else None,
            expand=(expand if expand >= 0 else None) if mode == "hybrid" else None,
            backend=device.type, device=device.index or 0, threads=threads, strides=strides)

    return _cached_plan(key, settings)


def _stream(device):
    return torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else None


def _on_device(device):
    """The tensors' CUDA device made current by torch's own guard: the library then finds
    its plan's device current and switches nothing, and torch restores the previous one
    without creating a context on it (cudaSetDevice would, since CUDA 12)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _workspace(device, size):
    """(tensor, address, bytes) of a CUDA call's workspace, from torch's caching allocator
    rather than a cudaMallocAsync inside the library (reused, and counted by torch's memory
    statistics); on the CPU (None, None, 0): the library's own, per call."""
    if device.type != "cuda" or not size:
        return None, None, 0
    ws = torch.empty(size, dtype=torch.uint8, device=device)
    return ws, ws.data_ptr(), size


@torch.library.custom_op("smyrf::attention", mutates_args=())
def _attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  key_padding_mask: Optional[torch.Tensor], causal: bool, scale: float,
                  mode: str, n_hashes: int, q_cluster_size: int, k_cluster_size: int,
                  seed: int, budget: int, out_layout: str, threads: int,
                  expand: int = -1) -> Tuple[torch.Tensor, torch.Tensor]:
    """q [B, H, Nq, d], k [B, Hkv, Nk, d], v [B, Hkv, Nk, dv] (any strides with a
    contiguous last dimension) -> out [B, H, Nq, dv] stored in out_layout order, and
    lse [B, H, Nq] float32. scale 0, k_cluster_size 0, budget 0: the library defaults.
    expand (HYBRID, last so that older positional calls keep working): keys per query
    spent expanding the heaviest summaries; -1 = derived from the budget (the default),
    0 = none."""
    _check_inputs(q, k, v, key_padding_mask)
    b, h, nq, _ = q.shape
    if _no_work(q, k):
        return (_empty_out(q, v, out_layout).zero_(),
                q.new_full((b, h, nq), float("-inf"), dtype=torch.float32))
    (q, sq), (k, sk), (v, sv) = _usable(q), _usable(k), _usable(v)
    out = _empty_out(q, v, out_layout)
    lse = q.new_empty((b, h, nq), dtype=torch.float32)
    mask = _uint8_mask(key_padding_mask)
    with _on_device(q.device):
        plan = _plan_for(q, v, {"q": sq, "k": sk, "v": sv, "out": _element_strides(out)},
                         causal, scale, mode, n_hashes, q_cluster_size, k_cluster_size, seed,
                         budget, threads, expand)
        _ws, workspace, workspace_bytes = _workspace(q.device, plan.workspace_size)
        plan.execute_addresses(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                               mask.data_ptr() if mask is not None else None, out.data_ptr(),
                               lse.data_ptr(), _stream(q.device), workspace, workspace_bytes)
    return out, lse


@_attention_op.register_fake
def _attention_fake(q, k, v, key_padding_mask, causal, scale, mode, n_hashes, q_cluster_size,
                    k_cluster_size, seed, budget, out_layout, threads, expand=-1):
    _check_inputs(q, k, v, key_padding_mask)
    b, h, nq, _ = q.shape
    return _empty_out(q, v, out_layout), q.new_empty((b, h, nq), dtype=torch.float32)


def _grad_buffer(t):
    """The gradient tensor of input t: t's strides when t is dense (the library writes
    dq, dk, dv with the strides of q, k, v), else contiguous. Shared by the real and the
    fake backward so both give the same strides."""
    g = torch.empty_like(t, memory_format=torch.preserve_format)
    if _element_strides(g) is None:
        g = t.new_empty(t.shape)
    return g


def _check_backward_inputs(q, k, v, key_padding_mask, out, lse, dout):
    _check_inputs(q, k, v, key_padding_mask)
    b, h, nq, _ = q.shape
    want = (b, h, nq, v.shape[3])
    for name, t in (("out", out), ("dout", dout)):
        if tuple(t.shape) != want:
            raise ValueError(f"{name} has shape {tuple(t.shape)}; expected {want}")
        if t.dtype != q.dtype or t.device != q.device:
            raise TypeError(f"{name} must have the dtype and device of q")
    if tuple(lse.shape) != (b, h, nq) or lse.dtype != torch.float32:
        raise ValueError(f"lse must be float32 of shape {(b, h, nq)}; got {lse.dtype} "
                         f"{tuple(lse.shape)}")
    if lse.device != q.device:
        raise ValueError(f"lse must be on the device of q ({q.device}); got {lse.device}")


@torch.library.custom_op("smyrf::attention_backward", mutates_args=())
def _attention_backward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           key_padding_mask: Optional[torch.Tensor], out: torch.Tensor,
                           lse: torch.Tensor, dout: torch.Tensor, causal: bool, scale: float,
                           mode: str, n_hashes: int, q_cluster_size: int,
                           k_cluster_size: int, seed: int, budget: int, threads: int,
                           expand: int = -1
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) of smyrf::attention given the forward's inputs, its out and lse, and
    dout, the gradient with respect to out (smyrf_execute_backward). The settings are the
    forward's; the clusters are recomputed from the seed."""
    _check_backward_inputs(q, k, v, key_padding_mask, out, lse, dout)
    if _no_work(q, k):  # out does not depend on q, k, v
        return tuple(_grad_buffer(t).zero_() for t in (q, k, v))
    grads, tensors, strides = [], {}, {}
    for name, t in (("q", q), ("k", k), ("v", v)):
        g = _grad_buffer(t)
        if _element_strides(t) != _element_strides(g):
            t = torch.empty_like(g).copy_(t)  # the library wants dq's strides = q's
        grads.append(g)
        tensors[name], strides[name] = t, _element_strides(t)
    out, so = _usable(out)
    if _element_strides(dout) != so:
        dout = torch.empty_like(out).copy_(dout)  # dout takes out's strides
    strides["out"] = so
    lse = lse.contiguous()
    mask = _uint8_mask(key_padding_mask)
    with _on_device(q.device):
        plan = _plan_for(tensors["q"], tensors["v"], strides, causal, scale, mode, n_hashes,
                         q_cluster_size, k_cluster_size, seed, budget, threads, expand)
        _ws, workspace, workspace_bytes = _workspace(q.device, plan.backward_workspace_size)
        plan.backward_addresses(
            tensors["q"].data_ptr(), tensors["k"].data_ptr(), tensors["v"].data_ptr(),
            mask.data_ptr() if mask is not None else None, out.data_ptr(), lse.data_ptr(),
            dout.data_ptr(), grads[0].data_ptr(), grads[1].data_ptr(), grads[2].data_ptr(),
            _stream(q.device), workspace, workspace_bytes)
    return tuple(grads)


@_attention_backward_op.register_fake
def _attention_backward_fake(q, k, v, key_padding_mask, out, lse, dout, causal, scale, mode,
                             n_hashes, q_cluster_size, k_cluster_size, seed, budget, threads,
                             expand=-1):
    _check_backward_inputs(q, k, v, key_padding_mask, out, lse, dout)
    return _grad_buffer(q), _grad_buffer(k), _grad_buffer(v)


def _setup_context(ctx, inputs, output):
    (q, k, v, key_padding_mask, causal, scale, mode, n_hashes, q_cluster_size,
     k_cluster_size, seed, budget, _out_layout, threads, expand) = inputs
    out, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.save_for_backward(q, k, v, key_padding_mask, out, lse)
    ctx.settings = (causal, scale, mode, n_hashes, q_cluster_size, k_cluster_size, seed,
                    budget, threads, expand)


def _backward(ctx, dout, _dlse):
    # lse is marked non-differentiable: _dlse is zeros (or None) and is ignored.
    need_q, need_k, need_v = ctx.needs_input_grad[:3]
    none = (None,) * 12
    if not (need_q or need_k or need_v):
        return (None, None, None) + none
    q, k, v, key_padding_mask, out, lse = ctx.saved_tensors
    dq, dk, dv = torch.ops.smyrf.attention_backward(q, k, v, key_padding_mask, out, lse,
                                                    dout, *ctx.settings)
    return (dq if need_q else None, dk if need_k else None, dv if need_v else None) + none


_attention_op.register_autograd(_backward, setup_context=_setup_context)


def attention(q, k, v, *, n_hashes=2, q_cluster_size=64, k_cluster_size=None, causal=False,
              key_padding_mask=None, scale=None, seed=0, mode="smyrf", budget=None,
              expand=None, layout="bhnd", threads=0, return_lse=False):
    """SMYRF (or "dense", or "hybrid") attention of torch tensors; see smyrf.attention for
    the arguments. key_padding_mask [B, Nk]: a bool or integer tensor on the device of q,
    true / nonzero = valid key (a float mask is refused: convert an additive one with
    mask == 0). layout="bnhd" takes and returns [B, N, H, D] tensors. The output is a
    new tensor on the device of q; with return_lse=True, also lse [B, H, Nq] float32 (not
    differentiable). Differentiable with respect to q, k and v (the clusters are
    constants of the forward). With no batch, head, query or key, out is zeros and lse
    -inf, as SDPA answers (the library is not called)."""
    choice("mode", mode, MODES)
    choice("layout", layout, LAYOUTS)
    for name, value in (("budget", budget), ("expand", expand)):
        if mode != "hybrid" and value is not None:
            raise ValueError(f"{name} applies to mode='hybrid' only (mode={mode!r})")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if layout == "bnhd":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    out, lse = torch.ops.smyrf.attention(
        q, k, v, key_padding_mask, bool(causal), float(scale or 0.0), mode,
        integer("n_hashes", n_hashes), integer("q_cluster_size", q_cluster_size),
        integer("k_cluster_size", k_cluster_size, optional=True), seed_bits(seed),
        integer("budget", budget, optional=True), layout, integer("threads", threads),
        -1 if expand is None else integer("expand", expand))
    if layout == "bnhd":
        out = out.transpose(1, 2)
    return (out, lse) if return_lse else out
