"""Validate a dataset folder in the nnU-Net v2 raw layout before anything trains on it.

Every problem is reported as one line naming the file and what is wrong: an invalid or
disagreeing dataset.json, a missing image or label, an unreadable or truncated NIfTI, a 4D image
where 3D is expected, image/label shapes or geometries that disagree, NaN/Inf intensities,
non-integer labels or label values outside the classes of dataset.json, and a "cases" list
(when dataset.json has one) that disagrees with the folders. `check_dataset` raises
on the first problem (the preprocess step calls it); `find_problems` lists them all (the CLI).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dicebench.errors import DicebenchError
from dicebench.io import read_image, same_geometry

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")


def _json_problems(path: Path) -> tuple[dict | None, list[str]]:
    """Parse and validate dataset.json; return it (or None when unusable) and its problems."""
    if not path.is_file():
        return None, [f"{path}: missing dataset.json"]
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, [f"{path}: invalid JSON ({exc})"]
    if not isinstance(meta, dict):
        return None, [f"{path}: expected a JSON object"]
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        return None, [f"{path}: missing key(s) {', '.join(missing)}"]
    probs = []
    ch = meta["channel_names"]
    if not isinstance(ch, dict) or not ch or sorted(ch, key=str) != [str(i) for i in range(len(ch))]:
        probs.append(f"{path}: channel_names must be a non-empty object keyed '0', '1', ...")
    labels = meta["labels"]
    if not isinstance(labels, dict) or not labels:
        probs.append(f"{path}: labels must be a non-empty object name -> integer index")
    else:
        vals = list(labels.values())
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in vals):
            probs.append(f"{path}: label indices must be non-negative integers, got {vals}")
        elif labels.get("background") != 0:
            probs.append(f"{path}: labels must map 'background' to 0")
        elif len(set(vals)) != len(vals):
            probs.append(f"{path}: label indices must be distinct, got {vals}")
    nt = meta["numTraining"]
    if not isinstance(nt, int) or isinstance(nt, bool) or nt < 0:
        probs.append(f"{path}: numTraining must be a non-negative integer, got {nt!r}")
    fe = meta["file_ending"]
    if not isinstance(fe, str) or not fe.startswith("."):
        probs.append(f"{path}: file_ending must be a string such as '.nii.gz', got {fe!r}")
    return (None if probs else meta), probs


def _scan(folder: Path, ending: str, is_image: bool) -> tuple[dict, list[str]]:
    """Map case -> {channel: path} (images) or case -> path (labels); unexpected names are problems."""
    found: dict = {}
    probs = []
    if not folder.is_dir():
        return found, probs
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue  # hidden temporaries of atomic writes
        if not p.name.endswith(ending) or not p.is_file():
            probs.append(f"{p}: unexpected file (expected names ending in {ending})")
            continue
        stem = p.name[: -len(ending)]
        if is_image:
            m = re.fullmatch(r"(.+)_(\d{4})", stem)
            if not m:
                probs.append(f"{p}: image name must be CASE_XXXX{ending} (channel suffix)")
                continue
            found.setdefault(m.group(1), {})[int(m.group(2))] = p
        else:
            found[stem] = p
    return found, probs


def _raw_voxels(path: Path) -> tuple[np.ndarray | None, list[str]]:
    """The stored voxels of a NIfTI file, read with nibabel independently of ITK.

    ITK reads a truncated .nii.gz without complaint and silently replaces NaN voxels, so both
    checks need the bytes as stored: nibabel refuses short data, and its array keeps NaN/Inf.
    """
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        return None, []
    import nibabel as nib

    try:
        img = nib.load(str(path))
        arr = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types on corrupt data
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return None, [f"{path}: unreadable or truncated image ({msg})"]
    return arr, []


def _image_problems(path: Path) -> tuple[sitk.Image | None, list[str]]:
    raw, probs = _raw_voxels(path)
    if probs:
        return None, probs
    try:
        img = read_image(path)
    except DicebenchError as exc:
        return None, [str(exc)]
    if raw is not None and raw.ndim > 3 and any(n > 1 for n in raw.shape[3:]):
        return None, [f"{path}: {raw.ndim}D image where 3D is expected (shape {raw.shape})"]
    if raw is not None and np.issubdtype(raw.dtype, np.floating) and not np.all(np.isfinite(raw)):
        n_bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
        return img, [f"{path}: {n_bad} NaN or Inf values"]
    if img.GetDimension() != 3:
        return None, [f"{path}: {img.GetDimension()}D image where 3D is expected (size {img.GetSize()})"]
    if img.GetNumberOfComponentsPerPixel() != 1:
        return None, [f"{path}: vector image with {img.GetNumberOfComponentsPerPixel()} components where a scalar 3D image is expected"]
    return img, []


def _case_problems(case: str, chans: dict, label: Path | None, n_ch: int, allowed: set[int]) -> list[str]:
    probs = []
    ref: sitk.Image | None = None
    ref_path = None
    for c in sorted(chans):
        img, p = _image_problems(chans[c])
        probs += [q.replace("NaN or Inf values", "NaN or Inf intensities") for q in p]
        if img is None:
            continue
        if ref is None:
            ref, ref_path = img, chans[c]
        elif img.GetSize() != ref.GetSize():
            probs.append(f"{chans[c]}: shape {img.GetSize()} differs from {ref_path.name} {ref.GetSize()}")
        elif not same_geometry(img, ref):
            probs.append(f"{chans[c]}: geometry (spacing/origin/direction) differs from {ref_path.name}")
    if label is None:
        return probs
    lab, p = _image_problems(label)
    probs += [q.replace("NaN or Inf values", "label contains NaN or Inf") for q in p]
    if lab is None or p:
        return probs
    arr = sitk.GetArrayViewFromImage(lab)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            probs.append(f"{label}: label contains NaN or Inf")
            return probs
        if not np.array_equal(arr, np.round(arr)):
            probs.append(f"{label}: non-integer label values")
            return probs
    values = set(np.unique(arr).astype(np.int64).tolist())
    bad = sorted(values - allowed)
    if bad:
        probs.append(f"{label}: label values {bad} outside the classes of dataset.json {sorted(allowed)}")
    if ref is not None:
        if lab.GetSize() != ref.GetSize():
            probs.append(f"{label}: shape {lab.GetSize()} differs from image {ref_path.name} {ref.GetSize()}")
        elif not same_geometry(lab, ref):
            probs.append(f"{label}: geometry (spacing/origin/direction) differs from image {ref_path.name}")
    return probs


def _cases_problems(path: Path, cases, found: dict[str, set]) -> list[str]:
    """dataset.json's optional "cases" (written by the converters) must list exactly the cases
    on disk, each in its split and with the patient that validation splits are drawn by."""
    if cases is None:
        return []
    if not isinstance(cases, dict):
        return [f"{path}: 'cases' must be an object case -> {{split, patient, source}}"]
    probs = []
    for case, entry in cases.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("patient"), str) or not entry["patient"]:
            probs.append(f"{path}: cases['{case}'] needs a non-empty 'patient'")
        elif entry.get("split") not in found or case not in found[entry["split"]]:
            probs.append(f"{path}: cases['{case}'] is listed in split {entry.get('split')!r} but not found "
                         f"in images{entry.get('split')}/labels{entry.get('split')}")
    for split, names in found.items():
        for case in sorted(names - set(cases)):
            probs.append(f"{path}: case '{case}' of images{split} is missing from 'cases'")
    return probs


def find_problems(root: str | Path, max_problems: int | None = None) -> list[str]:
    """Every problem of the dataset folder `root`, one line each (empty when it is valid)."""
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: dataset folder not found"]
    meta, probs = _json_problems(root / "dataset.json")
    if meta is None:
        return probs
    ending = meta["file_ending"]
    n_ch = len(meta["channel_names"])
    allowed = set(meta["labels"].values())
    counts = {}
    found: dict[str, set] = {}
    for split in ("Tr", "Ts"):
        img_dir, lab_dir = root / f"images{split}", root / f"labels{split}"
        if split == "Tr" and not img_dir.is_dir():
            probs.append(f"{img_dir}: missing folder")
        if img_dir.is_dir() != lab_dir.is_dir():
            missing = lab_dir if img_dir.is_dir() else img_dir
            probs.append(f"{missing}: missing folder")
        images, p1 = _scan(img_dir, ending, True)
        labels, p2 = _scan(lab_dir, ending, False)
        probs += p1 + p2
        counts[split] = len(images)
        found[split] = set(images) | set(labels)
        for case in sorted(set(images) | set(labels)):
            chans = images.get(case, {})
            if not chans:
                probs.append(f"{img_dir / f'{case}_0000{ending}'}: missing image for label "
                             f"{lab_dir / f'{case}{ending}'}")
                continue
            for c in range(n_ch):
                if c not in chans:
                    probs.append(f"{img_dir / f'{case}_{c:04d}{ending}'}: missing image "
                                 f"(channel {c} of {n_ch} in dataset.json)")
            for c in sorted(set(chans) - set(range(n_ch))):
                probs.append(f"{chans[c]}: channel {c} but dataset.json has {n_ch} channel(s)")
            if case not in labels and case in images:
                probs.append(f"{lab_dir / f'{case}{ending}'}: missing label for {case}")
            if max_problems is not None and len(probs) >= max_problems:
                return probs[:max_problems]
            probs += _case_problems(case, {c: p for c, p in chans.items() if c < n_ch},
                                    labels.get(case), n_ch, allowed)
            if max_problems is not None and len(probs) >= max_problems:
                return probs[:max_problems]
    probs += _cases_problems(root / "dataset.json", meta.get("cases"), found)
    if counts.get("Tr", 0) != meta["numTraining"]:
        probs.append(f"{root / 'dataset.json'}: numTraining is {meta['numTraining']} but imagesTr has "
                     f"{counts.get('Tr', 0)} case(s)")
    nts = meta.get("numTest")
    if isinstance(nts, int) and nts != counts.get("Ts", 0):
        probs.append(f"{root / 'dataset.json'}: numTest is {nts} but imagesTs has {counts.get('Ts', 0)} case(s)")
    if counts.get("Tr", 0) == 0 and (root / "imagesTr").is_dir():
        probs.append(f"{root / 'imagesTr'}: no training case")
    return probs if max_problems is None else probs[:max_problems]


def check_dataset(root: str | Path) -> None:
    """Raise DicebenchError naming the file and the problem on the first problem found."""
    probs = find_problems(root, max_problems=1)
    if probs:
        raise DicebenchError(probs[0])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="dataset folder(s) to validate")
    p.add_argument("--first", action="store_true", help="stop at the first problem")


def run(args: argparse.Namespace) -> int:
    bad = 0
    for d in args.dirs:
        probs = find_problems(d, max_problems=1 if args.first else None)
        for line in probs:
            print(f"dicebench check: error: {line}", file=sys.stderr)
        if probs:
            bad += 1
        else:
            print(f"{d}: ok")
    return 1 if bad else 0
