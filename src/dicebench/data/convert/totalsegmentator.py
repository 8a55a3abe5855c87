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
Cases are named by the subject id (`s0000`), which is also their patient.

About 140 subjects of v2.0.1 (TotalSegmentator issue #461, s0000 among them) store a sheared
sform without a qform, which ITK refuses; they are read on the nearest orthonormal frame (see
`dicebench.data.convert`), the masks the same way, so image and label stay on one grid.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dicebench.data.convert import Case, Source, case_name, channel_images, read
from dicebench.errors import DicebenchError
from dicebench.io import same_geometry

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
MAY_SKIP = True  # `load` skips scans with too few classes: --max-cases counts written cases


def metadata(sources=(), min_classes: int = 7, **options) -> dict:
    return {
        "description": "TotalSegmentator CT with Shen et al.'s seven abdominal classes",
        "reference": "Wasserthal et al., Radiology: AI 5(5):e230024, 2023, doi:10.1148/ryai.230024",
        "licence": "CC BY 4.0",
        "label_mapping": {k: list(v) for k, v in SOURCES.items()},
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
            m = read(p)
            if not same_geometry(m, ref, tol=1e-3):
                raise DicebenchError(f"{p}: mask grid differs from {case_dir / 'ct.nii.gz'}")
            mask |= sitk.GetArrayViewFromImage(m) > 0
        if mask.any():
            present += 1
        label[mask] = LABELS[cls]
    out = sitk.GetImageFromArray(label)
    out.CopyInformation(ref)
    return out, present


def find(src: Path, min_classes: int = 7) -> list[Source]:
    """Every subject of meta.csv with its CT and the masks the seven classes are built from."""
    metas = sorted(p for p in src.rglob("meta.csv") if not p.name.startswith("._"))
    if not metas:
        raise DicebenchError(f"{src}: no TotalSegmentator meta.csv found")
    root = metas[0].parent
    out = []
    for image_id, split in read_meta(metas[0]).items():
        d = root / image_id
        if not (d / "ct.nii.gz").is_file():
            raise DicebenchError(f"{d / 'ct.nii.gz'}: missing (listed in {metas[0]})")
        masks = [d / "segmentations" / f"{n}.nii.gz" for names in SOURCES.values() for n in names]
        out.append(Source(case_name(image_id), SPLIT[split], image_id, d, [d / "ct.nii.gz"], None, masks))
    return out


def load(source: Source, min_classes: int = 7) -> Case | None:
    """The CT and its seven-class label; None when fewer than `min_classes` classes are present."""
    ct_path = source.images[0]
    ct = channel_images(read(ct_path), str(ct_path), 1)
    label, present = combine(source.origin, ct[0])
    if present < min_classes:
        return None
    return Case(source.name, source.split, ct, label, str(source.origin / "segmentations"))
