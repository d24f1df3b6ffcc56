"""Gradients of torch.ops.smyrf.attention (smyrf_execute_backward through autograd).

The library computes in float32 only, so `gradcheck` in float64 cannot run the op itself.
Two kinds of checks stand in for it:

- Exact references in float64: torch autograd through a float64 pure-torch attention over
  the same keys. DENSE mode is compared with plain attention (itself checked against
  torch's float64 SDPA); SMYRF with one cluster per round with plain attention too; SMYRF
  with several clusters with attention over the *same key multiset*, which is read off
  the library: running the forward with v = identity gives each query's attention
  weights over the keys, and weight / exp(s - lse) is the number of times the query met
  each key (the clustering depends on q and k only). HYBRID with a budget covering every
  key is exact attention.
- Central finite differences (torch.autograd.gradcheck) on float32 inputs with loosened
  tolerances: eps = 1e-3 moves the float32 forward's rounding noise (~1e-7 relative) to
  ~1e-4 in the difference quotient, and the truncation error is ~eps^2, so atol = rtol =
  5e-3 still catches any missing or wrong term (those are O(1)). On these tiny problems
  and seeds no perturbation moves a query or key across a cluster boundary (the clusters
  are piecewise constant in q and k, and the backward treats them as constants).
"""

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import smyrf  # noqa: E402
import smyrf.torch as st  # noqa: E402
from conftest import require_cuda_backend  # noqa: E402

GRAD32 = dict(rtol=1e-4, atol=2e-5)   # float32 gradients vs the float64 reference
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python",
                       "train_tiny_transformer.py")


def make(b=2, h=4, hkv=None, nq=24, nk=None, d=8, dv=None, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hkv, nk, dv = hkv or h, nk or nq, dv or d
    q = torch.randn(b, h, nq, d, generator=g)
    k = torch.randn(b, hkv, nk, d, generator=g)
    v = torch.randn(b, hkv, nk, dv, generator=g)
    dout = torch.randn(b, h, nq, dv, generator=g, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype), dout


def allowed_mask(b, nq, nk, key_padding_mask=None, causal=False):
    """[B, 1, Nq, Nk] bool: bottom-right aligned causal mask and key padding."""
    allowed = torch.ones(b, 1, nq, nk, dtype=torch.bool)
    if key_padding_mask is not None:
        allowed &= key_padding_mask.bool()[:, None, None, :]
    if causal:
        i = torch.arange(nq)[:, None]
        j = torch.arange(nk)[None, :]
        allowed &= (j <= i + (nk - nq))[None, None]
    return allowed


def reference(q, k, v, key_padding_mask=None, causal=False, scale=None, counts=None):
    """Float64 attention, differentiable: GQA by repeating k and v, rows with no allowed
    key give zeros. counts [B, H, Nq, Nk]: how often each query met each key (the SMYRF
    multiset); None = every allowed key once."""
    b, h, nq, d = q.shape
    hkv, nk = k.shape[1], k.shape[2]
    k = k.repeat_interleave(h // hkv, dim=1)
    v = v.repeat_interleave(h // hkv, dim=1)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    s = scale * q @ k.transpose(-1, -2)
    allowed = allowed_mask(b, nq, nk, key_padding_mask, causal).expand(b, h, nq, nk)
    if counts is not None:
        allowed = allowed & (counts > 0)
        s = s + torch.where(counts > 0, counts.clamp(min=1).log(), torch.zeros_like(counts))
    s = s.masked_fill(~allowed, -math.inf)
    any_key = allowed.any(-1, keepdim=True)
    s = torch.where(any_key, s, torch.zeros_like(s))  # no NaN in rows with no key
    p = torch.softmax(s, dim=-1) * any_key
    return p @ v


def op_grads(q, k, v, dout, **kw):
    """(out, dq, dk, dv) of smyrf.torch.attention on leaves, for the cotangent dout."""
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = st.attention(q, k, v, **kw)
    out.backward(dout.to(out.dtype))
    return out.detach(), q.grad, k.grad, v.grad


def ref_grads(q, k, v, dout, **kw):
    q, k, v = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    out = reference(q, k, v, **kw)
    out.backward(dout)
    return out.detach(), q.grad, k.grad, v.grad


def assert_grads(got, want, **tol):
    tol = tol or GRAD32
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a.double(), b, msg=lambda m: f"{name}: {m}", **tol)


def padding(b, nk, seed=1):
    mask = torch.rand(b, nk, generator=torch.Generator().manual_seed(seed)) < 0.7
    mask[:, 0] = True
    mask[-1, nk // 2:] = False  # a long padded tail
    return mask


CASES = {
    "plain": (dict(), dict()),
    "gqa": (dict(h=6, hkv=2), dict()),
    "cross": (dict(nq=12, nk=30, dv=5), dict()),
    "padding": (dict(nk=30), dict(key_padding_mask="pad")),
    "causal": (dict(), dict(causal=True)),
    "causal_cross": (dict(nq=10, nk=26), dict(causal=True)),
    # Nq > Nk with causal: the first queries have no allowed key (zeros, lse = -inf).
    "empty_rows": (dict(nq=20, nk=12, h=4, hkv=2), dict(causal=True, key_padding_mask="pad")),
    "scale": (dict(), dict(scale=0.3)),
}


def case(name):
    shape, opts = CASES[name]
    q, k, v, dout = make(**shape)
    opts = dict(opts)
    if opts.get("key_padding_mask") == "pad":
        opts["key_padding_mask"] = padding(q.shape[0], k.shape[2])
    return q, k, v, dout, opts


def test_reference_is_torch_sdpa():
    """The float64 reference used below is torch's SDPA where SDPA is defined."""
    q, k, v, dout = make(h=4, hkv=2, nq=10, nk=16)
    mask = padding(2, 16)
    for causal in (False, True):
        allowed = allowed_mask(2, 10, 16, mask, causal)
        want = ref_grads(q, k, v, dout, key_padding_mask=mask, causal=causal)
        qd, kd, vd = (t.double().requires_grad_(True) for t in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(qd, kd, vd, attn_mask=allowed,
                                                               enable_gqa=True)
        out.backward(dout)
        for a, b in zip(want, (out.detach(), qd.grad, kd.grad, vd.grad)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dense_matches_float64_reference(name):
    q, k, v, dout, opts = case(name)
    got = op_grads(q, k, v, dout, mode="dense", **opts)
    assert_grads(got, ref_grads(q, k, v, dout, **opts))


@pytest.mark.parametrize("name", ["plain", "gqa", "cross", "padding", "causal", "empty_rows"])
@pytest.mark.parametrize("n_hashes", [1, 3])
def test_smyrf_one_cluster_is_dense(name, n_hashes):
    """One cluster per round holds every key: a key met in R rounds counts R times in
    both numerator and denominator, so out and its gradients are exact attention's."""
    q, k, v, dout, opts = case(name)
    got = op_grads(q, k, v, dout, mode="smyrf", n_hashes=n_hashes,
                   q_cluster_size=q.shape[2], seed=7, **opts)
    assert_grads(got, ref_grads(q, k, v, dout, **opts))


def met_counts(q, k, **kw):
    """[B, H, Nq, Nk] float64: how often each query met each key in the SMYRF forward
    with these settings, read off a forward with v = identity (dv = Nk)."""
    b, hkv, nk, _ = k.shape
    eye = torch.eye(nk).expand(b, hkv, nk, nk).contiguous()
    with torch.no_grad():
        weights, lse = st.attention(q, k, eye, return_lse=True, **kw)
    scale = kw.get("scale") or 1.0 / math.sqrt(q.shape[3])
    h = q.shape[1]
    s = scale * q.double() @ k.double().repeat_interleave(h // hkv, 1).transpose(-1, -2)
    lse = lse.double()[..., None]
    rows = torch.isfinite(lse)
    counts = torch.where(rows & (weights > 0),
                         weights.double() * torch.exp(torch.where(rows, lse, 0.0) - s), 0.0)
    rounded = counts.round()
    assert (counts - rounded).abs().max() < 1e-3, "weights are not whole multiples"
    return rounded


@pytest.mark.parametrize("name", ["plain", "gqa", "cross", "padding", "causal", "empty_rows"])
def test_smyrf_clusters_match_reference_on_the_same_keys(name):
    """SMYRF with several clusters: the gradient of attention over the multiset of keys
    each query met (recovered from the library's own forward), in float64."""
    q, k, v, dout, opts = case(name)
    smyrf_opts = dict(mode="smyrf", n_hashes=3, q_cluster_size=4, seed=11)
    counts = met_counts(q, k, **smyrf_opts, **opts)
    per_query = counts.sum(-1)
    assert (per_query < k.shape[2] * 3).any(), "expected queries to miss some keys"
    got = op_grads(q, k, v, dout, **smyrf_opts, **opts)
    assert_grads(got, ref_grads(q, k, v, dout, counts=counts, **opts))


def gradcheck32(q, k, v, **kw):
    """Central finite differences on float32 inputs (see the module docstring)."""
    inputs = tuple(t.detach().clone().requires_grad_(True) for t in (q, k, v))

    def f(q, k, v):
        return st.attention(q, k, v, **kw)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not a double precision.*")
        return torch.autograd.gradcheck(f, inputs, eps=1e-3, atol=5e-3, rtol=5e-3,
                                        nondet_tol=0.0)


@pytest.mark.parametrize("opts", [
    dict(mode="dense"),
    dict(mode="dense", causal=True, key_padding_mask="pad"),
    dict(mode="smyrf", n_hashes=2, q_cluster_size=4, seed=3),
    dict(mode="smyrf", n_hashes=2, q_cluster_size=4, seed=3, causal=True,
         key_padding_mask="pad"),
    dict(mode="hybrid", budget=8),
    dict(mode="hybrid", budget=8, causal=True),
], ids=["dense", "dense-causal-pad", "smyrf", "smyrf-causal-pad", "hybrid", "hybrid-causal"])
def test_gradcheck_float32(opts):
    q, k, v, _ = make(b=1, h=2, hkv=1, nq=12, nk=16, d=4, dv=3, seed=5)
    opts = dict(opts)
    if opts.get("key_padding_mask") == "pad":
        opts["key_padding_mask"] = padding(1, 16, seed=2)
    if opts["mode"] == "hybrid":
        # 8 keys per query of 16: window + sinks exact, at least one k-means summary.
        with smyrf.Plan(batch=1, heads=2, kv_heads=1, q_len=12, k_len=16, qk_dim=4,
                        v_dim=3, mode="hybrid", budget=8, backend="cpu") as plan:
            assert plan.get("summaries") >= 1 and plan.get("window") < 16
    assert gradcheck32(q, k, v, **opts)


def test_hybrid_dense_limit_is_dense():
    """HYBRID with a budget covering every key computes exact attention."""
    for name in ("plain", "gqa", "causal", "padding"):
        q, k, v, dout, opts = case(name)
        got = op_grads(q, k, v, dout, mode="hybrid", budget=k.shape[2] + 8, **opts)
        assert_grads(got, ref_grads(q, k, v, dout, **opts))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types(dtype):
    q, k, v, dout, opts = case("padding")
    got = op_grads(q.to(dtype), k.to(dtype), v.to(dtype), dout, mode="dense", **opts)
    for t in got:
        assert t.dtype == dtype
    want = ref_grads(q.to(dtype), k.to(dtype), v.to(dtype), dout.to(dtype).double(), **opts)
    assert_grads(got, want, rtol=3e-2, atol=3e-2)


def test_layouts_views_and_expanded_cotangents():
    """bnhd inputs, a fused QKV projection viewed per head, a non-contiguous last
    dimension and an expanded dout (from .sum()) all give the contiguous case's grads."""
    q, k, v, dout = make(nq=20)

    def grads(fn, *leaves):
        leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
        fn(*leaves).backward()
        return [t.grad for t in leaves]

    def plain(q, k, v):
        return (st.attention(q, k, v, mode="dense") * dout.float()).sum()

    want = grads(plain, q, k, v)

    def bnhd(qt, kt, vt):
        out = st.attention(qt, kt, vt, mode="dense", layout="bnhd")
        return (out * dout.float().transpose(1, 2)).sum()

    got = grads(bnhd, *(t.transpose(1, 2).contiguous() for t in (q, k, v)))
    for a, b in zip(got, want):
        torch.testing.assert_close(a.transpose(1, 2), b)

    def fused(qkv):  # [B, N, 3 * H * D] -> three strided [B, H, N, D] views
        views = [x.unflatten(-1, (4, 8)).transpose(1, 2) for x in qkv.chunk(3, dim=-1)]
        return plain(*views)

    qkv = torch.cat([t.transpose(1, 2).flatten(2) for t in (q, k, v)], dim=-1)
    (g,) = grads(fused, qkv)
    for a, b in zip(g.chunk(3, dim=-1), want):
        torch.testing.assert_close(a.unflatten(-1, (4, 8)).transpose(1, 2), b)

    def odd(q, k, v):  # last dimension not contiguous: copied, not misread
        q, k, v = (t.transpose(2, 3).contiguous().transpose(2, 3) for t in (q, k, v))
        return plain(q, k, v)

    for a, b in zip(grads(odd, q, k, v), want):
        torch.testing.assert_close(a, b)

    # d(out.sum())/d out is an expanded tensor of ones (stride 0).
    got = grads(lambda q, k, v: st.attention(q, k, v, mode="dense").sum(), q, k, v)
    want1 = ref_grads(q, k, v, torch.ones_like(dout))[1:]
    for a, b in zip(got, want1):
        torch.testing.assert_close(a.double(), b, **GRAD32)


def test_only_requested_gradients_and_lse():
    q, k, v, dout = make()
    v.requires_grad_(True)
    out, lse = st.attention(q, k, v, mode="dense", return_lse=True)
    assert out.requires_grad and not lse.requires_grad
    (out.double() * dout).sum().backward()
    assert q.grad is None and k.grad is None
    torch.testing.assert_close(v.grad.double(), ref_grads(q, k, v, dout)[3], **GRAD32)
    with torch.no_grad():
        assert not st.attention(q, k, v).requires_grad
    # no second derivatives: a clear error, not a wrong number
    q.requires_grad_(True)
    (g,) = torch.autograd.grad(st.attention(q, k, v, mode="dense").pow(2).sum(), q,
                               create_graph=True)
    with pytest.raises(RuntimeError, match="attention_backward"):
        g.sum().backward()


def test_backward_op_errors():
    q, k, v, dout = make()
    out, lse = st.attention(q, k, v, mode="dense", return_lse=True)
    args = (False, 0.0, "dense", 1, 64, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="dout has shape"):
        torch.ops.smyrf.attention_backward(q, k, v, None, out, lse, out[:, :2], *args)
    with pytest.raises(ValueError, match="lse must be float32"):
        torch.ops.smyrf.attention_backward(q, k, v, None, out, lse.double(), out, *args)
    with pytest.raises(TypeError, match="dtype and device"):
        torch.ops.smyrf.attention_backward(q, k, v, None, out, lse, out.double(), *args)
    # the meta device stands in for a second device (no GPU is needed): its pointer must
    # not reach the library
    with pytest.raises(ValueError, match="lse must be on the device of q"):
        torch.ops.smyrf.attention_backward(q, k, v, None, out, lse.to("meta"), out, *args)


OPCHECK_ARGS = [
    # q, k, v, mask, causal, scale, mode, n_hashes, q_cluster_size, k_cluster_size, seed,
    # budget, out_layout, threads
    ("smyrf", lambda q, k, v, m: (q, k, v, None, False, 0.0, "smyrf", 2, 8, 0, 3, 0,
                                  "bhnd", 0)),
    ("dense", lambda q, k, v, m: (q, k, v, m, True, 0.5, "dense", 1, 64, 0, 0, 0, "bnhd", 1)),
    ("smyrf", lambda q, k, v, m: (q, k[:, :2], v[:, :2], m, False, 0.0, "smyrf", 1, 4, 0,
                                  0, 0, "bnhd", 0)),
    ("hybrid", lambda q, k, v, m: (q, k, v, m, True, 0.0, "hybrid", 1, 64, 0, 0, 12,
                                   "bhnd", 0)),
]


@pytest.mark.parametrize("index", range(len(OPCHECK_ARGS)))
def test_opcheck_with_gradients(index):
    """opcheck with inputs that require grad: schema, autograd registration, fake tensor
    (forward and backward ops), and AOT dispatch (eager vs traced gradients)."""
    mode, make_args = OPCHECK_ARGS[index]
    q, k, v, _ = make(nq=24, d=8)
    q, k, v = (t.requires_grad_(True) for t in (q, k, v))
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[1, 20:] = False
    args = make_args(q, k, v, mask)
    torch.library.opcheck(torch.ops.smyrf.attention.default, args)
    out, lse = torch.ops.smyrf.attention(*(a.detach() if isinstance(a, torch.Tensor) else a
                                           for a in args))
    bargs = (args[0].detach(), args[1].detach(), args[2].detach(), args[3], out, lse,
             torch.randn_like(out)) + tuple(args[i] for i in (4, 5, 6, 7, 8, 9, 10, 11, 13))
    torch.library.opcheck(torch.ops.smyrf.attention_backward.default, bargs)


def test_torch_compile_backward():
    q, k, v, dout = make()
    mask = padding(2, 24)

    def f(q, k, v):
        out = st.attention(q * 0.5, k, v, q_cluster_size=8, key_padding_mask=mask,
                           causal=True)
        return (out * dout.float()).sum()

    def grads(fn):
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
        fn(*leaves).backward()
        return [t.grad for t in leaves]

    want = grads(f)
    got = grads(torch.compile(f, backend="aot_eager", fullgraph=True))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")
@pytest.mark.parametrize("mode", ["dense", "smyrf", "hybrid"])
def test_cuda_gradients_match_cpu(mode):
    """CUDA tensors: the backward runs on the current stream and matches the CPU one."""
    require_cuda_backend(mode, torch.cuda.current_device())
    q, k, v, dout, opts = case("empty_rows")
    kw = dict(mode=mode, **opts)
    kw.update({"smyrf": dict(n_hashes=2, q_cluster_size=4, seed=3),
               "hybrid": dict(budget=8), "dense": {}}[mode])
    want = op_grads(q, k, v, dout, **kw)
    kw["key_padding_mask"] = kw["key_padding_mask"].cuda()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = op_grads(q.cuda(), k.cuda(), v.cuda(), dout.cuda(), **kw)
    stream.synchronize()
    for a, b in zip(got, want):
        assert a.is_cuda
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- NumPy Plan.backward

def test_numpy_plan_backward_matches_torch():
    q, k, v, dout = make(h=4, hkv=2, nq=20, nk=28, dv=6)
    mask = padding(2, 28)
    qn, kn, vn = (t.numpy() for t in (q, k, v))
    dn = dout.float().numpy()
    with smyrf.Plan(batch=2, heads=4, kv_heads=2, q_len=20, k_len=28, qk_dim=8, v_dim=6,
                    mode="smyrf", n_hashes=2, q_cluster_size=4, causal=True, seed=9,
                    backend="cpu") as plan:
        out, lse = plan.execute(qn, kn, vn, key_padding_mask=mask.numpy(), return_lse=True)
        dq, dk, dv = plan.backward(qn, kn, vn, out, lse, dn,
                                   key_padding_mask=mask.numpy())
        # preallocated outputs are written in place
        bufs = [np.full_like(a, np.nan) for a in (qn, kn, vn)]
        again = plan.backward(qn, kn, vn, out, lse, dn, key_padding_mask=mask.numpy(),
                              dq=bufs[0], dk=bufs[1], dv=bufs[2])
        for a, b, c in zip(again, bufs, (dq, dk, dv)):
            assert a is b
            np.testing.assert_array_equal(a, c)
        with pytest.raises(ValueError, match="dout has shape"):
            plan.backward(qn, kn, vn, out, lse, dn[:, :1], key_padding_mask=mask.numpy())
        with pytest.raises(ValueError, match="lse must be float32"):
            plan.backward(qn, kn, vn, out, lse[:, :1], dn)
        ro = np.zeros_like(qn)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="dq is read-only"):
            plan.backward(qn, kn, vn, out, lse, dn, dq=ro)
        with pytest.raises(TypeError, match="dk has dtype"):
            plan.backward(qn, kn, vn, out, lse, dn, dk=kn.astype(np.float64))
    got = op_grads(q, k, v, dout, mode="smyrf", n_hashes=2, q_cluster_size=4, causal=True,
                   seed=9, key_padding_mask=mask)
    for a, b in zip((out, dq, dk, dv), got):
        np.testing.assert_array_equal(a, b.numpy())
    # masked keys get zero gradient
    padded = ~mask.numpy()
    assert not dk[padded.nonzero()[0], :, padded.nonzero()[1]].any()
    assert not dv[padded.nonzero()[0], :, padded.nonzero()[1]].any()


def test_numpy_plan_backward_strided_views():
    """A plan with explicit strides (views of a fused QKV array): the gradients come back
    with the same strides, with their own memory."""
    rng = np.random.default_rng(3)
    b, n, h, d = 2, 16, 2, 8
    fused = rng.standard_normal((b, n, 3, h, d)).astype(np.float32)
    q, k, v = (fused[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, H, N, D]
    st_ = (n * 3 * h * d, d, 3 * h * d)
    with smyrf.Plan(batch=b, heads=h, q_len=n, qk_dim=d, mode="dense", backend="cpu",
                    strides={"q": st_, "k": st_, "v": st_}) as plan:
        out, lse = plan.execute(q, k, v, return_lse=True)
        dout = np.ones_like(out)
        dq, dk, dv = plan.backward(q, k, v, out, lse, dout)
    for g, x in zip((dq, dk, dv), (q, k, v)):
        assert g.strides == x.strides and not np.shares_memory(g, fused)
    want = ref_grads(*(torch.from_numpy(np.ascontiguousarray(x)) for x in (q, k, v)),
                     torch.ones(b, h, n, d, dtype=torch.float64))
    for a, w in zip((out, dq, dk, dv), want):
        np.testing.assert_allclose(a, w.numpy(), rtol=1e-4, atol=2e-5)


# ---------------------------------------------------------------- example smoke test

def test_training_example_smoke(tmp_path):
    """examples/python/train_tiny_transformer.py end to end in a few steps."""
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, EXAMPLE, "--steps", "4", "--seq-len", "64", "--d-model", "32",
         "--layers", "1", "--batch", "2", "--eval-batches", "1", "--q-cluster-size", "16",
         "--out-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "losses.csv").exists()
    assert (tmp_path / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trained dense, evaluated smyrf" in proc.stdout
