"""smyrf.attention and smyrf.Plan on NumPy arrays, against the float64 reference."""

import gc
import threading

import numpy as np
import pytest

import smyrf
from conftest import randn
from reference import dense, dense_grads, rel_error

F32 = dict(rtol=2e-4, atol=2e-5)
F16 = dict(rtol=1e-2, atol=3e-3)


def qkv(rng, b=2, h=4, hkv=None, nq=37, nk=None, d=16, dv=None, dtype=np.float32,
        layout="bhnd"):
    hkv, nk, dv = (h if hkv is None else hkv), (nq if nk is None else nk), (dv or d)
    shape = (lambda bb, hh, nn, dd: (bb, hh, nn, dd) if layout == "bhnd" else (bb, nn, hh, dd))
    return (randn(rng, *shape(b, h, nq, d), dtype=dtype),
            randn(rng, *shape(b, hkv, nk, d), dtype=dtype),
            randn(rng, *shape(b, hkv, nk, dv), dtype=dtype))


# ---------------------------------------------------------------- dense and exact SMYRF

def rounds(mode, n_hashes=2):
    """log of how often each key is met: SMYRF's LSE counts a key once per round."""
    return np.log(n_hashes) if mode == "smyrf" else 0.0


@pytest.mark.parametrize("mode", ["dense", "smyrf"])
@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
def test_exact_modes_match_reference(rng, mode, layout):
    # One SMYRF cluster holds every key: exactly dense attention.
    q, k, v = qkv(rng, layout=layout)
    out, lse = smyrf.attention(q, k, v, mode=mode, layout=layout, return_lse=True,
                               q_cluster_size=1000)
    ref, ref_lse = dense(q, k, v, layout=layout)
    assert out.shape == q.shape and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, ref, **F32)
    np.testing.assert_allclose(lse, ref_lse + rounds(mode), **F32)


def test_float16(rng):
    q, k, v = qkv(rng, dtype=np.float16)
    out = smyrf.attention(q, k, v, mode="dense")
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), dense(q, k, v)[0], **F16)


@pytest.mark.parametrize("mode", ["dense", "smyrf"])
def test_key_padding_mask(rng, mode):
    q, k, v = qkv(rng, nq=40)
    mask = rng.random((2, 40)) < 0.7
    mask[:, 0] = True
    out = smyrf.attention(q, k, v, mode=mode, q_cluster_size=64, key_padding_mask=mask)
    np.testing.assert_allclose(out, dense(q, k, v, key_padding_mask=mask)[0], **F32)
    # uint8 and other integer masks are the same thing: nonzero = valid
    for dtype in (np.uint8, np.int8, np.int32, np.int64, np.uint64):
        masked = smyrf.attention(q, k, v, mode=mode, q_cluster_size=64,
                                 key_padding_mask=mask.astype(dtype) * 3)
        np.testing.assert_array_equal(out, masked)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.complex64])
def test_float_masks_are_refused(rng, dtype):
    # An additive float mask (0 = keep, -inf = pad) read as nonzero = valid would keep
    # exactly the padded keys: refused, with the conversion to use.
    q, k, v = qkv(rng, b=1, nq=16)
    mask = np.zeros((1, 16), dtype=dtype)
    mask[0, 10:] = -np.inf
    for call in (lambda: smyrf.attention(q, k, v, key_padding_mask=mask),
                 lambda: smyrf.Plan(heads=4, q_len=16, qk_dim=16).execute(
                     q, k, v, key_padding_mask=mask)):
        with pytest.raises(TypeError, match=rf"key_padding_mask must be bool or an integer "
                                            rf"type \(true / nonzero = valid key\); got "
                                            rf"{np.dtype(dtype)}.*mask == 0"):
            call()
    converted = smyrf.attention(q, k, v, mode="dense", key_padding_mask=mask == 0)
    np.testing.assert_allclose(converted, dense(q, k, v, key_padding_mask=mask == 0)[0], **F32)


@pytest.mark.parametrize("mode", ["dense", "smyrf"])
def test_grouped_query_attention(rng, mode):
    q, k, v = qkv(rng, h=6, hkv=2, nq=50)
    out = smyrf.attention(q, k, v, mode=mode, q_cluster_size=64)
    np.testing.assert_allclose(out, dense(q, k, v)[0], **F32)


@pytest.mark.parametrize("nq,nk", [(30, 30), (12, 45), (45, 12)])
@pytest.mark.parametrize("mode", ["dense", "smyrf"])
def test_causal_is_bottom_right_aligned(rng, mode, nq, nk):
    q, k, v = qkv(rng, nq=nq, nk=nk)
    out, lse = smyrf.attention(q, k, v, mode=mode, causal=True, q_cluster_size=64,
                               return_lse=True)
    ref, ref_lse = dense(q, k, v, causal=True)
    np.testing.assert_allclose(out, ref, **F32)
    np.testing.assert_allclose(lse, ref_lse + rounds(mode), **F32)
    if nq > nk:  # the first nq - nk queries see no key: zeros and -inf, never NaN
        assert np.all(out[:, :, : nq - nk] == 0)
        assert np.all(np.isneginf(lse[:, :, : nq - nk]))


@pytest.mark.parametrize("mode", ["dense", "smyrf"])
def test_cross_attention_with_other_value_width(rng, mode):
    q, k, v = qkv(rng, nq=20, nk=70, d=16, dv=24)
    out = smyrf.attention(q, k, v, mode=mode, q_cluster_size=64)
    assert out.shape == (2, 4, 20, 24)
    np.testing.assert_allclose(out, dense(q, k, v)[0], **F32)


def test_scale(rng):
    q, k, v = qkv(rng)
    out = smyrf.attention(q, k, v, mode="dense", scale=0.05)
    np.testing.assert_allclose(out, dense(q, k, v, scale=0.05)[0], **F32)


def test_every_key_padded_gives_zeros(rng):
    q, k, v = qkv(rng)
    mask = np.zeros((2, 37), dtype=bool)
    mask[1] = True
    out, lse = smyrf.attention(q, k, v, key_padding_mask=mask, return_lse=True)
    assert np.all(out[0] == 0) and np.all(np.isneginf(lse[0]))
    assert np.all(np.isfinite(out[1]))


@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
@pytest.mark.parametrize("b, h, hkv, nq, nk", [(0, 4, 2, 5, 7), (2, 0, 0, 5, 7),
                                               (2, 4, 2, 0, 7), (2, 4, 2, 5, 0)])
def test_empty_problems_answer_as_sdpa(rng, layout, b, h, hkv, nq, nk):
    # The C ABI refuses zero sizes; the binding answers without it: no rows, or rows
    # without keys (zeros, lse -inf, as a row whose every key is padded).
    q, k, v = qkv(rng, b=b, h=h, hkv=hkv, nq=nq, nk=nk, dv=24, dtype=np.float16, layout=layout)
    mask = np.ones((b, nk), dtype=bool)
    out, lse = smyrf.attention(q, k, v, key_padding_mask=mask, layout=layout, causal=True,
                               return_lse=True)
    want = (b, h, nq, 24) if layout == "bhnd" else (b, nq, h, 24)
    assert out.shape == want and out.dtype == np.float16 and lse.shape == (b, h, nq)
    assert np.all(out == 0) and np.all(np.isneginf(lse))
    with pytest.raises(ValueError, match="key_padding_mask has shape"):
        smyrf.attention(q, k, v, key_padding_mask=np.ones((b, nk + 1), dtype=bool), layout=layout)
    with pytest.raises(ValueError, match="must be one of"):
        smyrf.attention(q, k, v, mode="approximate", layout=layout)


# ---------------------------------------------------------------- zero-copy views

def test_strided_views_are_read_in_place(rng):
    # A fused [B, N, 3, H, d] QKV buffer: q, k, v are views with gaps, in bnhd order.
    fused = randn(rng, 2, 33, 3, 4, 16)
    q, k, v = fused[:, :, 0], fused[:, :, 1], fused[:, :, 2]
    assert not q.flags.c_contiguous
    out = smyrf.attention(q, k, v, mode="dense", layout="bnhd")
    np.testing.assert_allclose(out, dense(q, k, v, layout="bnhd")[0], **F32)
    # and a head-major view of a token-major array (what transformers hands over)
    qt, kt, vt = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    out_t = smyrf.attention(qt, kt, vt, mode="dense")
    np.testing.assert_allclose(out_t, dense(qt, kt, vt)[0], **F32)


# ---------------------------------------------------------------- SMYRF properties

def test_smyrf_is_deterministic_and_thread_count_independent(rng):
    q, k, v = qkv(rng, nq=300, d=32)
    a = smyrf.attention(q, k, v, q_cluster_size=32, n_hashes=3, seed=7, threads=1)
    b = smyrf.attention(q, k, v, q_cluster_size=32, n_hashes=3, seed=7, threads=2)
    c = smyrf.attention(q, k, v, q_cluster_size=32, n_hashes=3, seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    d = smyrf.attention(q, k, v, q_cluster_size=32, n_hashes=3, seed=8)
    assert not np.array_equal(a, d)


def test_smyrf_outputs_are_convex_combinations(rng):
    q, k, _ = qkv(rng, nq=200)
    v = np.broadcast_to(np.linspace(-1, 1, 16, dtype=np.float32), (2, 4, 200, 16)).copy()
    out = smyrf.attention(q, k, v, q_cluster_size=16, n_hashes=2, causal=True)
    np.testing.assert_allclose(out, v, atol=1e-5)


def test_smyrf_lse_bounded_by_dense(rng):
    # Each round sees a subset of the keys: LSE <= dense LSE + log(rounds).
    q, k, v = qkv(rng, nq=256, d=32)
    _, lse = smyrf.attention(q, k, v, q_cluster_size=32, n_hashes=4, return_lse=True)
    _, ref_lse = dense(q, k, v)
    assert np.all(lse <= ref_lse + np.log(4) + 1e-4)


def test_smyrf_error_shrinks_with_budget(rng):
    q, k, v = qkv(rng, b=1, h=4, nq=512, d=32)
    ref = dense(q, k, v)[0]
    errors = [rel_error(smyrf.attention(q, k, v, q_cluster_size=c, n_hashes=r), ref)
              for r, c in ((1, 32), (2, 128), (4, 256))]
    assert errors[0] > errors[1] > errors[2]


def test_padded_content_changes_nothing(rng):
    q, k, v = qkv(rng, nq=120)
    mask = np.ones((2, 120), dtype=bool)
    mask[:, 100:] = False
    a = smyrf.attention(q, k, v, q_cluster_size=16, key_padding_mask=mask)
    k2, v2 = k.copy(), v.copy()
    k2[:, :, 100:] = 50.0
    v2[:, :, 100:] = -7.0
    b = smyrf.attention(q, k2, v2, q_cluster_size=16, key_padding_mask=mask)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- HYBRID

@pytest.mark.parametrize("causal", [False, True])
def test_hybrid_dense_limit(rng, causal):
    # A budget covering every key: HYBRID is exact attention (the CPU backend has it).
    q, k, v = qkv(rng, nq=40)
    mask = np.ones((2, 40), dtype=bool)
    mask[0, 30:] = False
    out = smyrf.attention(q, k, v, mode="hybrid", budget=64, causal=causal,
                          key_padding_mask=mask)
    np.testing.assert_allclose(out, dense(q, k, v, causal=causal, key_padding_mask=mask)[0],
                               **F32)


def test_hybrid_budget_is_checked():
    with pytest.raises(ValueError, match="hybrid"):
        smyrf.attention(*qkv(np.random.default_rng(0)), budget=32)


# ---------------------------------------------------------------- Plan

def test_plan_reuse_and_context_manager(rng):
    q, k, v = qkv(rng, b=1, h=2, nq=64)
    with smyrf.Plan(batch=1, heads=2, q_len=64, qk_dim=16, mode="dense") as plan:
        assert plan.backend == "cpu"
        assert plan.get("k_len") == 64 and plan.get("v_dim") == 16
        assert plan.scale == pytest.approx(0.25)
        assert plan.workspace_size > 0
        out = np.empty_like(q)
        assert plan.execute(q, k, v, out=out) is out
        np.testing.assert_allclose(out, dense(q, k, v)[0], **F32)
        q2, k2, v2 = qkv(rng, b=1, h=2, nq=64)
        np.testing.assert_allclose(plan.execute(q2, k2, v2), dense(q2, k2, v2)[0], **F32)
        assert "mode=dense" in repr(plan)
    assert "closed" in repr(plan)
    with pytest.raises(ValueError, match="closed"):
        plan.execute(q, k, v)
    plan.close()  # twice is fine


def test_numpy_plans_default_to_the_cpu_backend(rng):
    # NumPy arrays live in host memory; "auto" would pick CUDA on a CUDA build with a GPU.
    q, k, v = qkv(rng, b=1, h=2, nq=64)
    with smyrf.Plan(heads=2, q_len=64, qk_dim=16, mode="dense") as plan:
        assert plan.get("backend") == smyrf.capi.SMYRF_BACKEND_CPU and plan.backend == "cpu"
        np.testing.assert_allclose(plan.execute(q, k, v), dense(q, k, v)[0], **F32)
    with smyrf.Plan(heads=2, q_len=64, qk_dim=16, backend="auto") as plan:
        assert plan.get("backend") == smyrf.capi.SMYRF_BACKEND_AUTO


@pytest.mark.parametrize("out_strides", [
    (2 * 16 * 16, 16, 2 * 16),   # token-major inside the contiguous span
    (900, 300, 17),              # gaps: a span larger than the contiguous array's
])
def test_plan_execute_allocates_out_with_the_plan_strides(rng, out_strides):
    b, h, n, d = 2, 2, 16, 16
    q, k, v = qkv(rng, b=b, h=h, nq=n, d=d)
    with smyrf.Plan(batch=b, heads=h, q_len=n, qk_dim=d, mode="dense",
                    strides={"out": out_strides}) as plan:
        out, lse = plan.execute(q, k, v, return_lse=True)
        assert tuple(s // 4 for s in out.strides) == out_strides + (1,)
        ref, ref_lse = dense(q, k, v)
        np.testing.assert_allclose(out, ref, **F32)
        np.testing.assert_allclose(lse, ref_lse, **F32)
        # the allocated out is a valid out= and dout= for the same plan
        assert plan.execute(q, k, v, out=out) is out
        dq, dk, dv = plan.backward(q, k, v, out, lse, out)
    for got, want in zip((dq, dk, dv), dense_grads(q, k, v, out)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("b, h", [(1, 2), (2, 1), (1, 1)])
def test_plan_takes_views_with_a_length_1_batch_or_head(rng, b, h):
    # q, k, v views of a fused [B, N, 3, H, D] projection: NumPy reports the real stride
    # of a length-1 dimension, which the library never uses and the plan need not match.
    n, d = 32, 8
    fused = randn(rng, b, n, 3, h, d)
    q, k, v = (fused[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, H, N, D]
    st = (n * 3 * h * d, d, 3 * h * d)
    with smyrf.Plan(batch=b, heads=h, q_len=n, qk_dim=d, mode="dense",
                    strides={"q": st, "k": st, "v": st}) as plan:
        out, lse = plan.execute(q, k, v, return_lse=True)
        dout = randn(rng, *out.shape)
        grads = plan.backward(q, k, v, out, lse, dout)
    ref, ref_lse = dense(q, k, v)
    np.testing.assert_allclose(out, ref, **F32)
    np.testing.assert_allclose(lse, ref_lse, **F32)
    for got, want in zip(grads, dense_grads(q, k, v, dout)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_plan_from_several_threads(rng):
    q, k, v = qkv(rng, b=1, h=4, nq=256, d=32)
    with smyrf.Plan(heads=4, q_len=256, qk_dim=32, q_cluster_size=32, threads=1) as plan:
        want = plan.execute(q, k, v)
        results = [None] * 4

        def work(i):
            results[i] = plan.execute(q, k, v)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for r in results:
        np.testing.assert_array_equal(r, want)


def _attention_in_child(args):
    q, k, v = args
    return smyrf.attention(q, k, v, q_cluster_size=32, threads=2)


def test_forked_workers_compute_after_the_parent(rng):
    # multiprocessing's fork start method (data loaders, worker pools): children of a
    # process that has already computed with several threads must not hang, and get the
    # parent's bits. (With OpenMP threads the children hung.)
    import multiprocessing
    q, k, v = qkv(rng, b=1, h=4, nq=512, d=32)
    want = smyrf.attention(q, k, v, q_cluster_size=32, threads=2)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_attention_in_child, [(q, k, v)] * 4).get(timeout=120)
    for r in results:
        np.testing.assert_array_equal(r, want)


UNWRITTEN = np.float32(1e30)  # no attention output or gradient here comes near it


def ran_python_during(call, watched):
    """Runs call() in a worker thread while this thread keeps copying `watched`, a small
    view of an output that call() writes as it goes. True when a copy is neither the
    contents before the call nor those after it: this thread ran Python while the call was
    under way. Each copy is one tolist(), which holds the GIL from start to end, and the
    garbage collector (whose finalizers could let go of the GIL inside it) is off: if the
    call held the GIL, every copy would be taken wholly before it or wholly after it."""
    before = watched.tolist()
    seen, failure, done = [], [], threading.Event()

    def work():
        try:
            call()
        except BaseException as e:  # re-raised in the test's thread
            failure.append(e)
        finally:
            done.set()

    worker = threading.Thread(target=work)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        worker.start()
        last = before
        while not done.is_set():
            now = watched.tolist()
            if now != last:
                seen.append(now)
                last = now
        worker.join()
    finally:
        if gc_was_enabled:
            gc.enable()
    if failure:
        raise failure[0]
    after = watched.tolist()
    assert after != before, "the call did not write the watched elements"
    return any(copy != before and copy != after for copy in seen)


@pytest.mark.parametrize("call", ["execute", "backward"])
def test_execute_and_backward_release_the_gil(rng, call):
    # smyrf_execute and smyrf_execute_backward run with the GIL released: this thread
    # sees their output half written. A call so short that this thread never got to run
    # during it proves nothing either way, so the problem grows (more heads, each one
    # written in turn) until it is seen; a call that holds the GIL is never seen, at any
    # size, and the test fails at the largest.
    n, d = 1024, 64
    for heads in (1, 2, 4, 8, 16, 32, 64):
        q, k, v = qkv(rng, b=1, h=heads, nq=n, d=d)
        with smyrf.Plan(heads=heads, q_len=n, qk_dim=d, mode="dense", threads=1) as plan:
            if call == "execute":
                out = np.full_like(q, UNWRITTEN)
                watched = out[0, :, :: n // 16, 0]
                run = (lambda: plan.execute(q, k, v, out=out))
            else:
                out, lse = plan.execute(q, k, v, return_lse=True)
                dk = np.full_like(k, UNWRITTEN)
                watched = dk[0, :, :: n // 16, 0]
                run = (lambda: plan.backward(q, k, v, out, lse, out, dk=dk))
            if ran_python_during(run, watched):
                return
    pytest.fail(f"no other thread ran Python during {call} on any problem up to {heads} "
                f"heads x {n} tokens: the call holds the GIL")


# ---------------------------------------------------------------- errors

def test_type_errors(rng):
    q, k, v = qkv(rng)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        smyrf.attention(q.tolist(), k, v)
    with pytest.raises(TypeError, match="float32 or float16"):
        smyrf.attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    with pytest.raises(TypeError, match="share one dtype"):
        smyrf.attention(q, k.astype(np.float16), v)
    with pytest.raises(TypeError, match="n_hashes must be an int"):
        smyrf.attention(q, k, v, n_hashes=2.0)
    with pytest.raises(TypeError, match="n_hashes must be an int"):
        smyrf.attention(q, k, v, n_hashes=True)
    with pytest.raises(TypeError, match="scale"):
        smyrf.attention(q, k, v, scale="big")
    with pytest.raises(TypeError, match="bool or an integer type"):
        smyrf.attention(q, k, v, key_padding_mask=np.ones((2, 37), dtype=np.float32))
    with pytest.raises(TypeError, match="seed"):
        smyrf.attention(q, k, v, seed=1.5)


def test_shape_errors(rng):
    q, k, v = qkv(rng)
    with pytest.raises(ValueError, match="4 dimensions"):
        smyrf.attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="batch sizes differ"):
        smyrf.attention(q, k[:1], v[:1])
    with pytest.raises(ValueError, match="last dimension"):
        smyrf.attention(q, k[..., :8], v)
    with pytest.raises(ValueError, match="same heads and length"):
        smyrf.attention(q, k, v[:, :, :10])
    q6 = randn(rng, 2, 6, 37, 16)
    kv4 = randn(rng, 2, 4, 37, 16)
    with pytest.raises(ValueError, match="divide"):
        smyrf.attention(q6, kv4, kv4)
    with pytest.raises(ValueError, match="key_padding_mask has shape"):
        smyrf.attention(q, k, v, key_padding_mask=np.ones((2, 36), dtype=bool))


@pytest.mark.parametrize("b", [2, 0])
def test_zero_head_dimension_is_named(rng, b):
    # The library reads qk_dim 0 as "not set" and v_dim 0 as "same as qk_dim": the error
    # comes from here, before any plan, and says which tensor is empty (also for a
    # problem that is otherwise empty).
    q, k, v = qkv(rng, b=b)
    for args, message in (((q[..., :0], k[..., :0], v), "q and k have last dimension 0"),
                          ((q, k, v[..., :0]), "v has last dimension 0")):
        with pytest.raises(ValueError, match=f"^{message}; the head dimension must be >= 1$") \
                as info:
            smyrf.attention(*args)
        assert not isinstance(info.value, smyrf.SmyrfError)
    with pytest.raises(ValueError, match="qk_dim must be >= 1; got 0") as info:
        smyrf.Plan(q_len=8, qk_dim=0)
    assert not isinstance(info.value, smyrf.SmyrfError)


def test_contiguity_errors(rng):
    q, k, v = qkv(rng)
    with pytest.raises(ValueError, match="contiguous in its last dimension"):
        smyrf.attention(q[..., ::2], k[..., ::2], v)
    with pytest.raises(ValueError, match="positive multiples"):
        smyrf.attention(q[:, :, ::-1], k, v)
    with pytest.raises(ValueError, match="positive multiples"):
        smyrf.attention(np.broadcast_to(q[:, :1], q.shape), k, v)


def test_choice_errors(rng):
    q, k, v = qkv(rng)
    for kw in ({"mode": "fast"}, {"layout": "nhd"}, {"backend": "tpu"}):
        with pytest.raises(ValueError, match="must be one of"):
            smyrf.attention(q, k, v, **kw)
    with pytest.raises(ValueError, match="host memory"):
        smyrf.attention(q, k, v, backend="cuda")


def test_library_errors_carry_status_and_message(rng):
    q, k, v = qkv(rng, nq=200)
    with pytest.raises(smyrf.InvalidArgumentError) as info:
        smyrf.attention(q, k, v, q_cluster_size=50, k_cluster_size=3)
    e = info.value
    assert isinstance(e, ValueError) and isinstance(e, smyrf.SmyrfError)
    assert e.status == 1
    assert "SMYRF_PARAM_K_CLUSTER_SIZE" in e.message and e.message in str(e)
    with pytest.raises(smyrf.InvalidArgumentError, match="SMYRF_PARAM_N_HASHES"):
        smyrf.attention(q, k, v, n_hashes=0)
    with pytest.raises(smyrf.InvalidArgumentError, match="SMYRF_PARAM_THREADS"):
        smyrf.attention(q, k, v, threads=-1)
    with pytest.raises(ValueError, match="64-bit"):
        smyrf.attention(q, k, v, q_cluster_size=2**70)


def test_plan_execute_errors(rng):
    q, k, v = qkv(rng, b=1, h=2, nq=64)
    with smyrf.Plan(heads=2, q_len=64, qk_dim=16) as plan:
        with pytest.raises(ValueError, match="plan expects"):
            plan.execute(q[:, :, :32], k, v)
        with pytest.raises(TypeError, match="dtype"):
            plan.execute(q.astype(np.float16), k, v)
        with pytest.raises(ValueError, match="strides"):
            token_major = np.ascontiguousarray(q.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
            plan.execute(token_major, k, v)
        with pytest.raises(ValueError, match="read-only"):
            out = np.empty_like(q)
            out.flags.writeable = False
            plan.execute(q, k, v, out=out)
        with pytest.raises(ValueError, match="must be one of"):
            plan.get("nonsense")
    with pytest.raises(ValueError, match="applies to mode='hybrid'"):
        smyrf.Plan(q_len=8, qk_dim=4, window=3)
    with pytest.raises(ValueError, match="unknown tensor"):
        smyrf.Plan(q_len=8, qk_dim=4, strides={"x": (1, 1, 1)})
    with pytest.raises(smyrf.InvalidArgumentError, match="strides"):
        smyrf.Plan(q_len=8, qk_dim=4, strides={"q": (0, 4, 4)})
    with pytest.raises(smyrf.InvalidArgumentError, match="SMYRF_PARAM_Q_LEN"):
        smyrf.Plan(q_len=0, qk_dim=4)


def test_bfloat16_plan_refuses_numpy_arrays(rng):
    # NumPy has no bfloat16: such a plan is for execute_addresses (smyrf.torch), and
    # execute/backward say so instead of failing inside NumPy.
    q, k, v = qkv(rng, b=1, h=1, nq=16, d=8)
    with smyrf.Plan(q_len=16, qk_dim=8, dtype="bfloat16", mode="dense") as plan:
        assert plan.get("dtype") == smyrf.capi.SMYRF_DTYPE_BF16
        expected = r"dtype='bfloat16', which NumPy has no arrays of: it runs only through " \
                   r"execute_addresses\(\)"
        with pytest.raises(TypeError, match=expected):
            plan.execute(q, k, v)
        lse = np.zeros((1, 1, 16), dtype=np.float32)
        with pytest.raises(TypeError, match=expected):
            plan.backward(q, k, v, q, lse, q)


def test_argument_errors_name_the_argument(rng):
    q, k, v = qkv(rng, b=1, h=2, nq=64)
    with pytest.raises(TypeError, match="key_padding_mask must be a numpy.ndarray"):
        smyrf.attention(q, k, v, key_padding_mask=[[True] * 64])
    with pytest.raises(ValueError, match=r"strides\['q'\] must be \(batch, head, token\)"):
        smyrf.Plan(q_len=8, qk_dim=4, strides={"q": (32, 4)})
    # an array whose floats sit one byte off their alignment (a view into raw bytes)
    raw = np.zeros(q.nbytes + 1, dtype=np.uint8)
    unaligned = np.frombuffer(raw, dtype=np.float32, offset=1, count=q.size).reshape(q.shape)
    assert not unaligned.flags.aligned
    with smyrf.Plan(heads=2, q_len=64, qk_dim=16) as plan:
        with pytest.raises(TypeError, match="q must be a numpy.ndarray"):
            plan.execute(q.tolist(), k, v)
        with pytest.raises(ValueError, match="k is not aligned"):
            plan.execute(q, unaligned, v)
        out, lse = plan.execute(q, k, v, return_lse=True)
        with pytest.raises(TypeError, match="lse must be a numpy.ndarray"):
            plan.backward(q, k, v, out, lse.tolist(), out)
        with pytest.raises(ValueError, match="lse must be float32 of shape"):
            plan.backward(q, k, v, out, lse[:, :1], out)
        with pytest.raises(TypeError, match="dout must be a numpy.ndarray"):
            plan.backward(q, k, v, out, lse, out.tolist())


def test_low_level_module(rng):
    capi = smyrf.capi
    assert capi.smyrf_version_number() == smyrf.version_number == 100
    assert capi.smyrf_status_string(capi.SMYRF_ERR_UNSUPPORTED) == "unsupported"
    assert capi.smyrf_param_name(capi.SMYRF_PARAM_Q_LEN) == "SMYRF_PARAM_Q_LEN"
    assert capi.smyrf_param_name(999) is None
    assert capi.smyrf_param_bounds(capi.SMYRF_PARAM_SINKS) == (-1, 2)
    cfg = capi.smyrf_config_create()
    try:
        capi.smyrf_config_set(cfg, capi.SMYRF_PARAM_Q_LEN, 8)
        assert capi.smyrf_config_get(cfg, capi.SMYRF_PARAM_Q_LEN) == 8
        with pytest.raises(smyrf.InvalidArgumentError, match="out of range"):
            capi.smyrf_config_set(cfg, capi.SMYRF_PARAM_MODE, 99)
        capi.smyrf_config_set(cfg, capi.SMYRF_PARAM_QK_DIM, 4)
        plan = capi.smyrf_plan_create(cfg)
    finally:
        capi.smyrf_config_destroy(cfg)
    try:
        q, k, v = (randn(rng, 1, 1, 8, 4) for _ in range(3))
        out = np.empty_like(q)
        with pytest.raises(smyrf.InvalidArgumentError, match="q is NULL"):
            capi.smyrf_execute(plan, None, k, v, None, out, None, None, 0, None)
        with pytest.raises(smyrf.InvalidArgumentError, match="overlap"):
            capi.smyrf_execute(plan, q, k, v, None, q, None, None, 0, None)
        with pytest.raises(TypeError, match="buffer"):
            capi.smyrf_execute(plan, "q", k, v, None, out, None, None, 0, None)
        with pytest.raises(BufferError):
            capi.smyrf_execute(plan, q, k, v, None, b"read-only bytes", None, None, 0, None)
        capi.smyrf_execute(plan, q, k, v, None, out, None, None, 0, None)
        np.testing.assert_allclose(out, dense(q, k, v)[0], **F32)
    finally:
        capi.smyrf_plan_destroy(plan)
