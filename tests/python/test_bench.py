"""bench/'s Python helpers still run: each PyTorch contender of compare.py on a small
problem, the reasons it gives where an outside checkout is missing, compare.py's checks of
its arguments and its report of failed rows, null figures and impossible shares of the
peak, the fixture reader of fixture_compare.py against this suite's own (test_fixture.py),
and decode.py, whose libsmyrf and SDPA results must agree before it times them."""

import argparse
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


def test_hyper_runs_its_approximation_below_4096(tmp_path):
    """A stand-in checkout whose HyperAttention, like insuhan/hyper-attn's, falls back to
    exact attention below min_seq_len (4096 by default): the contender must not let it."""
    pytest.importorskip("torch")
    package = tmp_path / "models" / "attention"
    package.mkdir(parents=True)
    for folder in (tmp_path / "models", package):
        (folder / "__init__.py").write_text("")
    (package / "hyper_attn.py").write_text(
        "class HyperAttention:\n"
        "    def __init__(self, input_dim=64, lsh_num_projs=7, block_size=256,\n"
        "                 sample_size=256, min_seq_len=4096, cuda=False):\n"
        "        self.min_seq_len = min_seq_len\n"
        "    def __call__(self, query, key, value):\n"
        "        if self.min_seq_len > query.shape[2]:\n"
        "            raise RuntimeError('exact attention below min_seq_len')\n"
        "        return query\n")
    (row,) = contender("hyper", "--hyper-code", str(tmp_path))
    assert "error" not in row and row["n"] == 256 and row["median_ms"] > 0, row


def run_compare(*args):
    return subprocess.run([sys.executable, os.path.join(BENCH, "compare.py"), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--reps", "0"], "argument --reps: 0 is below 1"),
    (["--threads", "0"], "argument --threads: 0 is below 1"),
    (["--rounds", "-1"], "argument --rounds: -1 is below 1"),
    (["--n", "1024,0"], "argument --n: 0 is below 1"),
    (["--n", "1024,x"], "argument --n: 'x' is not an integer"),
])
def test_compare_refuses_bad_counts_before_running_anything(args, message, tmp_path):
    # An empty --build-dir: a check made only later would end in "is missing" instead.
    done = run_compare("--build-dir", str(tmp_path), *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def compare_module():
    sys.path.insert(0, BENCH)
    import compare
    return compare


def test_compare_shows_a_failing_tools_stderr(capsys):
    compare = compare_module()
    with pytest.raises(SystemExit) as exit_info:
        compare.run_json([sys.executable, "-c", "import sys; sys.exit('the reason')"],
                         quiet=True)
    assert "exited with status 1" in str(exit_info.value)
    assert "the reason" in capsys.readouterr().err


def lib_row(mode, n, status="ok", extra_mib=0.5):
    """A row as `smyrf bench --json` prints it: a failed one has null figures."""
    ok = status == "ok"
    return {"mode": mode, "n": n, "median_ms": 2.0 if ok else None,
            "min_ms": 1.5 if ok else None, "attention_gflops": 60.0 if ok else None,
            "io_mib": 16.0, "workspace_mib": 1.0 if ok else None,
            "extra_mib": extra_mib if ok else None, "status": status,
            "message": "" if ok else "the library's reason"}


def peak_run(share):
    return {"threads": 2, "kernel": "avx2", "pairs": 20, "in_cluster_gflops": 100.0 * share,
            "sgemm_2048_gflops": 100.0, "share_of_peak": share, "openblas_core": "Haswell"}


def test_compare_reports_failed_rows_null_memory_and_impossible_shares(capsys):
    compare = compare_module()
    args = argparse.Namespace(d=64, threads=2, hashes=2, cluster=64, reps=1, rounds=2,
                              n=[1024, 2048], dense_max_n=16384)
    left_out = {key: "not run in this test" for key, _, _ in compare.CONTENDERS}

    def lib(ok_2048, extra_1024):
        rows = [lib_row("smyrf", 1024, extra_mib=extra_1024),
                lib_row("smyrf", 2048, "ok" if ok_2048 else "unsupported")]
        return {(r["mode"], r["n"]): r for r in rows}

    # Round 2: a share of the peak above 1, the N = 2048 row failed, no memory figure.
    rounds = [(peak_run(0.8), lib(True, 0.5), left_out),
              (peak_run(1.3), lib(False, None), left_out)]
    compare.report(args, compare.Rounds(rounds), load=0.0)
    out = capsys.readouterr().out
    assert "80% of peak (1 round(s) above 100% left out: a measurement error)" in out, out
    assert "130%" not in out, out
    assert "libsmyrf SMYRF                 unsupported: the library's reason" in out, out
    assert "N =  2048 whole SMYRF call         60.0 GFLOP/s = 60% of peak" in out, out
    assert "1 round(s) left out, unsupported: the library's reason" in out, out
    assert "N =  1024 memory / (q, k, v, out)      n/a" in out, out
    assert "+ n/a extra peak RSS" in out, out
    assert "N =  2048 memory / (q, k, v, out)      n/a   (unsupported" in out, out
    assert compare.fmt_share([1.1, 1.2]).startswith("no share of the peak"), out


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
