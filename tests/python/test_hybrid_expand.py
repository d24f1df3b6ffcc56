"""HYBRID expansion (SMYRF_PARAM_EXPAND): `expand` keys per query, out of the budget, spent
on the exact members of the summaries with the most weight (docs/algorithm.md, HYBRID,
"Expansion"). Through smyrf.attention / smyrf.Plan, smyrf.torch.attention and its custom
ops (forward and backward), and smyrf.transformers.configure: it runs and changes the
output of a problem far from the dense limit where the groups fit; a causal problem, or
one whose groups average more than `expand` keys, does not expand (its expand keys join
the window: the output of expand = 0). Unset, expand is derived from the budget:
round(budget / 3)."""

import inspect

import numpy as np
import pytest

import smyrf

# N = 256 keys, 64 keys per query: far from the dense limit. The budget derives 13
# summaries and 2 sinks; with EXPAND = 24 the groups fit (256 <= 13 x 24) and expand, with
# NO_FIT = 8 they average more than 8 keys and do not.
N, BUDGET, EXPAND, NO_FIT = 256, 64, 24, 8
DERIVED = 21  # round(64 / 3)


def qkv_np(b=1, h=2, n=N, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((b, h, n, d)).astype(np.float32) for _ in range(3))


# ---------------------------------------------------------------- NumPy


def test_expand_runs_and_changes_the_output():
    q, k, v = qkv_np()
    default = smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET)
    derived = smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=DERIVED)
    np.testing.assert_array_equal(default, derived)  # None: the library derives it
    plain = smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=0)
    expanded = smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=EXPAND)
    assert not np.array_equal(default, plain)
    assert expanded.shape == plain.shape and np.isfinite(expanded).all()
    assert not np.array_equal(expanded, plain)
    again = smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=EXPAND)
    np.testing.assert_array_equal(expanded, again)


def test_plan_reports_expand():
    with smyrf.Plan(heads=2, q_len=N, qk_dim=16, mode="hybrid", budget=BUDGET,
                    expand=EXPAND) as plan:
        assert plan.get("expand") == EXPAND
        assert plan.get("window") + plan.get("sinks") + plan.get("summaries") + EXPAND \
            == plan.get("budget") == BUDGET
    with smyrf.Plan(q_len=N, qk_dim=16, mode="hybrid", budget=BUDGET) as plan:
        assert plan.get("expand") == DERIVED
    with smyrf.Plan(q_len=N, qk_dim=16, mode="hybrid", window=30, summaries=8) as plan:
        assert plan.get("expand") == 0  # the window set: w + S + G keeps its meaning


def test_expand_is_checked():
    q, k, v = qkv_np()
    with pytest.raises(ValueError, match="applies to mode='hybrid'"):
        smyrf.attention(q, k, v, expand=EXPAND)
    with pytest.raises(TypeError, match="expand must be an int"):
        smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=1.5)
    with pytest.raises(smyrf.InvalidArgumentError, match="SMYRF_PARAM_EXPAND"):
        smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=-2)
    # window + sinks + summaries + expand must fit in the budget.
    with pytest.raises(smyrf.InvalidArgumentError, match="expand"):
        smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=BUDGET)


@pytest.mark.parametrize("causal, expand", [(True, EXPAND), (False, NO_FIT)],
                         ids=["causal", "groups-do-not-fit"])
def test_no_expansion_gives_the_plain_output(causal, expand):
    """Causal, or groups larger than expand on average: the expand keys join the window,
    which is then the window of expand = 0."""
    q, k, v = qkv_np()
    got = smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=expand, causal=causal)
    want = smyrf.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=0, causal=causal)
    np.testing.assert_array_equal(got, want)


def test_numpy_backward_with_expand():
    q, k, v = qkv_np()
    grads = {}
    for expand in (0, EXPAND):
        with smyrf.Plan(heads=2, q_len=N, qk_dim=16, mode="hybrid", budget=BUDGET,
                        expand=expand, backend="cpu") as plan:
            out, lse = plan.execute(q, k, v, return_lse=True)
            grads[expand] = plan.backward(q, k, v, out, lse, np.ones_like(out))
    for g0, g in zip(grads[0], grads[EXPAND]):
        assert g.shape == g0.shape and np.isfinite(g).all()
    assert not all(np.array_equal(g0, g) for g0, g in zip(grads[0], grads[EXPAND]))


# ---------------------------------------------------------------- torch


def test_torch_expand_matches_numpy_and_changes_the_output():
    torch = pytest.importorskip("torch")
    import smyrf.torch as st
    q, k, v = (torch.from_numpy(a) for a in qkv_np())
    expanded = st.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=EXPAND)
    plain = st.attention(q, k, v, mode="hybrid", budget=BUDGET)
    assert not torch.equal(expanded, plain)
    want = smyrf.attention(*(t.numpy() for t in (q, k, v)), mode="hybrid", budget=BUDGET,
                           expand=EXPAND)
    np.testing.assert_array_equal(expanded.numpy(), want)
    # The op takes expand last, after threads; older positional calls get the derived one.
    args = (q, k, v, None, False, 0.0, "hybrid", 2, 64, 0, 0, BUDGET, "bhnd", 0)
    out, _ = torch.ops.smyrf.attention(*args)
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    out, _ = torch.ops.smyrf.attention(*args, EXPAND)
    torch.testing.assert_close(out, expanded, rtol=0, atol=0)
    torch.library.opcheck(torch.ops.smyrf.attention.default, args + (EXPAND,))
    with pytest.raises(ValueError, match="applies to mode='hybrid'"):
        st.attention(q, k, v, expand=EXPAND)
    causal = st.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=EXPAND, causal=True)
    torch.testing.assert_close(
        causal, st.attention(q, k, v, mode="hybrid", budget=BUDGET, causal=True),
        rtol=0, atol=0)


def test_torch_backward_with_expand():
    """Autograd through smyrf::attention_backward with expand: the gradients of
    Plan.backward (smyrf_execute_backward with the same settings), not those of expand 0."""
    torch = pytest.importorskip("torch")
    import smyrf.torch as st
    arrays = qkv_np()
    grads = {}
    for expand in (0, EXPAND):
        q, k, v = (torch.from_numpy(a.copy()).requires_grad_() for a in arrays)
        st.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=expand).sum().backward()
        grads[expand] = [t.grad for t in (q, k, v)]
        for g in grads[expand]:
            assert g is not None and torch.isfinite(g).all()
    assert not all(torch.equal(a, b) for a, b in zip(grads[0], grads[EXPAND]))
    with smyrf.Plan(heads=2, q_len=N, qk_dim=16, mode="hybrid", budget=BUDGET,
                    expand=EXPAND, backend="cpu") as plan:
        out, lse = plan.execute(*arrays, return_lse=True)
        want = plan.backward(*arrays, out, lse, np.ones_like(out))
    for g, w in zip(grads[EXPAND], want):
        np.testing.assert_array_equal(g.numpy(), w)
    # Schema, fake and autograd registrations with expand passed (last, after threads).
    q, k, v = (torch.from_numpy(a).requires_grad_() for a in arrays)
    torch.library.opcheck(torch.ops.smyrf.attention.default,
                          (q, k, v, None, False, 0.0, "hybrid", 2, 64, 0, 0, BUDGET, "bhnd",
                           0, EXPAND))


# ---------------------------------------------------------------- transformers


@pytest.fixture
def stf():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import smyrf.transformers as stf
    saved = stf.configure()
    yield stf
    stf.configure(**saved)


def test_configure_expand_round_trips(stf):
    names = list(inspect.signature(stf.configure).parameters)
    assert names == ["mode", "budget", "n_hashes", "q_cluster_size", "seed", "min_seq_len",
                     "expand"]
    assert stf.configure()["expand"] == -1  # the default: derived from the budget
    assert stf.configure(expand=EXPAND)["expand"] == EXPAND
    assert stf.configure()["expand"] == EXPAND  # None keeps it
    assert stf.configure("hybrid", 96)["expand"] == EXPAND  # positional calls still work
    assert stf.configure(expand=0)["expand"] == 0
    assert stf.configure(expand=-1)["expand"] == -1
    with pytest.raises(ValueError, match="expand must be >= -1"):
        stf.configure(expand=-2)
    with pytest.raises(TypeError, match="expand must be an int"):
        stf.configure(expand=2.0)


def test_configure_expand_reaches_the_attention(stf):
    import torch
    import smyrf.torch as st

    class Layer(torch.nn.Module):
        is_causal = False

    q, k, v = (torch.from_numpy(a) for a in qkv_np())
    cfg = stf.configure(budget=BUDGET, min_seq_len=0, expand=EXPAND)
    got, _ = stf._hybrid_attention(Layer(), q, k, v, None)  # [B, N, H, dv]
    want = st.attention(q, k, v, mode="hybrid", budget=BUDGET, expand=EXPAND, seed=cfg["seed"])
    torch.testing.assert_close(got, want.transpose(1, 2), rtol=0, atol=0)
    # SMYRF and dense ignore it: the "smyrf" name in SMYRF mode runs as before.
    stf.configure(mode="smyrf")
    stf._attention(Layer(), q, k, v, None)
