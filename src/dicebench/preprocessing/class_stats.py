"""Per-class voxel counts of a dataset's training labels: the dataset-level statistics that
Shen et al.'s weights, the Mime coefficients and the weighted cross-entropy read.

Only `labelsTr` is read, so that test data never informs a weight.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from dicebench.errors import DicebenchError
from dicebench.io import read_image, read_json, write_json

REQUIRED_KEYS = ("dataset_json", "labels", "num_classes", "cases", "voxels_per_class", "total_voxels",
                 "voxels_per_case", "presence")


def read_dataset_json(dataset_dir: Path) -> dict[str, Any]:
    path = dataset_dir / "dataset.json"
    if not path.is_file():
        raise DicebenchError(f"{path}: file not found (expected an nnU-Net v2 raw dataset folder)")
    meta = read_json(path)
    if not isinstance(meta.get("labels"), dict) or not meta["labels"]:
        raise DicebenchError(f"{path}: missing or empty 'labels' mapping")
    return meta


def label_indices(labels: dict[str, Any], source: Path) -> dict[str, int]:
    """name -> index, checked to be the consecutive 0..C-1 with background 0."""
    out: dict[str, int] = {}
    for name, idx in labels.items():
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise DicebenchError(f"{source}: label '{name}' has index {idx!r}; only integer labels are supported")
        out[name] = idx
    if out.get("background") != 0:
        raise DicebenchError(f"{source}: 'labels' must map 'background' to 0")
    if sorted(out.values()) != list(range(len(out))):
        raise DicebenchError(f"{source}: label indices {sorted(out.values())} are not 0..{len(out) - 1}")
    return out


def count_labels(array: np.ndarray, num_classes: int, source: Path) -> np.ndarray:
    """Voxels per class in one label map; a value outside 0..C-1 is an error naming the file."""
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise DicebenchError(f"{source}: label map holds non-integer values")
    elif array.dtype.kind not in "iub":
        raise DicebenchError(f"{source}: label map has unsupported type {array.dtype}")
    flat = array.astype(np.int64, copy=False).ravel()
    if flat.size:
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= num_classes:
            raise DicebenchError(
                f"{source}: label values span [{lo}, {hi}] but dataset.json defines {num_classes} classes (0..{num_classes - 1})"
            )
    return np.bincount(flat, minlength=num_classes)


def compute_class_stats(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """Class voxel counts over `labelsTr` of an nnU-Net v2 raw dataset folder.

    Returns the JSON-ready dict described in the module docstring of `load_class_stats`.
    """
    dataset_dir = Path(dataset_dir)
    meta = read_dataset_json(dataset_dir)
    labels = label_indices(meta["labels"], dataset_dir / "dataset.json")
    num_classes = len(labels)
    ending = meta.get("file_ending", ".nii.gz")
    labels_dir = dataset_dir / "labelsTr"
    if not labels_dir.is_dir():
        raise DicebenchError(f"{labels_dir}: folder not found")
    files = sorted(p for p in labels_dir.iterdir() if p.name.endswith(ending) and not p.name.startswith("."))
    if not files:
        raise DicebenchError(f"{labels_dir}: no label files ending in {ending}")
    expected = meta.get("numTraining")
    if isinstance(expected, int) and expected != len(files):
        raise DicebenchError(
            f"{dataset_dir / 'dataset.json'}: numTraining is {expected} but {labels_dir} holds {len(files)} label files"
        )
    cases, per_case = [], []
    for path in files:
        image = read_image(path)  # keep a reference: the array view below borrows its buffer
        counts = count_labels(sitk.GetArrayViewFromImage(image), num_classes, path)
        cases.append(path.name[: -len(ending)])
        per_case.append(counts)
    per_case_arr = np.stack(per_case).astype(np.int64)
    return {
        "dataset_json": str(dataset_dir / "dataset.json"),
        "labels": labels,
        "num_classes": num_classes,
        "cases": cases,
        "voxels_per_class": [int(v) for v in per_case_arr.sum(0)],
        "total_voxels": int(per_case_arr.sum()),
        "voxels_per_case": [[int(v) for v in row] for row in per_case_arr],
        "presence": [[bool(v > 0) for v in row] for row in per_case_arr],
    }


def load_class_stats(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a class-statistics JSON written by `dicebench class-stats`.

    Keys: dataset_json (path), labels (name -> index), num_classes, cases (ids),
    voxels_per_class (C ints over all training cases), total_voxels, voxels_per_case
    (one list of C ints per case), presence (one list of C bools per case).
    """
    path = Path(path)
    stats = read_json(path)
    missing = [k for k in REQUIRED_KEYS if k not in stats]
    if missing:
        raise DicebenchError(f"{path}: missing key(s) {', '.join(missing)}")
    c, n = stats["num_classes"], len(stats["cases"])
    ok = (
        len(stats["voxels_per_class"]) == c
        and len(stats["voxels_per_case"]) == n
        and len(stats["presence"]) == n
        and all(len(row) == c for row in stats["voxels_per_case"])
        and sum(stats["voxels_per_class"]) == stats["total_voxels"]
        and [sum(col) for col in zip(*stats["voxels_per_case"])] == list(stats["voxels_per_class"])
    )
    if not ok:
        raise DicebenchError(f"{path}: inconsistent class statistics (counts do not match num_classes or cases)")
    return stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, type=Path, help="nnU-Net v2 raw dataset folder")
    parser.add_argument("--out", required=True, type=Path, help="output JSON file")


def run(args: argparse.Namespace) -> int:
    stats = compute_class_stats(args.dataset)
    write_json(args.out, stats)
    print(f"{args.out}: {len(stats['cases'])} cases, voxels per class {stats['voxels_per_class']}")
    return 0
