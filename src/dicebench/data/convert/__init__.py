"""Converters from each real dataset's own layout into the nnU-Net v2 raw layout.

One module per dataset exposes `LABELS`, `CHANNELS` and `cases(src, **options)`, an iterator of
`Case`s read from the extracted download. `write_dataset` writes them into a hidden staging
folder beside the output, with dataset.json last, and renames it into place only when every
case was converted and checked, so a failure never leaves a half-converted dataset behind.
Geometry (spacing, origin, direction) is kept as read; label values are mapped to the documented
class indices and checked against them.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import SimpleITK as sitk

from dicebench.data.layout import case_paths, write_dataset_json
from dicebench.errors import DicebenchError
from dicebench.io import chmod_per_umask, same_geometry, write_image

# converter name -> module
CONVERTERS: dict[str, str] = {
    "acdc": "dicebench.data.convert.acdc",
    "wmh": "dicebench.data.convert.wmh",
    "promise12": "dicebench.data.convert.promise12",
    "msd_prostate": "dicebench.data.convert.msd_prostate",
    "totalsegmentator": "dicebench.data.convert.totalsegmentator",
}


@dataclass
class Case:
    """One converted case: channel images (3D, same grid) and its label map."""

    name: str
    split: str  # "Tr" or "Ts"
    images: list[sitk.Image]
    label: sitk.Image
    source: str = ""  # where it came from, for messages
    meta: dict = field(default_factory=dict)


def select(entries: list[tuple[str, str, object]], max_cases: int | None) -> list[tuple[str, str, object]]:
    """Sort (split, case, payload) entries by case and keep at most `max_cases` per split."""
    entries = sorted(entries, key=lambda e: (e[0], e[1]))
    if max_cases is None:
        return entries
    if max_cases < 1:
        raise DicebenchError(f"--max-cases must be at least 1, got {max_cases}")
    kept: dict[str, int] = {}
    out = []
    for e in entries:
        if kept.get(e[0], 0) < max_cases:
            kept[e[0]] = kept.get(e[0], 0) + 1
            out.append(e)
    return out


def holdout(names: list[str], every: int) -> set[str]:
    """A fixed test split where the source publishes no test labels: every `every`-th case, sorted."""
    return {n for i, n in enumerate(sorted(names)) if i % every == every - 1}


def get_converter(name: str):
    if name not in CONVERTERS:
        raise DicebenchError(f"unknown converter '{name}' (known: {', '.join(sorted(CONVERTERS))})")
    return importlib.import_module(CONVERTERS[name])


def integer_label(img: sitk.Image, source: str, allowed: Iterable[int]) -> sitk.Image:
    """Cast a label map to UInt8 after checking its values are integers within `allowed`."""
    arr = sitk.GetArrayViewFromImage(img)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise DicebenchError(f"{source}: label contains NaN or Inf")
        if not np.array_equal(arr, np.round(arr)):
            raise DicebenchError(f"{source}: label has non-integer values")
    values = set(np.unique(arr).astype(np.int64).tolist())
    bad = sorted(values - set(allowed))
    if bad:
        raise DicebenchError(f"{source}: label values {bad} outside the documented classes {sorted(allowed)}")
    out = sitk.Cast(img, sitk.sitkUInt8)
    return out


def align_label(label: sitk.Image, image: sitk.Image, source: str) -> sitk.Image:
    """Labels must lie on the image grid; float-rounding differences in headers are repaired."""
    if label.GetDimension() != image.GetDimension() or label.GetSize() != image.GetSize():
        raise DicebenchError(f"{source}: label size {label.GetSize()} differs from image size {image.GetSize()}")
    if same_geometry(label, image):
        return label
    if same_geometry(label, image, tol=1e-2):
        out = sitk.Image(label)
        out.CopyInformation(image)
        return out
    raise DicebenchError(f"{source}: label geometry (spacing/origin/direction) differs from the image")


def channel_images(img: sitk.Image, source: str, n: int | None = None) -> list[sitk.Image]:
    """Split a 4D (x, y, z, c) image into 3D channel images, keeping the 3D geometry."""
    if img.GetDimension() == 3:
        chans = [img]
    elif img.GetDimension() == 4:
        size = list(img.GetSize())
        chans = [sitk.Extract(img, size[:3] + [0], [0, 0, 0, c]) for c in range(size[3])]
    else:
        raise DicebenchError(f"{source}: expected a 3D or 4D image, got {img.GetDimension()}D")
    if n is not None and len(chans) != n:
        raise DicebenchError(f"{source}: expected {n} channel(s), found {len(chans)}")
    return chans


def write_dataset(out: str | Path, cases: Iterable[Case], *, name: str, channel_names: dict, labels: dict,
                  overwrite: bool = False, late_extra: Callable[[], dict] | None = None, **extra) -> Path:
    """Write all `cases` into `out` atomically (staging folder renamed on success).

    `late_extra` is called after the last case, for metadata the conversion itself discovers
    (skipped cases); per-case `meta` (e.g. WMH site) goes under dataset.json's "case_info".
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DicebenchError(f"{out}: output folder exists and is not empty (use --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.converting.", dir=out.parent))
    allowed = set(int(v) for v in labels.values())
    n_ch = len(channel_names)
    counts = {"Tr": 0, "Ts": 0}
    seen: set[str] = set()
    case_info: dict[str, dict] = {}
    try:
        for case in cases:
            if case.name in seen:
                raise DicebenchError(f"{case.source}: duplicate case name '{case.name}'")
            seen.add(case.name)
            if len(case.images) != n_ch:
                raise DicebenchError(f"{case.source}: {len(case.images)} channel(s), expected {n_ch}")
            ref = case.images[0]
            for img in case.images[1:]:
                if not same_geometry(img, ref, tol=1e-3):
                    raise DicebenchError(f"{case.source}: channels are not on the same grid")
            label = align_label(integer_label(case.label, case.source, allowed), ref, case.source)
            img_paths, lab_path = case_paths(stage, case.name, case.split, n_ch)
            for img, p in zip(case.images, img_paths):
                write_image(img, p)
            write_image(label, lab_path)
            counts[case.split] += 1
            if case.meta:
                case_info[case.name] = case.meta
        if counts["Tr"] == 0:
            raise DicebenchError(f"{out}: no training case found in the source")
        if late_extra is not None:
            extra.update(late_extra())
        if case_info:
            extra["case_info"] = case_info
        write_dataset_json(stage, name=name, channel_names=channel_names, labels=labels,
                           num_training=counts["Tr"], numTest=counts["Ts"], **extra)
        chmod_per_umask(stage)  # mkdtemp's 0700 would keep the dataset from colleagues
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out


def convert(converter: str, src: str | Path, out: str | Path, overwrite: bool = False, **options) -> Path:
    """Convert an extracted download at `src` with the named converter into `out`."""
    mod = get_converter(converter)
    src = Path(src)
    if not src.is_dir():
        raise DicebenchError(f"{src}: source folder not found")
    channels = mod.channels(**options) if hasattr(mod, "channels") else mod.CHANNELS
    return write_dataset(out, mod.cases(src, **options), name=mod.NAME, channel_names=channels,
                         labels=mod.LABELS, overwrite=overwrite,
                         late_extra=lambda: mod.metadata(**options))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="dataset key in config/datasets.yaml or a converter name")
    p.add_argument("--src", required=True, type=Path, help="extracted download folder")
    p.add_argument("--out", required=True, type=Path, help="nnU-Net v2 raw dataset folder to write")
    p.add_argument("--registry", type=Path, help="dataset registry (default config/datasets.yaml)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--max-cases", type=int, help="keep at most this many cases per split (first in order)")
    p.add_argument("--flair-only", action="store_true", help="WMH: FLAIR only, no T1 channel")


def run(args: argparse.Namespace) -> int:
    name = args.name
    if name not in CONVERTERS:
        from dicebench.data.download import DEFAULT_REGISTRY, load_registry

        reg = load_registry(args.registry or DEFAULT_REGISTRY)
        if name not in reg:
            raise DicebenchError(f"unknown dataset or converter '{name}'")
        name = reg[name].converter
    options = {}
    if args.max_cases is not None:
        options["max_cases"] = args.max_cases
    if name == "wmh" and args.flair_only:
        options["flair_only"] = True
    out = convert(name, args.src, args.out, overwrite=args.overwrite, **options)
    print(out)
    return 0
