"""Shared fixtures: tiny phantom datasets, a repository root, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("OMP_NUM_THREADS", "1")


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
