"""TotalSegmentator CT (Wasserthal et al. 2023): open stand-in for Shen et al. 2018's private
abdominal CT, with their seven classes built from TotalSegmentator's binary masks.

Source layout: `sNNNN/ct.nii.gz`, `sNNNN/segmentations/<structure>.nii.gz` and `meta.csv`
(`;`-separated, columns `image_id` and `split` in {train, val, test}). Class mapping
(Shen et al.'s seven classes; later classes win where masks overlap, so the small organs keep
their voxels):
    1 artery      <- aorta
    2 portal_vein <- portal_vein_and_splenic_vein
    3 liver, 4 spleen, 5 stomach, 6 gallbladder, 7 pancreas <- the masks of the same name
Official split kept: train + val -> Tr, test -> Ts. Cases where fewer than `min_classes` of the
seven are present (scans outside the abdomen) are skipped and listed in dataset.json.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from dicebench.data.convert import Case, channel_images, select
from dicebench.errors import DicebenchError
from dicebench.io import read_image, same_geometry

NAME = "TotalSegmentator_abdomen7"
CHANNELS = {"0": "CT"}
LABELS = {"background": 0, "artery": 1, "portal_vein": 2, "liver": 3, "spleen": 4, "stomach": 5,
          "gallbladder": 6, "pancreas": 7}
SOURCES = {
    "artery": ("aorta",),
    "portal_vein": ("portal_vein_and_splenic_vein",),
    "liver": ("liver",),
    "spleen": ("spleen",),
    "stomach": ("stomach",),
    "gallbladder": ("gallbladder",),
    "pancreas": ("pancreas",),
}
SPLIT = {"train": "Tr", "val": "Tr", "test": "Ts"}
_skipped: list[str] = []


def metadata(min_classes: int = 7, **options) -> dict:
    return {
        "description": "TotalSegmentator CT with Shen et al.'s seven abdominal classes",
        "reference": "Wasserthal et al., Radiology: AI 5(5):e230024, 2023, doi:10.1148/ryai.230024",
        "licence": "CC BY 4.0",
        "label_mapping": {k: list(v) for k, v in SOURCES.items()},
        "skipped_cases": list(_skipped),
        "min_classes": min_classes,
    }


def read_meta(path: Path) -> dict[str, str]:
    """image_id -> split from meta.csv (delimiter sniffed: the release uses ';')."""
    if not path.is_file():
        raise DicebenchError(f"{path}: meta.csv not found")
    text = path.read_text(encoding="utf-8-sig")
    delim = ";" if text.splitlines()[0].count(";") > text.splitlines()[0].count(",") else ","
    rows = list(csv.DictReader(text.splitlines(), delimiter=delim))
    if not rows or "image_id" not in rows[0] or "split" not in rows[0]:
        raise DicebenchError(f"{path}: expected columns 'image_id' and 'split'")
    out = {}
    for r in rows:
        if r["split"] not in SPLIT:
            raise DicebenchError(f"{path}: unknown split {r['split']!r} for {r['image_id']}")
        out[r["image_id"]] = r["split"]
    return out


def combine(case_dir: Path, ref: sitk.Image) -> tuple[sitk.Image, int]:
    """The seven-class label map of one case and how many classes it contains."""
    label = np.zeros(sitk.GetArrayViewFromImage(ref).shape, np.uint8)
    present = 0
    for cls, names in SOURCES.items():
        mask = np.zeros_like(label, dtype=bool)
        for n in names:
            p = case_dir / "segmentations" / f"{n}.nii.gz"
            m = read_image(p)
            if not same_geometry(m, ref, tol=1e-3):
                raise DicebenchError(f"{p}: mask grid differs from {case_dir / 'ct.nii.gz'}")
            mask |= sitk.GetArrayViewFromImage(m) > 0
        if mask.any():
            present += 1
        label[mask] = LABELS[cls]
    out = sitk.GetImageFromArray(label)
    out.CopyInformation(ref)
    return out, present


def cases(src: Path, max_cases: int | None = None, min_classes: int = 7) -> Iterator[Case]:
    metas = sorted(p for p in src.rglob("meta.csv") if not p.name.startswith("._"))
    if not metas:
        raise DicebenchError(f"{src}: no TotalSegmentator meta.csv found")
    root = metas[0].parent
    splits = read_meta(metas[0])
    entries = []
    for image_id, split in splits.items():
        d = root / image_id
        if not (d / "ct.nii.gz").is_file():
            raise DicebenchError(f"{d / 'ct.nii.gz'}: missing (listed in {metas[0]})")
        entries.append((SPLIT[split], image_id, d))
    _skipped.clear()
    kept = {"Tr": 0, "Ts": 0}
    for split, image_id, d in select(entries, None):
        if max_cases is not None and kept[split] >= max_cases:
            continue
        ct = channel_images(read_image(d / "ct.nii.gz"), str(d / "ct.nii.gz"), 1)
        label, present = combine(d, ct[0])
        if present < min_classes:
            _skipped.append(image_id)
            continue
        kept[split] += 1
        yield Case(image_id, split, ct, label, str(d / "segmentations"))
