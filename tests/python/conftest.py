"""Shared fixtures. The CMake tree puts its assembled `smyrf` package on PYTHONPATH;
after `pip install .` the installed one is used."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # reference.py, fixture.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")    # nothing is downloaded at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randn(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)
