"""Which device a job computes on, and the per-GPU claim that lets several GPU jobs share one
workstation (profiles/workstation). Training and inference both use it."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dicebench.errors import DicebenchError

_GPU_LOCK = None  # held for the life of the process


def _claim_free_gpu(count: int, lock_dir: str | None = None) -> int:
    """Index of a GPU no other dicebench process on this machine holds, by a per-GPU file lock.

    On a workstation with several GPUs (profiles/workstation), Snakemake runs up to one GPU
    job per GPU but does not say which GPU a job should use; each job claims a free one here.
    A claim ends with the process, so a killed job frees its GPU. Falls back to GPU 0 when all
    are taken (more jobs than GPUs were allowed)."""
    import fcntl
    import tempfile

    global _GPU_LOCK
    folder = Path(lock_dir or os.environ.get("DICEBENCH_GPU_LOCKS", tempfile.gettempdir()))
    for index in range(count):
        handle = open(folder / f"dicebench-gpu{index}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _GPU_LOCK = handle
        return index
    return 0


def auto_device(requested: str = "auto") -> torch.device:
    """The device to compute on: `auto` is a free GPU when there is one, else the CPU;
    `cuda:N` must exist."""
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        return torch.device(f"cuda:{_claim_free_gpu(count)}" if count > 1 else "cuda")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DicebenchError(f"device '{requested}' requested but no CUDA device is available")
        index = requested.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise DicebenchError(f"device '{requested}' requested but only {torch.cuda.device_count()} "
                                 f"CUDA device(s) exist (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    try:
        return torch.device(requested)
    except RuntimeError as exc:
        raise DicebenchError(f"device '{requested}': {exc}") from None
