"""A network applied to a whole volume by blended sliding windows: the validation during
training and the inference stage both use it.

Windows are blended with a Gaussian importance map (MONAI's `sliding_window_inference`,
mode "gaussian", sigma = patch/8; overlap 0.5 by default, as nnU-Net, Isensee et al. 2021).
2D networks run slice by slice, the slices of a chunk forming the batch, so a large volume
never sits on the device whole. Windows run on the accelerator (`sw_device`) while the
blended output accumulates on the CPU (`device`), so GPU memory is bounded by one batch of
windows. Mirroring test-time augmentation (off by default) averages the softmax over all
2^d flips of the window's spatial axes, as nnU-Net does.
"""

from __future__ import annotations

import itertools
import math
import sys
from typing import Callable, Sequence

import numpy as np
import torch

from dicebench.errors import DicebenchError


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Window start indices along one axis, as MONAI places them (interval int(roi*(1-overlap)),
    the last window flush with the end); used to count windows for the progress bar."""
    if size <= roi:  # MONAI pads a short axis up to the window
        return [0]
    step = max(1, int(roi * (1 - overlap)))
    n = next(d for d in range(math.ceil(size / step)) if d * step + roi >= size) + 1
    return [min(i * step, size - roi) for i in range(n)]


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
    from monai.inferers import sliding_window_inference
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

    def sliding(x: torch.Tensor) -> torch.Tensor:
        out = sliding_window_inference(x, patch, sw_batch_size, predictor, overlap=overlap, mode="gaussian",
                                       sw_device=device, device="cpu", progress=False)
        return out.float()

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
