"""A network applied to a whole volume by blended sliding windows: the validation during
training and the inference stage both use it.

Windows are blended with a Gaussian importance map (sigma = patch/8; overlap 0.5 by default,
as nnU-Net, Isensee et al. 2021), exactly as MONAI's `sliding_window_inference` with mode
"gaussian" places, weights and blends them (tests/test_sliding_window.py compares the two).
It is written here with torch alone because importing `monai.inferers` costs seconds of CPU in
every training and inference job. 2D networks run slice by slice, the slices of a chunk forming
the batch, so a large volume never sits on the device whole. Windows run on the accelerator
(`sw_device`) while the blended output accumulates on the CPU (`device`), so GPU memory is
bounded by one batch of windows. Mirroring test-time augmentation (off by default) averages the
softmax over all 2^d flips of the window's spatial axes, as nnU-Net does.
"""

from __future__ import annotations

import itertools
import math
import sys
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dicebench.errors import DicebenchError


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Window start indices along one axis, as MONAI places them (interval int(roi*(1-overlap)),
    the last window flush with the end); an axis shorter than the window is padded up to it."""
    if size <= roi:  # MONAI pads a short axis up to the window
        return [0]
    step = max(1, int(roi * (1 - overlap)))
    n = next(d for d in range(math.ceil(size / step)) if d * step + roi >= size) + 1
    return [min(i * step, size - roi) for i in range(n)]


def gaussian_importance_map(patch: Sequence[int], sigma_scale: float = 0.125,
                            device: torch.device | str = "cpu") -> torch.Tensor:
    """The weight of each voxel of a window, as MONAI's `compute_importance_map` (mode "gaussian"):
    a product of 1D Gaussians centred on the window, sigma = sigma_scale * size, clamped below at
    max(its minimum, 1e-3) so the window's corners still count."""
    weight: torch.Tensor | None = None
    for axis, n in enumerate(patch):
        x = torch.arange(n, dtype=torch.float, device=device) - (n - 1) / 2.0
        g = torch.exp(x ** 2 / (-2 * (n * sigma_scale) ** 2))
        weight = g if weight is None else weight.unsqueeze(-1) * g[(None,) * axis]
    assert weight is not None
    return torch.clamp_(weight, min=max(torch.min(weight).item(), 1e-3))


class GaussianBlender:
    """Blends a predictor's windows over (B, C, *spatial) inputs of one spatial shape:
    out = sum_w g_w * p_w / sum_w g_w, windows placed and ordered as MONAI's
    `sliding_window_inference` (row-major over the window grid, image by image, `sw_batch_size`
    windows per forward, possibly spanning images), a short axis zero-padded symmetrically
    (the smaller half first) up to the window and cropped back afterwards. The weight map and
    the weight sum are computed once per spatial shape (the chunks of a 2D volume share them)."""

    def __init__(self, patch: Sequence[int], overlap: float, sw_batch_size: int,
                 predictor: Callable[[torch.Tensor], torch.Tensor], sw_device: torch.device) -> None:
        self.patch = tuple(int(p) for p in patch)
        self.overlap = overlap
        self.sw_batch_size = max(1, int(sw_batch_size))
        self.predictor = predictor
        self.sw_device = sw_device
        self.weight = gaussian_importance_map(self.patch, device=sw_device)
        self._weight_sums: dict[tuple[int, ...], torch.Tensor] = {}

    def _weight_sum(self, padded: tuple[int, ...], windows: list[tuple[slice, ...]]) -> torch.Tensor:
        if padded not in self._weight_sums:
            weight = self.weight.cpu()
            total = torch.zeros(padded, dtype=torch.float32)
            for window in windows:
                total[window] += weight
            self._weight_sums[padded] = total
        return self._weight_sums[padded]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) float32 on the CPU -> (B, K, *spatial) float32 on the CPU."""
        spatial = tuple(x.shape[2:])
        pads = [max(p - s, 0) for s, p in zip(spatial, self.patch)]
        if any(pads):  # F.pad takes (before, after) pairs from the last axis backwards
            x = F.pad(x, [v for d in reversed(pads) for v in (d // 2, d - d // 2)], mode="constant", value=0.0)
        padded = tuple(x.shape[2:])
        starts = [window_starts(n, p, self.overlap) for n, p in zip(padded, self.patch)]
        windows = [tuple(slice(s, s + p) for s, p in zip(corner, self.patch))
                   for corner in itertools.product(*starts)]
        jobs = [(b, window) for b in range(x.shape[0]) for window in windows]
        out: torch.Tensor | None = None
        for first in range(0, len(jobs), self.sw_batch_size):
            batch = jobs[first:first + self.sw_batch_size]
            crops = [x[(slice(b, b + 1), slice(None), *window)] for b, window in batch]
            data = (torch.cat(crops) if len(crops) > 1 else crops[0]).to(self.sw_device)
            probs = self.predictor(data)
            if tuple(probs.shape[2:]) != self.patch:
                raise DicebenchError(f"the network maps a window {list(self.patch)} to "
                                     f"{list(probs.shape[2:])}; sliding windows need the same size")
            if out is None:
                out = torch.zeros((x.shape[0], probs.shape[1], *padded), dtype=torch.float32)
            weighted = (probs.float() * self.weight).cpu()
            for (b, window), p in zip(batch, weighted):
                out[(b, slice(None), *window)] += p
        assert out is not None
        out /= self._weight_sum(padded, windows)
        if any(pads):
            out = out[(slice(None), slice(None), *(slice(d // 2, d // 2 + s) for d, s in zip(pads, spatial)))]
        return out


def _num_windows(spatial: Sequence[int], patch: Sequence[int], overlap: float) -> int:
    return int(np.prod([len(window_starts(s, p, overlap)) for s, p in zip(spatial, patch)]))


def flip_axes_combinations(spatial_dims: int) -> list[tuple[int, ...]]:
    """All non-empty subsets of the spatial axes of a (B, C, *spatial) tensor (nnU-Net's mirroring)."""
    axes = range(2, 2 + spatial_dims)
    return [c for r in range(1, spatial_dims + 1) for c in itertools.combinations(axes, r)]


def make_predictor(model: torch.nn.Module, mirror: bool = False, amp: str = "none",
                   device: torch.device | str = "cpu",
                   on_windows: Callable[[int], None] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Window -> softmax probabilities; with `mirror`, the mean over the identity and all flips:
    p = 2^-d * sum_{F subset of axes} flip_F(softmax(f(flip_F(x))))."""
    device = torch.device(device)
    use_bf16 = amp == "bf16" and device.type == "cuda"

    def forward(patch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return torch.softmax(model(patch).float(), dim=1)

    def predictor(patch: torch.Tensor) -> torch.Tensor:
        probs = forward(patch)
        if mirror:
            flips = flip_axes_combinations(patch.ndim - 2)
            for axes in flips:
                probs = probs + forward(patch.flip(axes)).flip(axes)
            probs = probs / (1 + len(flips))
        if on_windows is not None:
            on_windows(int(patch.shape[0]))
        return probs

    return predictor


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, image: np.ndarray, patch_size, overlap: float = 0.5,
                          sw_batch_size: int = 4, device: str | torch.device = "cpu",
                          mirror: bool = False, amp: str = "none", *, slices_per_chunk: int = 64,
                          progress: bool | None = False) -> np.ndarray:
    """Softmax probabilities (K, Z, Y, X), float32 on the CPU, for one volume (C, Z, Y, X) on its
    own grid. A 2D `patch_size` runs the network on axial slices, `slices_per_chunk` at a time;
    a 3D one on 3D windows. Windows run on `device`; the blended output stays on the CPU.
    `progress`: a tqdm bar over windows (None: only on a terminal)."""
    from tqdm import tqdm

    model.eval()
    device = torch.device(device)
    patch = tuple(int(p) for p in patch_size)
    dims = len(patch)
    if dims not in (2, 3):
        raise DicebenchError(f"patch_size {list(patch)} must have 2 or 3 entries")
    if image.ndim != 4:
        raise DicebenchError(f"expected an image of shape (C, Z, Y, X), got {image.shape}")
    c, nz, ny, nx = image.shape
    if dims == 2:
        total = nz * _num_windows((ny, nx), patch, overlap)
    else:
        total = _num_windows((nz, ny, nx), patch, overlap)
    bar = tqdm(total=total, desc="windows", unit="win", leave=False, disable=None if progress is None
               else not progress, mininterval=1 if sys.stderr.isatty() else 10)
    predictor = make_predictor(model, mirror, amp, device, on_windows=bar.update)

    sliding = GaussianBlender(patch, overlap, sw_batch_size, predictor, device)

    try:
        if dims == 3:
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).unsqueeze(0)
            return sliding(x)[0].numpy()
        result: np.ndarray | None = None
        step = max(1, int(slices_per_chunk))
        for z0 in range(0, nz, step):
            chunk = np.ascontiguousarray(image[:, z0:z0 + step].transpose(1, 0, 2, 3), dtype=np.float32)
            out = sliding(torch.from_numpy(chunk))  # (slices, K, Y, X)
            if result is None:
                result = np.empty((out.shape[1], nz, ny, nx), dtype=np.float32)
            result[:, z0:z0 + out.shape[0]] = out.permute(1, 0, 2, 3).numpy()
        assert result is not None
        return result
    finally:
        bar.close()
