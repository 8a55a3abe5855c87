"""Sliding-window inference over whole volumes, back in the original image geometry.

Windows are blended with a Gaussian importance map (MONAI's `sliding_window_inference`,
mode "gaussian"; overlap 0.5 by default, as nnU-Net). 2D networks run slice by slice, the
slices of a volume forming the batch. Softmax probabilities, not labels, are resampled
from the preprocessed grid back onto the original image grid (linear interpolation), and
only then is the argmax taken, so the written prediction lies exactly on the image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from dicebench.errors import DicebenchError
from dicebench.io import read_image, write_image


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, image: np.ndarray, patch_size, overlap: float = 0.5,
                          sw_batch_size: int = 4, device: str | torch.device = "cpu",
                          mirror: bool = False, amp: str = "none") -> np.ndarray:
    """Softmax probabilities (K, Z, Y, X) for one volume (C, Z, Y, X) on its own grid."""
    from monai.inferers import sliding_window_inference

    model.eval()
    dims = len(patch_size)
    x = torch.from_numpy(np.ascontiguousarray(image)).float()
    if dims == 2:
        x = x.permute(1, 0, 2, 3)  # (Z, C, Y, X): the slices are the batch
    else:
        x = x.unsqueeze(0)  # (1, C, Z, Y, X)
    x = x.to(device)
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                              enabled=amp == "bf16" and torch.device(device).type == "cuda")

    def predictor(patch):
        with autocast:
            probs = torch.softmax(model(patch).float(), dim=1)
            if mirror:
                spatial = list(range(2, patch.ndim))
                for ax in spatial:
                    probs = probs + torch.softmax(model(patch.flip(ax)).float(), 1).flip(ax)
                probs = probs / (1 + len(spatial))
        return probs

    out = sliding_window_inference(x, tuple(patch_size), sw_batch_size, predictor, overlap=overlap,
                                   mode="gaussian", progress=False)
    out = out.float().cpu()
    if dims == 2:
        out = out.permute(1, 0, 2, 3)
    else:
        out = out[0]
    return out.numpy()


def probabilities_to_reference(probs: np.ndarray, grid: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """Resample (K, Z, Y, X) probabilities on `grid` onto `reference`'s geometry."""
    vec = sitk.GetImageFromArray(np.moveaxis(probs, 0, -1).astype(np.float32), isVector=True)
    vec.CopyInformation(grid)
    res = sitk.Resample(vec, reference, sitk.Transform(), sitk.sitkLinear, 0.0)
    arr = sitk.GetArrayFromImage(res)
    if arr.ndim == 3:  # a single component comes back as a scalar image
        arr = arr[..., None]
    return np.moveaxis(arr, -1, 0)


def load_model(path: str | Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """A model written by the trainer; weights_only: a checkpoint never executes code."""
    from dicebench.networks import get_network

    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise DicebenchError(f"{path}: cannot load model ({str(exc).splitlines()[0][:160]})") from None
    meta = json.loads(blob["meta"])
    model = get_network(meta["network"], meta["in_channels"], meta["num_classes"], **meta["network_params"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device), meta


def auto_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def predict_dataset(model_path: Path, images_dir: Path, reference_dir: Path, out_dir: Path, settings: dict) -> list[Path]:
    """Predict every case of `images_dir` (preprocessed) and write it on the geometry of
    the matching raw image in `reference_dir`. Cases already written are skipped (resume)."""
    from tqdm import tqdm

    device = auto_device(settings.get("device", "auto"))
    model, meta = load_model(model_path, device)
    n_channels = meta["in_channels"]
    cases = sorted({p.name[: -len("_0000.nii.gz")] for p in Path(images_dir).glob("*_0000.nii.gz")})
    if not cases:
        raise DicebenchError(f"{images_dir}: no images (*_0000.nii.gz) to predict")
    written = []
    for case in tqdm(cases, desc="infer", unit="case", mininterval=2):
        dst = Path(out_dir) / f"{case}.nii.gz"
        written.append(dst)
        if dst.exists():
            continue
        grids = [read_image(Path(images_dir) / f"{case}_{c:04d}.nii.gz") for c in range(n_channels)]
        image = np.stack([sitk.GetArrayFromImage(g) for g in grids]).astype(np.float32)
        probs = predict_probabilities(model, image, meta["patch_size"], settings.get("overlap", 0.5),
                                      settings.get("sw_batch_size", 4), device,
                                      settings.get("mirror", False), settings.get("amp", "none"))
        reference = read_image(Path(reference_dir) / f"{case}_0000.nii.gz")
        probs = probabilities_to_reference(probs, grids[0], reference)
        label = sitk.GetImageFromArray(np.argmax(probs, axis=0).astype(np.uint8))
        label.CopyInformation(reference)
        write_image(label, dst)
        if settings.get("save_probabilities"):
            p = sitk.GetImageFromArray(np.moveaxis(probs, 0, -1).astype(np.float32), isVector=True)
            p.CopyInformation(reference)
            write_image(sitk.Cast(p, sitk.sitkVectorFloat32), Path(out_dir) / f"{case}_probabilities.nii.gz")
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--images", required=True, type=Path, help="preprocessed imagesTs folder")
    p.add_argument("--reference", required=True, type=Path, help="raw imagesTs folder (original geometry)")
    p.add_argument("--out", required=True, type=Path, help="folder for {case}.nii.gz predictions")
    p.add_argument("--settings", default="{}", help="JSON: overlap, sw_batch_size, mirror, device, amp")


def run(args: argparse.Namespace) -> int:
    try:
        settings = json.loads(args.settings)
    except json.JSONDecodeError as exc:
        raise DicebenchError(f"--settings is not valid JSON: {exc}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    predict_dataset(args.model, args.images, args.reference, args.out, settings)
    return 0
