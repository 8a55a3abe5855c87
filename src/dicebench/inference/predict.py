"""Sliding-window inference over whole volumes, back in the original image geometry.

Windows are blended with a Gaussian importance map (MONAI's `sliding_window_inference`,
mode "gaussian", sigma = patch/8; overlap 0.5 by default, as nnU-Net, Isensee et al. 2021).
2D networks run slice by slice, the slices of a chunk forming the batch, so a large volume
never sits on the device whole. Windows run on the accelerator (`sw_device`) while the
blended output accumulates on the CPU (`device`), so GPU memory is bounded by one batch of
windows. Mirroring test-time augmentation (off by default) averages the softmax over all
2^d flips of the window's spatial axes, as nnU-Net does.

Softmax probabilities, not labels, are resampled from the preprocessed grid back onto the
original image grid (linear interpolation, one class at a time with a running argmax, so
no K-channel copy of the volume is made on the original grid), and only then is the argmax
taken: the written prediction lies exactly on the raw image (size, spacing, origin,
direction). Evaluation therefore always sees whole volumes in their original space.

Every file is written atomically and the label map last, so a case whose label map exists
is complete; a rerun skips it (resume) and removes temporaries a killed run left behind.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, json_option, read_image, same_geometry, write_image

#: settings accepted by `predict_folder` / `dicebench infer --settings` (config `inference:`).
DEFAULT_SETTINGS: dict = {
    "overlap": 0.5,
    "sw_batch_size": 8,
    "mirror": False,
    "checkpoint": "last",  # read by the workflow, not here
    "save_probabilities": False,
    "slices_per_chunk": 64,
    "device": "auto",
    "amp": "none",
}

#: probability maps are stored as 16-bit integers, p = value / PROB_SCALE (NIfTI has no float16).
PROB_SCALE = 65535


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


def labels_on_reference(probs: np.ndarray, grid: sitk.Image, reference: sitk.Image,
                        keep_probabilities: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Argmax (uint8, Z, Y, X on `reference`) of the probabilities (K, Z, Y, X on `grid`) after
    linear resampling onto `reference`, one class at a time with a running argmax (ties go to the
    lower class, as np.argmax). Reference voxels just outside the grid's last voxel centres take
    the nearest value. Also returns the resampled probabilities when `keep_probabilities`."""
    if probs.shape[1:] != sitk.GetArrayViewFromImage(grid).shape:
        raise DicebenchError(f"probabilities {probs.shape[1:]} do not match the grid {grid.GetSize()[::-1]}")
    identity = same_geometry(grid, reference, tol=1e-7)
    best_p = best_k = kept = None
    for k in range(probs.shape[0]):
        if identity:
            p = np.asarray(probs[k], dtype=np.float32)
        else:
            img = sitk.GetImageFromArray(np.ascontiguousarray(probs[k], dtype=np.float32))
            img.CopyInformation(grid)
            p = sitk.GetArrayFromImage(sitk.Resample(img, reference, sitk.Transform(), sitk.sitkLinear, 0.0,
                                                     sitk.sitkFloat32, True))
        if keep_probabilities:
            if kept is None:
                kept = np.empty((probs.shape[0], *p.shape), dtype=np.float32)
            kept[k] = p
        if best_p is None:
            best_p, best_k = p.copy(), np.zeros(p.shape, dtype=np.uint8)
        else:
            better = p > best_p
            best_p[better] = p[better]
            best_k[better] = k
    assert best_k is not None
    return best_k, kept


def probabilities_to_reference(probs: np.ndarray, grid: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """Resample (K, Z, Y, X) probabilities on `grid` onto `reference`'s geometry (float32)."""
    return labels_on_reference(probs, grid, reference, keep_probabilities=True)[1]


def ras_affine(image: sitk.Image) -> np.ndarray:
    """The NIfTI (RAS+) 4x4 affine of a SimpleITK (LPS+) image, as nibabel reports it."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_probabilities(probs: np.ndarray, reference: sitk.Image, path: str | Path) -> None:
    """Write (K, Z, Y, X) probabilities on `reference`'s grid as a 4D NIfTI (X, Y, Z, K) in 16 bits:
    uint16 with scl_slope 1/65535, the size of float16 (which NIfTI cannot store) with a uniform
    7.6e-6 step. nibabel and SimpleITK (as a 4D float image) read it back scaled, on the
    reference's affine. Not a 5D "vector" NIfTI: SimpleITK 2.5 crashes reading one with a slope."""
    import nibabel as nib

    probs = np.asarray(probs)
    data = np.round(np.clip(probs, 0.0, 1.0) * PROB_SCALE).astype(np.uint16)  # (K, Z, Y, X)
    data = data.transpose(3, 2, 1, 0)  # (X, Y, Z, K)
    affine = ras_affine(reference)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_slope_inter(1.0 / PROB_SCALE, 0.0)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def read_probabilities(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (K, Z, Y, X) float32, RAS affine) of a file written by `write_probabilities`."""
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)  # the slope applied
    return np.ascontiguousarray(data.transpose(3, 2, 1, 0)), img.affine


_META_KEYS = ("network", "in_channels", "num_classes", "network_params", "patch_size")


def load_model(path: str | Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """A model written by the trainer; weights_only: a checkpoint never executes code."""
    from dicebench.networks import get_network

    path = Path(path)
    if not path.is_file():
        raise DicebenchError(f"{path}: model file not found")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        meta = json.loads(blob["meta"])
        missing = [k for k in _META_KEYS if k not in meta]
    except Exception as exc:  # zip, unpickling, JSON, layout: all mean "not a dicebench model"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DicebenchError(f"{path}: corrupt or not a dicebench model ({type(exc).__name__}: {detail})") from None
    if missing:
        raise DicebenchError(f"{path}: model metadata lacks {missing}")
    model = get_network(meta["network"], meta["in_channels"], meta["num_classes"], **meta["network_params"])
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0][:160]
        raise DicebenchError(f"{path}: weights do not fit network '{meta['network']}' ({detail})") from None
    return model.to(device), meta


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
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        return torch.device(f"cuda:{_claim_free_gpu(count)}" if count > 1 else "cuda")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DicebenchError(f"device '{requested}' requested but no CUDA device is available")
    return torch.device(requested)


def resolve_settings(settings: dict | None) -> dict:
    """Defaults filled in; unknown keys and bad values are a DicebenchError."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise DicebenchError(f"inference settings: unknown key(s) {unknown}; valid: {sorted(DEFAULT_SETTINGS)}")
    s = {**DEFAULT_SETTINGS, **settings}
    if not (isinstance(s["overlap"], (int, float)) and 0 <= s["overlap"] < 1):
        raise DicebenchError(f"inference settings: overlap must be in [0, 1), got {s['overlap']!r}")
    for key in ("sw_batch_size", "slices_per_chunk"):
        if not (isinstance(s[key], int) and not isinstance(s[key], bool) and s[key] >= 1):
            raise DicebenchError(f"inference settings: {key} must be an integer >= 1, got {s[key]!r}")
    if s["amp"] not in ("none", "bf16"):
        raise DicebenchError(f"inference settings: amp must be 'none' or 'bf16', got {s['amp']!r}")
    return s


def list_cases(images_dir: Path) -> list[str]:
    return sorted({p.name[: -len("_0000.nii.gz")] for p in Path(images_dir).glob("*_0000.nii.gz")
                   if not p.name.startswith(".")})


def predict_case(model: torch.nn.Module, meta: dict, channels: list[sitk.Image], reference: sitk.Image,
                 settings: dict, device: torch.device | str = "cpu",
                 progress: bool | None = False) -> tuple[sitk.Image, np.ndarray | None]:
    """One case: the label map on `reference`'s geometry and, if `settings["save_probabilities"]`,
    the probabilities (K, Z, Y, X) on the same grid."""
    s = resolve_settings(settings)
    image = np.stack([sitk.GetArrayFromImage(g) for g in channels]).astype(np.float32, copy=False)
    probs = predict_probabilities(model, image, meta["patch_size"], s["overlap"], s["sw_batch_size"], device,
                                  s["mirror"], s["amp"], slices_per_chunk=s["slices_per_chunk"], progress=progress)
    labels, on_ref = labels_on_reference(probs, channels[0], reference, s["save_probabilities"])
    del probs
    label = sitk.GetImageFromArray(labels)
    label.CopyInformation(reference)
    return label, on_ref


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Temporaries of `atomic_path` (".{name}.XXXX.tmp{suffix}") left by a killed run."""
    for p in out_dir.glob(".*.nii.gz.*.tmp.nii.gz"):
        p.unlink(missing_ok=True)


def predict_folder(model: torch.nn.Module, meta: dict, images_dir: Path, reference_dir: Path, out_dir: Path,
                   settings: dict | None = None, device: torch.device | str = "cpu") -> list[Path]:
    """Predict every case of `images_dir` (preprocessed) and write `{case}.nii.gz` (uint8 labels)
    on the geometry of the matching raw image in `reference_dir` (and, optionally,
    `{case}_probabilities.nii.gz`). Cases already written are skipped (resume)."""
    from tqdm import tqdm

    s = resolve_settings(settings)
    images_dir, reference_dir, out_dir = Path(images_dir), Path(reference_dir), Path(out_dir)
    n_channels = int(meta["in_channels"])
    cases = list_cases(images_dir)
    if not cases:
        raise DicebenchError(f"{images_dir}: no images (*_0000.nii.gz) to predict")
    for case in cases:  # fail before any work, naming the first missing file
        for c in range(n_channels):
            if not (images_dir / f"{case}_{c:04d}.nii.gz").is_file():
                raise DicebenchError(f"{images_dir / f'{case}_{c:04d}.nii.gz'}: channel {c} of case '{case}' "
                                     f"is missing (the model takes {n_channels} channel(s))")
        ref = reference_dir / f"{case}_0000.nii.gz"
        if not ref.is_file():
            raise DicebenchError(f"{ref}: raw reference image of case '{case}' is missing; predictions are "
                                 "written on the original geometry and need it")
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out_dir)
    written = []
    tty = sys.stderr.isatty()
    for case in tqdm(cases, desc="infer", unit="case", mininterval=1 if tty else 10):
        dst = out_dir / f"{case}.nii.gz"
        prob_dst = out_dir / f"{case}_probabilities.nii.gz"
        written.append(dst)
        if dst.exists() and (not s["save_probabilities"] or prob_dst.exists()):
            continue
        channels = [read_image(images_dir / f"{case}_{c:04d}.nii.gz") for c in range(n_channels)]
        reference = read_image(reference_dir / f"{case}_0000.nii.gz")
        label, probs = predict_case(model, meta, channels, reference, s, device, progress=None)
        if probs is not None:
            write_probabilities(probs, reference, prob_dst)
        write_image(label, dst)  # last: its existence marks the case complete
    return written


def predict_dataset(model_path: Path, images_dir: Path, reference_dir: Path, out_dir: Path,
                    settings: dict | None = None) -> list[Path]:
    """`predict_folder` with the model loaded from `model_path` onto settings["device"]."""
    s = resolve_settings(settings)
    device = auto_device(s["device"])
    model, meta = load_model(model_path, device)
    return predict_folder(model, meta, images_dir, reference_dir, out_dir, s, device)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--images", required=True, type=Path, help="preprocessed imagesTs folder")
    p.add_argument("--reference", required=True, type=Path, help="raw imagesTs folder (original geometry)")
    p.add_argument("--out", required=True, type=Path, help="folder for {case}.nii.gz predictions")
    p.add_argument("--settings", default="{}", help="JSON: " + ", ".join(DEFAULT_SETTINGS))


def run(args: argparse.Namespace) -> int:
    settings = json_option(args.settings, "--settings")
    if not isinstance(settings, dict):
        raise DicebenchError("--settings must be a JSON object")
    predict_dataset(args.model, args.images, args.reference, args.out, settings)
    return 0
