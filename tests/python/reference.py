"""Float64 reference attention for the tests, written from ALGORITHM.md's dense
definition: bottom-right aligned causal mask, key-padding mask, grouped-query heads, and
rows with no allowed key giving zeros with lse = -inf."""

import numpy as np


def to_bhnd(x, layout):
    return x if layout == "bhnd" else x.transpose(0, 2, 1, 3)


def dense(q, k, v, *, causal=False, key_padding_mask=None, scale=None, layout="bhnd"):
    """(out, lse) in float64; out in `layout`, lse [B, H, Nq]."""
    q, k, v = (to_bhnd(np.asarray(x, dtype=np.float64), layout) for x in (q, k, v))
    b, h, nq, d = q.shape
    hkv, nk = k.shape[1], k.shape[2]
    group = h // hkv
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    s = scale * q @ k.transpose(0, 1, 3, 2)
    allowed = np.ones((b, 1, nq, nk), dtype=bool)
    if key_padding_mask is not None:
        allowed &= np.asarray(key_padding_mask, dtype=bool)[:, None, None, :]
    if causal:
        i = np.arange(nq)[:, None]
        j = np.arange(nk)[None, :]
        allowed &= (j <= i + (nk - nq))[None, None]
    allowed = np.broadcast_to(allowed, s.shape)
    s = np.where(allowed, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    any_key = np.isfinite(m)
    p = np.where(allowed, np.exp(s - np.where(any_key, m, 0.0)), 0.0)
    total = p.sum(axis=-1, keepdims=True)
    out = np.where(any_key, (p @ v) / np.where(any_key, total, 1.0), 0.0)
    lse = np.where(any_key, m + np.log(np.where(any_key, total, 1.0)), -np.inf)[..., 0]
    return to_bhnd(out, layout), lse


def rel_error(approx, exact):
    """||approx - exact|| / ||exact|| over the whole array."""
    exact = np.asarray(exact, dtype=np.float64)
    return float(np.linalg.norm(np.asarray(approx, dtype=np.float64) - exact) /
                 np.linalg.norm(exact))


def dense_grads(q, k, v, dout, scale=None):
    """(dq, dk, dv) in float64 of dense attention [B, H, N, d] without masks, for the
    cotangent dout of its out (softmax's backward: dS = P * (dP - rowsum(dP * P)))."""
    q, k, v, dout = (np.asarray(x, dtype=np.float64) for x in (q, k, v, dout))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = scale * q @ k.transpose(0, 1, 3, 2)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    dp = dout @ v.transpose(0, 1, 3, 2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return scale * ds @ k, scale * ds.transpose(0, 1, 3, 2) @ q, p.transpose(0, 1, 3, 2) @ dout
