"""On CUDA: training with bf16 autocast and channels-last, stop and resume, and inference.

Marked `gpu`: skipped where torch sees no CUDA device (tests/conftest.py), run on any machine
that has one (`pytest -m gpu`). With `recipe.cuda_deterministic: true` a CUDA run must be
as reproducible as a CPU one: a cell stopped after a checkpoint and rerun ends with the same
weights and log as an uninterrupted run (the CUDA RNG state drives ENet's dropout).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# cuBLAS needs this before its first handle to be deterministic (set before any CUDA work).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

from dicebench.cli import main  # noqa: E402
from dicebench.inference.predict import read_probabilities  # noqa: E402
from dicebench.training.trainer import train_cell  # noqa: E402

pytestmark = pytest.mark.gpu

SETTINGS = {
    "network": "enet2d", "network_params": {"width": 4}, "loss": "gdl", "weighting": "none", "loss_params": {},
    "lr": 0.005, "seed": 1, "threads": 1, "device": "cuda",
    "recipe": {"optimizer": "sgd", "optimizer_params": {"momentum": 0.9, "weight_decay": 0.005},
               "lr_schedule": {"type": "step", "step_size": 3, "gamma": 0.2}, "iterations": 8, "batch_size": 2,
               "patch_size": [32, 32], "val_interval": 3, "checkpoint_interval": 2, "cuda_deterministic": True,
               "data_workers": 2, "augment": {"flip": True, "elastic_sigma": 2.0}},
}


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def reference(tiny_acdc, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cuda_uninterrupted")
    train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), out)
    return out


def test_training_on_cuda_uses_bf16_channels_last_and_records_it(reference):
    cell = json.loads((reference / "cell.json").read_text())
    assert cell["device"].startswith("cuda") and torch.cuda.get_device_name(0) in cell["device"]
    assert cell["amp"] == "bf16" and cell["channels_last"] is True and cell["data_workers"] == 2
    assert cell["peak_memory_mb"]["cuda"] > 0
    assert np.isfinite(cell["final_train_loss"]) and np.isfinite(cell["best_val_dice"])
    for name in ("model.pt", "model_best.pt"):
        state = _state(reference / name)  # saved on the CPU: loads without a GPU
        assert all(t.device.type == "cpu" and torch.isfinite(t.float()).all() for t in state.values())


def test_stop_and_resume_on_cuda_matches_uninterrupted(tiny_acdc, tmp_path, reference):
    assert train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), tmp_path, stop_after=4) == {}
    torch.manual_seed(12345)  # a rerun starts with whatever global RNG state; the checkpoint restores it
    torch.cuda.manual_seed_all(12345)
    summary = train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), tmp_path)
    assert summary["resumed_from_iteration"] == 4
    for name in ("model.pt", "model_best.pt"):
        a, b = _state(reference / name), _state(tmp_path / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert (reference / "log.csv").read_bytes() == (tmp_path / "log.csv").read_bytes()


def test_3d_network_trains_on_cuda(tiny_acdc, tmp_path):
    """channels_last_3d and bf16 on a 3D U-Net."""
    settings = copy.deepcopy(SETTINGS)
    settings.update(network="unet3d", network_params={"width": 2, "depth": 2}, loss="dice")
    settings["recipe"].update(iterations=3, patch_size=[4, 32, 32], val_interval=3, checkpoint_interval=3,
                              cuda_deterministic=False, data_workers=None)
    summary = train_cell(tiny_acdc, None, settings, tmp_path)
    assert summary["amp"] == "bf16" and summary["channels_last"] is True and summary["data_workers"] >= 1
    assert np.isfinite(summary["final_train_loss"])


@pytest.mark.parametrize("amp", ["bf16", "none"])
def test_inference_on_cuda_agrees_with_the_cpu(reference, tiny_acdc, tmp_path, amp):
    """`dicebench infer` on CUDA (bf16 or fp32 windows) gives the CPU's probabilities within the
    precision of bf16, and the same label wherever the CPU's top two classes are apart."""
    blob = torch.load(reference / "model.pt", map_location="cpu", weights_only=True)
    for k in ("fullconv.weight", "fullconv.bias"):  # sharper logits: most voxels get a clear winner
        blob["state_dict"][k] = 10 * blob["state_dict"][k]
    torch.save(blob, tmp_path / "model.pt")
    common = ["infer", "--model", str(tmp_path / "model.pt"), "--images", str(tiny_acdc / "imagesTs"),
              "--reference", str(tiny_acdc / "imagesTs")]
    for device, out in (("cpu", "cpu"), ("cuda", "cuda")):
        settings = {"device": device, "amp": amp if device == "cuda" else "none", "save_probabilities": True}
        assert main([*common, "--out", str(tmp_path / out), "--settings", json.dumps(settings)]) == 0
    cases = sorted(p.name for p in (tmp_path / "cpu").glob("*_probabilities.nii.gz"))
    assert len(cases) == 2 and cases == sorted(p.name for p in (tmp_path / "cuda").glob("*_probabilities.nii.gz"))
    for name in cases:
        p_cpu, _ = read_probabilities(tmp_path / "cpu" / name)
        p_gpu, _ = read_probabilities(tmp_path / "cuda" / name)
        # bf16 keeps 8 bits of mantissa (logits off by ~0.4 %); fp32 windows may run as TF32 convolutions
        assert np.abs(p_cpu - p_gpu).max() < (0.05 if amp == "bf16" else 0.01)
        top2 = np.sort(p_cpu, axis=0)[-2:]
        clear = (top2[1] - top2[0]) > 0.2
        assert clear.mean() > 0.5
        assert np.array_equal(np.argmax(p_cpu, 0)[clear], np.argmax(p_gpu, 0)[clear])
