"""Shared fixtures: tiny phantom datasets, a repository root, deterministic torch; markers; Hypothesis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover
    _hypothesis_settings = None
else:
    # In CI (CI=true) property tests draw the same examples on every run: a red build is
    # reproducible and a green one is not luck. Locally they keep exploring new examples.
    # (Hypothesis 6.170 loads a profile like this by itself wherever CI is set; this says so
    # here rather than relying on it.)
    _hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    if os.environ.get("CI") == "true":
        _hypothesis_settings.load_profile("ci")


def pytest_collection_modifyitems(config, items):
    """`workflow` implies `slow` (so -m "not slow" leaves Snakemake and latexmk out); `gpu`
    tests are skipped where torch sees no CUDA device."""
    for item in items:
        if item.get_closest_marker("workflow") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_items:
        import torch

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="no CUDA device (gpu tests run on any machine that has one)")
            for item in gpu_items:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_acdc(tmp_path_factory) -> Path:
    """A 4 + 2 case cardiac phantom on a small grid, written once per session."""
    from dicebench.data.synthetic import synthesize

    out = tmp_path_factory.mktemp("data") / "synth_acdc"
    return synthesize("acdc", out, n_train=4, n_test=2, seed=3, shape=(6, 40, 40))
