"""Shared fixtures. The CMake tree puts its assembled `smyrf` package on PYTHONPATH;
after `pip install .` the installed one is used."""

import importlib
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # reference.py, fixture.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")    # nothing is downloaded at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Under CTest (SMYRF_REQUIRE_DEPS=1, tests/python/CMakeLists.txt) the interpreter is that
# of scripts/python-env.sh, which has every optional package: a missing one is an error,
# not a skip that pytest would count as a pass.
if os.environ.get("SMYRF_REQUIRE_DEPS") == "1":
    def _import_required(modname, *args, **kwargs):
        return importlib.import_module(modname)

    pytest.importorskip = _import_required


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randn(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# What a libsmyrf says when it has no CUDA backend to offer here: built without it, its
# experimental HYBRID kernels not built, a device or driver its CUDA runtime cannot use.
# Any other failure is a failure.
_NO_CUDA_BACKEND = (
    "built without CUDA",
    "the experimental kernels need the CMake option SMYRF_CUDA_HYBRID=ON",
    "no CUDA device or NVIDIA driver on this machine",
    "the CUDA backend needs 8.0 or newer",
)


def require_cuda_backend(mode, device=0):
    """Skips the calling test, saying why, when this libsmyrf cannot run `mode` on CUDA
    device `device` for want of a backend (see _NO_CUDA_BACKEND); creating a small plan
    that fails for any other reason fails the test."""
    import smyrf
    try:
        smyrf.Plan(q_len=16, qk_dim=8, mode=mode, backend="cuda", device=device,
                   **({"budget": 8} if mode == "hybrid" else {})).close()
    except (smyrf.BackendUnavailableError, smyrf.UnsupportedError) as e:
        if any(reason in e.message for reason in _NO_CUDA_BACKEND):
            pytest.skip(f"no CUDA {mode} backend in this libsmyrf: {e.message}")
        raise
