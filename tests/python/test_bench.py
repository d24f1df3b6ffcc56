"""bench/'s Python helpers still run: each PyTorch contender of compare.py on a small
problem, the reasons it gives where an outside checkout is missing, the fixture
reader of fixture_compare.py against this suite's own (test_fixture.py), and
decode.py, whose libsmyrf and SDPA results must agree before it times them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")


def contender(name, *extra):
    """The JSON lines of bench/torch_contenders.py for one contender, N = 256."""
    out = subprocess.run(
        [sys.executable, os.path.join(BENCH, "torch_contenders.py"), name, "--n", "256",
         "--threads", "1", "--reps", "2", "--hashes", "2", "--cluster", "32", "--d", "16",
         *extra],
        check=True, capture_output=True, text=True, timeout=600).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("name", ["sdpa", "plain", "reformer"])
def test_contender_times_each_length(name):
    pytest.importorskip("torch")
    if name == "reformer":
        pytest.importorskip("transformers")
    rows = contender(name)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["contender"] == name and row["n"] == 256, row
    assert 0 < row["min_ms"] <= row["median_ms"], row


@pytest.mark.parametrize("name, flag", [("paper", "--paper-code"), ("hyper", "--hyper-code")])
def test_outside_code_missing_is_reported(name, flag, tmp_path):
    pytest.importorskip("torch")
    (row,) = contender(name)
    assert row["contender"] == name and flag in row["error"], row
    (error,) = [row["error"] for row in contender(name, flag, str(tmp_path))]
    assert str(tmp_path) in error and "not a checkout" in error


def test_fixture_reader_matches_the_suites():
    sys.path.insert(0, BENCH)
    from fixture_compare import fixture_layers
    from test_fixture import FIXTURE, read_fixture
    header, blocks = read_fixture()
    n = max(header["lengths"])
    layers = fixture_layers(Path(FIXTURE))
    assert len(layers) == header["layers"]
    for layer, qkv in enumerate(layers):
        for got, want in zip(qkv, blocks[(n, layer)]):
            assert got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_array_equal(got, want.astype(np.float32))


def test_decode_steps_agree_with_sdpa_and_are_timed():
    pytest.importorskip("torch")
    out = subprocess.run(
        [sys.executable, os.path.join(BENCH, "decode.py"), "--reps", "1", "--threads", "1"],
        check=True, capture_output=True, text=True, timeout=600).stdout
    rows = [line.split() for line in out.splitlines()[2:]]
    assert len(rows) == 4, out
    for row in rows:
        assert float(row[-3]) > 0 and float(row[-2]) > 0, out
