"""Our Gaussian-blended sliding window against MONAI's `sliding_window_inference(mode="gaussian")`,
the call it replaces: same output, same windows fed to the network in the same batches, and no
MONAI import on the path."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dicebench.errors import DicebenchError
from dicebench.sliding_window import predict_probabilities, window_starts

ROOT = Path(__file__).resolve().parents[1]
PATCH_3D = (6, 8, 10)
PATCH_2D = (8, 10)
# per axis: shorter than the window by an odd amount (uneven padding), equal, longer (several windows)
RELATIONS = {"short": -3, "equal": 0, "long": None}


def _size(patch: int, relation: str) -> int:
    return patch + RELATIONS[relation] if RELATIONS[relation] is not None else 2 * patch + 3


class PositionConv(torch.nn.Module):
    """A seeded zero-padded conv plus a ramp over the window's own coordinates: not translation
    equivariant, so every window placement gives a different blend."""

    def __init__(self, dims: int, cin: int, k: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = (torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d)(cin, k, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.copy_(torch.randn(k, generator=g))
        self.slope = torch.randn(k, dims, generator=g)
        self.inputs: list[torch.Tensor] = []  # every batch of windows it was given, in order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        out = self.conv(x)
        for d, n in enumerate(x.shape[2:]):
            ramp = torch.linspace(-1, 1, n).view(*[1] * (2 + d), n, *[1] * (x.ndim - 3 - d))
            out = out + self.slope[:, d].view(1, -1, *[1] * (x.ndim - 2)) * ramp
        return out


def _image(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _monai(model, x: torch.Tensor, patch, overlap: float, sw_batch_size: int, device="cpu") -> torch.Tensor:
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        return sliding_window_inference(x, patch, sw_batch_size, lambda t: torch.softmax(model(t).float(), 1),
                                        overlap=overlap, mode="gaussian", sw_device=device, device="cpu")


def _assert_same_windows(ours: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in ref]
    for a, b in zip(ours, ref):
        assert torch.equal(a.cpu(), b.cpu())


@pytest.mark.parametrize("sw_batch_size", [1, 3])
@pytest.mark.parametrize("overlap", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("relations", list(itertools.product(RELATIONS, repeat=3)), ids="-".join)
def test_3d_equals_monai(relations, overlap, sw_batch_size):
    shape = tuple(_size(p, r) for p, r in zip(PATCH_3D, relations))
    img = _image((2, *shape), seed=1)
    model = PositionConv(3, 2, 3, seed=1).eval()
    got = predict_probabilities(model, img, PATCH_3D, overlap=overlap, sw_batch_size=sw_batch_size)
    ours_inputs, model.inputs = model.inputs, []
    ref = _monai(model, torch.from_numpy(img)[None], PATCH_3D, overlap, sw_batch_size)[0].numpy()
    assert got.shape == (3, *shape) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    _assert_same_windows(ours_inputs, model.inputs)


@pytest.mark.parametrize("sw_batch_size", [1, 3])
@pytest.mark.parametrize("overlap", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("relations", list(itertools.product(RELATIONS, repeat=2)), ids="-".join)
def test_2d_equals_monai_over_chunks_of_slices(relations, overlap, sw_batch_size):
    """Slices of a chunk form MONAI's batch (windows of consecutive slices share a forward)."""
    shape = (5, *(_size(p, r) for p, r in zip(PATCH_2D, relations)))
    img = _image((2, *shape), seed=2)
    model = PositionConv(2, 2, 3, seed=2).eval()
    got = predict_probabilities(model, img, PATCH_2D, overlap=overlap, sw_batch_size=sw_batch_size,
                                slices_per_chunk=2)
    ours_inputs, model.inputs = model.inputs, []
    slices = torch.from_numpy(img).permute(1, 0, 2, 3)  # (Z, C, Y, X)
    ref = torch.cat([_monai(model, slices[z:z + 2], PATCH_2D, overlap, sw_batch_size) for z in range(0, 5, 2)])
    assert got.shape == (3, *shape)
    np.testing.assert_allclose(got, ref.permute(1, 0, 2, 3).numpy(), rtol=0, atol=1e-5)
    _assert_same_windows(ours_inputs, model.inputs)


def test_mirroring_equals_monai_with_a_mirroring_predictor():
    from dicebench.sliding_window import make_predictor

    img = _image((1, 9, 20, 13), seed=3)
    model = PositionConv(3, 1, 2, seed=3).eval()
    got = predict_probabilities(model, img, PATCH_3D, overlap=0.5, sw_batch_size=2, mirror=True)
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        ref = sliding_window_inference(torch.from_numpy(img)[None], PATCH_3D, 2, make_predictor(model, mirror=True),
                                       overlap=0.5, mode="gaussian")[0].numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_a_network_that_changes_the_window_size_is_one_clear_error():
    with pytest.raises(DicebenchError, match=r"maps a window \[6, 8, 10\] to \[3, 4, 5\]"):
        predict_probabilities(torch.nn.Conv3d(1, 2, 2, stride=2), _image((1, 9, 12, 10)), PATCH_3D)


@pytest.mark.parametrize("patch", [(1,), (7,), (8,), (6, 8, 10), (96, 160, 160), (5, 64, 64)])
def test_importance_map_equals_monai(patch):
    from monai.data.utils import compute_importance_map

    from dicebench.sliding_window import gaussian_importance_map

    ref = compute_importance_map(patch, mode="gaussian", sigma_scale=0.125)
    got = gaussian_importance_map(patch)
    assert got.shape == ref.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    assert float(got.min()) >= 1e-3  # the clamp: no voxel of a window weighs (almost) nothing


def test_window_starts_cover_each_axis_as_monai():
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    for size, roi, ov in itertools.product(range(1, 40), range(1, 14), (0.0, 0.25, 0.5, 0.75, 0.9)):
        padded = max(size, roi)
        interval = _get_scan_interval((padded,), (roi,), 1, (ov,))
        assert window_starts(size, roi, ov) == [s[0].start for s in dense_patch_slices((padded,), (roi,), interval)]


@pytest.mark.gpu
@pytest.mark.parametrize("dims", [2, 3])
def test_windows_on_cuda_output_on_cpu_equals_monai(dims):
    patch = PATCH_2D if dims == 2 else PATCH_3D
    img = _image((1, 7, 23, 25), seed=4)
    model = PositionConv(dims, 1, 3, seed=4).eval().cuda()
    got = predict_probabilities(model, img, patch, overlap=0.5, sw_batch_size=3, device="cuda", slices_per_chunk=64)
    x = torch.from_numpy(img)
    x = x.permute(1, 0, 2, 3) if dims == 2 else x[None]
    ref = _monai(model, x, patch, 0.5, 3, device="cuda")
    ref = ref.permute(1, 0, 2, 3) if dims == 2 else ref[0]
    assert all(t.is_cuda for t in model.inputs)
    np.testing.assert_allclose(got, ref.numpy(), rtol=0, atol=1e-5)


def test_predicting_imports_no_monai():
    """Importing monai.inferers costs seconds of CPU in every training and inference job."""
    code = ("import sys, numpy as np, torch; from dicebench.sliding_window import predict_probabilities; "
            "img = np.zeros((1, 5, 9, 11), np.float32); "
            "predict_probabilities(torch.nn.Conv3d(1, 2, 3, padding=1), img, (4, 8, 8)); "
            "predict_probabilities(torch.nn.Conv2d(1, 2, 3, padding=1), img, (8, 8), mirror=True); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'monai'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
