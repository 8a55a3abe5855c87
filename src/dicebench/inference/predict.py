"""Sliding-window inference over whole volumes, back in the original image geometry.

The windows themselves (Gaussian blending, slice chunks for 2D networks, mirroring) are
`dicebench.sliding_window`, shared with the validation during training.

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
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from dicebench.device import auto_device  # noqa: F401 (re-exported: callers pick devices here too)
from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, json_option, read_image, same_geometry, write_image, write_json
from dicebench.settings import InferenceSettings
from dicebench.sliding_window import (flip_axes_combinations, make_predictor,  # noqa: F401 (public API)
                                      predict_probabilities, window_starts)

#: probability maps are stored as 16-bit integers, p = value / PROB_SCALE (NIfTI has no float16).
PROB_SCALE = 65535


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


def resolve_settings(settings: dict | InferenceSettings | None) -> InferenceSettings:
    """Defaults (from the config schema) filled in; unknown keys and bad values are a DicebenchError."""
    if isinstance(settings, InferenceSettings):
        return settings
    return InferenceSettings.from_dict(settings)


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
    window = meta.get("window") or meta["patch_size"]
    probs = predict_probabilities(model, image, window, s.overlap, s.sw_batch_size, device,
                                  s.mirror, s.amp, slices_per_chunk=s.slices_per_chunk, progress=progress)
    labels, on_ref = labels_on_reference(probs, channels[0], reference, s.save_probabilities)
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
        if dst.exists() and (not s.save_probabilities or prob_dst.exists()):
            continue
        channels = [read_image(images_dir / f"{case}_{c:04d}.nii.gz") for c in range(n_channels)]
        reference = read_image(reference_dir / f"{case}_0000.nii.gz")
        label, probs = predict_case(model, meta, channels, reference, s, device, progress=None)
        if probs is not None:
            write_probabilities(probs, reference, prob_dst)
        write_image(label, dst)  # last: its existence marks the case complete
    return written


def predict_dataset(model_path: Path, images_dir: Path, reference_dir: Path, out_dir: Path,
                    settings: dict | None = None, threads: int | None = None) -> list[Path]:
    """`predict_folder` with the model loaded from `model_path` onto the settings' device;
    `predictions/inference.json` records the model, settings, device, threads and code version
    (`dicebench stale` compares the code version with the current one)."""
    from dicebench.provenance import step_code_version

    s = resolve_settings(settings)
    if threads:
        torch.set_num_threads(int(threads))
    device = auto_device(s.device)
    model, meta = load_model(model_path, device)
    written = predict_folder(model, meta, images_dir, reference_dir, out_dir, s, device)
    write_json(Path(out_dir) / "inference.json", {
        "model": str(model_path), "settings": s.to_dict(), "device": str(device),
        "compute_threads": torch.get_num_threads(), "code_version": step_code_version("infer")})
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--images", required=True, type=Path, help="preprocessed imagesTs folder")
    p.add_argument("--reference", required=True, type=Path, help="raw imagesTs folder (original geometry)")
    p.add_argument("--out", required=True, type=Path, help="folder for {case}.nii.gz predictions")
    p.add_argument("--settings", default="{}", help="JSON: the config's `inference` keys")
    p.add_argument("--runtime", default="{}", help="JSON: result-neutral keys (sw_batch_size, slices_per_chunk)")
    p.add_argument("--threads", type=int, default=None, help="torch compute threads")


def run(args: argparse.Namespace) -> int:
    settings = json_option(args.settings, "--settings")
    runtime = json_option(args.runtime, "--runtime")
    if not isinstance(settings, dict) or not isinstance(runtime, dict):
        raise DicebenchError("--settings and --runtime must be JSON objects")
    # The cell's runtime settings (shared with training) may hold keys inference does not use.
    runtime = {k: v for k, v in runtime.items() if k in ("sw_batch_size", "slices_per_chunk")}
    predict_dataset(args.model, args.images, args.reference, args.out, {**settings, **runtime}, args.threads)
    return 0
