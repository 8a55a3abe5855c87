"""Loading a preprocessed dataset into memory and sampling training patches from it.

2D networks train on axial slices, 3D networks on random crops, as in the papers. Each
batch draws its patches from different cases where there are enough of them (Shen et al.:
"mini-batch sizes of three subvolumes sampled from different training patients").
Foreground oversampling is configurable and off by default, as in the papers.

All randomness comes from the `numpy.random.Generator` passed in. The trainer gives every
iteration its own generator, seeded by (cell seed, iteration) (`iteration_rng`), so the patches
of iteration i do not depend on how many batches were drawn before, in which thread, or
whether the run was resumed: background loading (`BatchLoader`) and resumption keep the
CPU run bit-for-bit identical to a plain sequential one.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import SimpleITK as sitk

from dicebench.errors import DicebenchError
from dicebench.io import read_image, read_json


@dataclass
class Case:
    name: str
    image: np.ndarray  # (C, Z, Y, X) float32
    label: np.ndarray  # (Z, Y, X) int64


def list_cases(dataset_dir: Path, split: str = "Tr") -> list[str]:
    labels = sorted((Path(dataset_dir) / f"labels{split}").glob("*.nii.gz"))
    return [p.name[: -len(".nii.gz")] for p in labels]


def image_paths(dataset_dir: Path, case: str, split: str, n_channels: int) -> list[Path]:
    return [Path(dataset_dir) / f"images{split}" / f"{case}_{c:04d}.nii.gz" for c in range(n_channels)]


def load_case(dataset_dir: Path, case: str, split: str, n_channels: int) -> Case:
    channels = [sitk.GetArrayFromImage(read_image(p)).astype(np.float32)
                for p in image_paths(dataset_dir, case, split, n_channels)]
    label = sitk.GetArrayFromImage(read_image(Path(dataset_dir) / f"labels{split}" / f"{case}.nii.gz"))
    image = np.stack(channels)
    if image.shape[1:] != label.shape:
        raise DicebenchError(f"{dataset_dir}/labels{split}/{case}.nii.gz: shape {label.shape} "
                             f"differs from its image {image.shape[1:]}")
    return Case(case, image, label.astype(np.int64))


def dataset_info(dataset_dir: Path) -> dict:
    return read_json(Path(dataset_dir) / "dataset.json")


def split_cases(cases: list[str], val_fraction: float, split_seed: int = 0,
                patients: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """A fixed train/validation split of the training cases, shared by every cell of a dataset,
    drawn by patient: all cases of one patient (ACDC's ED and ES frames) fall on one side.
    `patients` maps case -> patient (dataset.json "cases"); a case without one is its own patient."""
    patients = patients or {}
    groups = list(dict.fromkeys(patients.get(c, c) for c in cases))
    order = np.random.default_rng(split_seed).permutation(len(groups))
    n_val = max(1, int(round(len(groups) * val_fraction)))
    if n_val >= len(groups):
        raise DicebenchError(f"{len(groups)} training patient(s) cannot give a validation split of {val_fraction}")
    val_groups = {groups[i] for i in order[:n_val]}
    val = sorted(c for c in cases if patients.get(c, c) in val_groups)
    return [c for c in cases if c not in val], val


def _crop_or_pad(arrays: list[np.ndarray], start: list[int], size: tuple[int, ...], fill: list[float]) -> list[np.ndarray]:
    """Crop the trailing spatial axes at `start` with `size`, padding with `fill` outside."""
    out = []
    for arr, value in zip(arrays, fill):
        spatial = arr.shape[-len(size):]
        result = np.full(arr.shape[: -len(size)] + tuple(size), value, dtype=arr.dtype)
        src, dst = [], []
        for s, n, full in zip(start, size, spatial):
            lo, hi = max(s, 0), min(s + n, full)
            src.append(slice(lo, hi))
            dst.append(slice(lo - s, hi - s))
        lead = (slice(None),) * (arr.ndim - len(size))
        result[lead + tuple(dst)] = arr[lead + tuple(src)]
        out.append(result)
    return out


def _random_start(rng, spatial, size, centre=None):
    starts = []
    for i, (full, n) in enumerate(zip(spatial, size)):
        if centre is not None:
            lo = int(centre[i]) - n // 2 + int(rng.integers(-n // 4, n // 4 + 1))
        else:
            lo = int(rng.integers(0, full - n + 1)) if full >= n else -int(rng.integers(0, n - full + 1))
        starts.append(lo)
    return starts


def sample_batch(cases: list[Case], rng: np.random.Generator, batch_size: int, patch_size: tuple[int, ...],
                 fg_oversample: float = 0.0, augment: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (B, C, *patch) and labels (B, *patch); 2D patches are axial slices."""
    dims = len(patch_size)
    idx = rng.choice(len(cases), batch_size, replace=batch_size > len(cases))
    images, labels = [], []
    for i in idx:
        case = cases[int(i)]
        image, label = case.image, case.label
        fg = rng.random() < fg_oversample
        centre = None
        if fg:
            voxels = np.argwhere(label > 0)
            if len(voxels):
                centre = voxels[int(rng.integers(len(voxels)))]
        if dims == 2:
            z = int(centre[0]) if centre is not None else int(rng.integers(label.shape[0]))
            image, label = image[:, z], label[z]
            centre = centre[1:] if centre is not None else None
        start = _random_start(rng, label.shape, patch_size, centre)
        sigma = float((augment or {}).get("elastic_sigma") or 0.0)
        if sigma > 0 and rng.random() < float(augment.get("elastic_probability", 1.0)):
            im, lb = _deformed_crop(image, label, start, patch_size, rng, sigma, augment)
        else:
            im, lb = _crop_or_pad([image, label], start, patch_size, [float(image.min()), 0])
        if augment:
            im, lb = augment_patch(im, lb, rng, augment)
        images.append(im)
        labels.append(lb)
    return np.stack(images).astype(np.float32), np.stack(labels).astype(np.int64)


def _deformed_crop(image, label, start, size, rng, sigma, augment):
    """Cut the patch at `start` and deform it by one random B-spline field (Liu & Fu), in a
    single interpolation from the whole slice/volume: image linear, label nearest neighbour,
    outside the volume the same fill as `_crop_or_pad` (image minimum, background).

    The field spans the patch, the network's input, as V-Net's spans its input volume; its model
    comes from the augment settings (`augmentation.random_field`): `elastic_control_points`,
    `elastic_grid` (interpolating nodes, or V-Net's B-spline mesh) and `elastic_in_plane` (no
    displacement along z, as V-Net's code). Absent keys keep the interpolating grid with 4 nodes
    per axis, deforming every axis (config/README.md)."""
    from dicebench.preprocessing.augmentation import random_field, warp

    field = random_field(rng, tuple(size), sigma, int(augment.get("elastic_control_points", 4)),
                         str(augment.get("elastic_grid", "interpolating")),
                         bool(augment.get("elastic_in_plane", False)))
    return (warp(image, field, 1, mode="constant", offset=start, cval=float(image.min())),
            warp(label, field, 0, mode="constant", offset=start, cval=0))


def augment_patch(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, cfg: dict):
    """Random flips and 90-degree in-plane rotations, image and label together (the elastic
    deformation, `elastic_sigma`, is applied while cropping: `_deformed_crop`)."""
    dims = label.ndim
    if cfg.get("flip"):
        for ax in range(dims):
            if rng.random() < 0.5:
                image, label = np.flip(image, axis=ax + 1), np.flip(label, axis=ax)
    if cfg.get("rot90"):
        k = int(rng.integers(4))
        if label.shape[-1] != label.shape[-2]:
            k = 2 * (k % 2)  # a quarter turn would change a non-square patch's shape
        image = np.rot90(image, k, axes=(dims - 1, dims))
        label = np.rot90(label, k, axes=(dims - 2, dims - 1))
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def absent_classes(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """For a batch of label patches (B, *patch), how many patches lack each class (C,)."""
    flat = np.asarray(labels).reshape(len(labels), -1)
    offsets = np.arange(len(flat))[:, None] * num_classes
    counts = np.bincount((flat + offsets).ravel(), minlength=len(flat) * num_classes)
    return (counts.reshape(len(flat), num_classes) == 0).sum(0)


def iteration_rng(seed: int, iteration: int) -> np.random.Generator:
    """The generator of one iteration's batch: a pure function of (seed, iteration)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(iteration)]))


def offline_augment(cases: list[Case], k: int, sigma: float, seed: int, control_points: int = 4) -> list[Case]:
    """Liu & Fu's offline augmentation: the cases plus k elastically deformed copies of each."""
    from dicebench.preprocessing.augmentation import offline_deformations

    out = list(cases)
    for i, case in enumerate(cases):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xE1A5, i]))
        for j, (im, lb) in enumerate(offline_deformations(case.image, case.label, k, sigma, rng, control_points)):
            out.append(Case(f"{case.name}_deformed{j}", im.astype(np.float32), lb.astype(np.int64)))
    return out


class BatchLoader:
    """Batches for iterations start..stop-1, drawn ahead by `workers` background threads.

    Batch i is `make_batch(i)`, a pure function of i, so the sequence is the same for any
    number of workers (0 = draw in the calling thread). With `pin` the tensors are put in
    page-locked memory so that the copy to the GPU can overlap computation.
    """

    def __init__(self, make_batch: Callable[[int], tuple], start: int, stop: int,
                 workers: int = 0, prefetch: int = 2, pin: bool = False):
        self.make_batch, self.start, self.stop = make_batch, int(start), int(stop)
        self.workers, self.depth, self.pin = int(workers), max(1, int(workers) * int(prefetch)), pin

    def _tensors(self, it: int):
        """make_batch(it) -> (x, y, *extra): x and y become tensors, extra passes through (the
        trainer's per-batch bookkeeping, computed here in the worker, off the training thread)."""
        import torch

        x, y, *extra = self.make_batch(it)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.pin:
            x, y = x.pin_memory(), y.pin_memory()
        return (x, y, *extra)

    def __iter__(self) -> Iterator[tuple]:
        if self.workers <= 0:
            for it in range(self.start, self.stop):
                yield (it, *self._tensors(it))
            return
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dicebench-loader")
        pending: deque = deque()
        nxt = self.start
        try:
            while nxt < self.stop or pending:
                while nxt < self.stop and len(pending) < self.depth:
                    pending.append((nxt, pool.submit(self._tensors, nxt)))
                    nxt += 1
                it, fut = pending.popleft()
                yield (it, *fut.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
