"""The README's `pip install .` route: a wheel built from this source tree by
pyproject.toml (scikit-build-core and CMake, without build isolation, so nothing is
downloaded), installed into an empty folder, and used from there rather than from the
build tree: the extension loads on its own (libsmyrf inside it) and computes attention."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

# Run in a fresh interpreter with only the installed copy on the path.
CHECK = r"""
import os, sys
import numpy as np
sys.path.insert(0, os.environ["REFERENCE_DIR"])
import reference
import smyrf
assert os.path.realpath(smyrf.__file__).startswith(os.path.realpath(os.environ["TARGET"])), smyrf.__file__
rng = np.random.default_rng(7)
q, k, v = (rng.standard_normal((1, 2, 150, 16)).astype(np.float32) for _ in range(3))
want, _ = reference.dense(q, k, v)
# each mode where it must equal dense attention: SMYRF with one cluster, HYBRID at B >= N
for mode, extra in (("dense", {}), ("smyrf", {"n_hashes": 1, "q_cluster_size": 150}),
                    ("hybrid", {"budget": 150})):
    got = smyrf.attention(q, k, v, mode=mode, **extra)
    err = reference.rel_error(got, want)
    assert err < 1e-5, (mode, err)
try:
    smyrf.attention(q, k, v, q_cluster_size=0)
except smyrf.InvalidArgumentError as e:  # the library's message, through the wheel's copy
    assert "SMYRF_PARAM_Q_CLUSTER_SIZE" in str(e), e
else:
    raise AssertionError("a bad cluster size was accepted")
print("ok", smyrf.__version__)
"""


def test_wheel_installs_and_runs(tmp_path):
    pytest.importorskip("scikit_build_core")
    dist, target = tmp_path / "dist", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
         "--wheel-dir", str(dist), str(ROOT)],
        capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("smyrf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    # the package and its extension, and no C headers or CMake files (not wheel content)
    assert any(n.startswith("smyrf/_capi") and n.endswith(".so") for n in names), names
    assert "smyrf/__init__.py" in names and not any(n.endswith((".h", ".cmake")) for n in names)

    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
         str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    env.update(PYTHONPATH=str(target), TARGET=str(target),
               REFERENCE_DIR=str(Path(__file__).resolve().parent))
    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ok "), run.stdout
