"""smyrf.torch: the torch.ops.smyrf.attention custom op."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import smyrf  # noqa: E402
import smyrf.torch as st  # noqa: E402
from conftest import require_cuda_backend  # noqa: E402
from reference import dense  # noqa: E402

F32 = dict(rtol=2e-4, atol=2e-5)


def qkv(b=2, h=4, hkv=None, nq=40, nk=None, d=16, dv=None, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    hkv, nk, dv = (h if hkv is None else hkv), (nq if nk is None else nk), (dv or d)
    return (torch.randn(b, h, nq, d, generator=g).to(dtype),
            torch.randn(b, hkv, nk, d, generator=g).to(dtype),
            torch.randn(b, hkv, nk, dv, generator=g).to(dtype))


def ref(q, k, v, **kw):
    return torch.from_numpy(dense(*(t.double().numpy() for t in (q, k, v)), **kw)[0])


@pytest.mark.parametrize("mode", ["dense", "smyrf"])
def test_matches_reference(mode):
    q, k, v = qkv()
    out = st.attention(q, k, v, mode=mode, q_cluster_size=64)
    assert out.shape == (2, 4, 40, 16) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref(q, k, v), **F32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types(dtype):
    q, k, v = qkv(dtype=dtype)
    out = st.attention(q, k, v, mode="dense")
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), ref(q, k, v), rtol=2e-2, atol=2e-2)


def test_masks_gqa_causal_cross():
    q, k, v = qkv(h=6, hkv=3, nq=20, nk=50, dv=24)
    mask = torch.rand(2, 50, generator=torch.Generator().manual_seed(1)) < 0.8
    mask[:, -1] = True
    for causal in (False, True):
        out, lse = st.attention(q, k, v, causal=causal, key_padding_mask=mask,
                                q_cluster_size=64, return_lse=True)
        torch.testing.assert_close(out.double(), ref(q, k, v, causal=causal,
                                                     key_padding_mask=mask.numpy()), **F32)
        assert lse.shape == (2, 6, 20) and lse.dtype == torch.float32
    # integer masks: nonzero = valid
    want = st.attention(q, k, v, key_padding_mask=mask, q_cluster_size=64)
    for dtype in (torch.uint8, torch.int8, torch.int32, torch.int64):
        out_i = st.attention(q, k, v, key_padding_mask=mask.to(dtype) * 3, q_cluster_size=64)
        torch.testing.assert_close(out_i, want)


FLOAT_MASK = (r"key_padding_mask must be bool or an integer type \(true / nonzero = valid "
              r"key\); got torch\.{}.*mask == 0")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16,
                                   torch.complex64])
def test_float_masks_are_refused(dtype):
    # An additive float mask (0 = keep, -inf = pad) read as nonzero = valid would keep
    # exactly the padded keys: refused, as the NumPy API refuses it.
    q, k, v = qkv(b=1, nq=16)
    valid = torch.arange(16) < 10
    additive = torch.zeros(1, 16, dtype=dtype).masked_fill(~valid, float("-inf"))
    match = FLOAT_MASK.format(str(dtype).split(".")[1])
    with pytest.raises(TypeError, match=match):
        st.attention(q, k, v, key_padding_mask=additive)
    # the fake kernel (meta tensors, torch.compile) applies the same rule
    with pytest.raises(TypeError, match=match):
        st.attention(*(t.to("meta") for t in (q, k, v)), key_padding_mask=additive.to("meta"))
    # and so does the backward op (its fake kernel shares the check)
    out, lse = st.attention(q, k, v, return_lse=True)
    with pytest.raises(TypeError, match=match):
        torch.ops.smyrf.attention_backward(q, k, v, additive, out, lse, out, False, 0.0,
                                           "dense", 2, 64, 0, 0, 0, 0)
    converted = st.attention(q, k, v, mode="dense", key_padding_mask=additive == 0)
    torch.testing.assert_close(converted.double(),
                               ref(q, k, v, key_padding_mask=valid[None].numpy()), **F32)


def test_float_mask_is_refused_under_torch_compile():
    q, k, v = qkv(b=1, nq=16)

    def f(q, k, v, mask):
        return st.attention(q, k, v, mode="dense", key_padding_mask=mask)

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    # dynamo wraps the fake kernel's TypeError in an error of its own that quotes it
    with pytest.raises(Exception, match=FLOAT_MASK.format("float32")):
        compiled(q, k, v, torch.zeros(1, 16))


def test_bnhd_layout_and_strided_views():
    q, k, v = qkv()
    qt, kt, vt = (t.transpose(1, 2).contiguous() for t in (q, k, v))  # [B, N, H, D]
    out = st.attention(qt, kt, vt, mode="dense", layout="bnhd")
    assert out.shape == qt.shape and out.is_contiguous()
    torch.testing.assert_close(out.transpose(1, 2).double(), ref(q, k, v), **F32)
    # A fused projection output viewed per head: no copy needed, same result.
    fused = torch.randn(2, 40, 3 * 64)
    views = [x.view(2, 40, 4, 16).transpose(1, 2) for x in fused.split(64, dim=-1)]
    assert not views[0].is_contiguous()
    torch.testing.assert_close(st.attention(*views, mode="dense").double(), ref(*views), **F32)
    # A last dimension that is not contiguous is copied, not misread.
    odd = [t.transpose(2, 3).contiguous().transpose(2, 3) for t in (q, k, v)]
    torch.testing.assert_close(st.attention(*odd, mode="dense").double(), ref(q, k, v), **F32)


def test_same_as_numpy_path():
    q, k, v = qkv(nq=200, d=32)
    a = st.attention(q, k, v, q_cluster_size=16, n_hashes=3, seed=5)
    b = smyrf.attention(q.numpy(), k.numpy(), v.numpy(), q_cluster_size=16, n_hashes=3, seed=5)
    np.testing.assert_array_equal(a.numpy(), b)


def test_plan_cache():
    st.clear_plan_cache()
    q, k, v = qkv()
    st.attention(q, k, v)
    st.attention(q * 2, k, v)
    assert len(st._plans) == 1
    st.attention(q, k, v, seed=1)
    assert len(st._plans) == 2
    for n in range(st.PLAN_CACHE_SIZE + 5):
        st.attention(*qkv(nq=n + 1))
    assert len(st._plans) == st.PLAN_CACHE_SIZE
    st.clear_plan_cache()
    assert not st._plans


def test_errors():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="torch.Tensor"):
        st.attention(q.numpy(), k, v)
    with pytest.raises(TypeError, match="dtype"):
        st.attention(q.double(), k.double(), v.double())
    with pytest.raises(TypeError, match="share one dtype"):
        st.attention(q, k.half(), v)
    with pytest.raises(ValueError, match="4-d"):
        st.attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="divide"):
        st.attention(q, k[:, :3], v[:, :3])
    with pytest.raises(ValueError, match="key_padding_mask has shape"):
        st.attention(q, k, v, key_padding_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="must be one of"):
        st.attention(q, k, v, mode="approximate")
    with pytest.raises(ValueError, match="hybrid"):
        st.attention(q, k, v, budget=64)
    with pytest.raises(smyrf.InvalidArgumentError, match="SMYRF_PARAM_N_HASHES"):
        st.attention(q, k, v, n_hashes=0)
    with pytest.raises(ValueError, match="batch sizes differ"):
        st.attention(q, k[:1], v[:1])
    with pytest.raises(ValueError, match="share their last dimension"):
        st.attention(q, k[..., :8], v)
    with pytest.raises(ValueError, match="same heads and length"):
        st.attention(q, k, v[:, :, :20])
    # a zero head dimension is named here, not misread by the library as "not set"
    # (qk_dim) or "same as qk_dim" (v_dim); the fake kernel shares the check
    for device in ("cpu", "meta"):
        qd, kd, vd = (t.to(device) for t in (q, k, v))
        for args, message in (((qd[..., :0], kd[..., :0], vd), "q and k have last dimension 0"),
                              ((qd, kd, vd[..., :0]), "v has last dimension 0")):
            with pytest.raises(ValueError, match=f"^{message}; the head dimension must be >= 1$"):
                st.attention(*args, mode="dense")
    # the meta device stands in for a second device (no GPU is needed)
    with pytest.raises(ValueError, match="on one device"):
        st.attention(q, k.to("meta"), v)
    with pytest.raises(ValueError, match="on the device of q"):
        st.attention(q, k, v, key_padding_mask=torch.ones(2, 40, dtype=torch.bool, device="meta"))


@pytest.mark.parametrize("b, h, hkv, nq, nk", [(0, 4, 2, 5, 7), (2, 0, 0, 5, 7),
                                               (2, 4, 2, 0, 7), (2, 4, 2, 5, 0)])
def test_empty_problems_answer_as_sdpa(b, h, hkv, nq, nk):
    # The library refuses zero sizes; the op answers as SDPA does, gradients included.
    q, k, v = (t.requires_grad_() for t in qkv(b=b, h=h, hkv=hkv, nq=nq, nk=nk, dv=24))
    out, lse = st.attention(q, k, v, causal=True, return_lse=True,
                            key_padding_mask=torch.ones(b, nk, dtype=torch.bool))
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(h // hkv if hkv else 1, 1),
        v.repeat_interleave(h // hkv if hkv else 1, 1))
    assert out.shape == sdpa.shape == (b, h, nq, 24) and torch.equal(out, sdpa.detach())
    assert lse.shape == (b, h, nq) and bool(torch.isneginf(lse).all())
    (out.sum() + (q.sum() + k.sum() + v.sum()) * 0).backward()
    for t in (q, k, v):
        assert t.grad.shape == t.shape and not t.grad.any()
    bnhd = st.attention(*(t.detach().transpose(1, 2) for t in (q, k, v)), layout="bnhd")
    assert bnhd.shape == (b, nq, h, 24) and not bnhd.any()
    with pytest.raises(ValueError, match="key_padding_mask has shape"):
        st.attention(q, k, v, key_padding_mask=torch.ones(b, nk + 1, dtype=torch.bool))


def test_broadcast_views_are_copied_not_misread():
    # expand() gives a stride of 0, which the library refuses; the op copies such a view
    q, k, v = qkv()
    one_key = k[:, :, :1].expand(k.shape)
    assert one_key.stride(2) == 0
    torch.testing.assert_close(st.attention(q, one_key, v, mode="dense").double(),
                               ref(q, one_key.contiguous(), v), **F32)


@pytest.mark.parametrize("shape, strides", [
    ((1, 1, 33, 8), (40, 40, 1, 1)),   # sliding windows: each token's row overlaps the next
    ((1, 4, 5, 8), (64, 2, 12, 1)),    # heads 2 elements apart: rows of heads overlap
])
def test_overlapping_rows_are_read_right(shape, strides):
    # The library refuses a token stride below the row length: such a view is copied.
    # Overlapping heads it reads in place; their gradients go to a buffer of their own.
    x = torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    leaf = x.float().requires_grad_()
    out = st.attention(*(leaf.as_strided(shape, strides),) * 3, mode="dense")
    x = x.requires_grad_()
    q = x.as_strided(shape, strides)
    want = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(out.double(), want.detach(), **F32)
    dout = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out.backward(dout.float())
    want.backward(dout)
    torch.testing.assert_close(leaf.grad.double(), x.grad, rtol=1e-4, atol=1e-5)


def test_hybrid_dense_limit():
    # A budget covering every key: HYBRID is exact attention (the CPU backend has it).
    q, k, v = qkv(nq=40)
    out = st.attention(q, k, v, mode="hybrid", budget=64)
    torch.testing.assert_close(out.double(), ref(q, k, v), **F32)


def test_opcheck():
    q, k, v = qkv(nq=24, d=8)
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[1, 20:] = False
    for args in (
        (q, k, v, None, False, 0.0, "smyrf", 2, 8, 0, 3, 0, "bhnd", 0),
        (q, k, v, mask, True, 0.5, "dense", 1, 64, 0, 0, 0, "bnhd", 1),
        (q, k[:, :2], v[:, :2], mask, False, 0.0, "smyrf", 1, 4, 0, 0, 0, "bnhd", 0),
    ):
        torch.library.opcheck(torch.ops.smyrf.attention.default, args)


def test_torch_compile_traces_through_the_op():
    q, k, v = qkv()

    def f(q, k, v):
        return st.attention(q * 0.5, k, v, q_cluster_size=16).sum(dim=-1)

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(q, k, v), f(q, k, v))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")
def test_cuda_tensors_on_the_current_stream():
    require_cuda_backend("dense", torch.cuda.current_device())
    q, k, v = (t.cuda() for t in qkv())
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = st.attention(q, k, v, mode="dense")
    stream.synchronize()
    assert out.is_cuda
    torch.testing.assert_close(out.cpu().double(), ref(*(t.cpu() for t in (q, k, v))), **F32)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_cuda_call_leaves_other_devices_alone():
    # A fresh process that only ever uses cuda:1: the forward and backward (plan creation,
    # execute, the device switches) must not create a CUDA context on device 0.
    require_cuda_backend("dense", 1)
    code = (
        "import torch, smyrf.torch as st\n"
        "q = torch.randn(1, 2, 64, 16, device='cuda:1', requires_grad=True)\n"
        "st.attention(q, q, q, n_hashes=2, q_cluster_size=16).sum().backward()\n"
        "torch.cuda.synchronize(1)\n"
        "assert not torch._C._cuda_hasPrimaryContext(0), 'a context on device 0'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
