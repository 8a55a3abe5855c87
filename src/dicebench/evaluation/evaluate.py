"""`dicebench evaluate`: DSC and HD95 per case and class, and the cell's summary.

    dicebench evaluate --pred-dir DIR --gt-dir DIR --dataset-json FILE \
        --cases-out per_case.csv --out metrics.csv [--threads N]

Metric conventions (surfaces, HD95 = max of the directed 95th percentiles, empty masks)
are those of `dicebench.evaluation.metrics`. per_case.csv also carries `hd95_pooled`
(MedPy's convention: one percentile over both directions pooled, same empty-mask rules) and
`diagonal_mm` (the scan diagonal that a missed or spurious class scores), so that tables can
be recomputed under other conventions from the CSV alone. Summary conventions, used by every table:

* per class: mean and sample standard deviation (ddof = 1) over the test cases;
* ``class = all`` (class_index -1): for each case, the mean over the *object* classes
  (background excluded), then mean and sample std of those per-case means over cases;
* background gets a DSC but no HD95 (NaN): its surface is mostly the scan's own border,
  so the number would measure nothing, and none of the papers reports it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from dicebench.errors import DicebenchError
from dicebench.evaluation.metrics import hausdorff_labels, overlap_counts, scan_diagonal
from dicebench.io import atomic_path, read_image, same_geometry

CASE_COLUMNS = ["case", "class_index", "class", "dsc", "hd95", "gt_voxels", "pred_voxels", "hd95_pooled",
                "diagonal_mm"]
SUMMARY_COLUMNS = ["class_index", "class", "n_cases", "dsc_mean", "dsc_std", "hd95_mean", "hd95_std"]
SUFFIX = ".nii.gz"


def _label_names(labels: Mapping[str, int] | Sequence[int]) -> dict[int, str]:
    if isinstance(labels, Mapping):
        return {int(v): str(k) for k, v in sorted(labels.items(), key=lambda kv: int(kv[1]))}
    return {int(k): ("background" if int(k) == 0 else str(int(k))) for k in sorted(labels)}


def evaluate_case(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    labels: Mapping[str, int] | Sequence[int],
    *,
    case: str | None = None,
) -> list[dict]:
    """One row per class (background included) with dsc, hd95 (mm), gt_voxels, pred_voxels,
    hd95_pooled (mm) and diagonal_mm.

    `pred`, `gt`: integer label maps of one shape; `spacing` in the arrays' axis order (mm);
    `labels`: dataset.json's name -> index mapping (or plain indices). With `case`, each row
    also carries it. HD95 of every object class comes from one pass (`hausdorff_labels`).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    names = _label_names(labels)
    idx = list(names)
    inter, n_pred, n_gt = overlap_counts(pred, gt, idx)
    hd = hausdorff_labels(pred, gt, spacing, [k for k in idx if k > 0])
    diagonal = scan_diagonal(pred.shape, spacing)
    nan = float("nan")
    rows = []
    for i, k in enumerate(idx):
        denom = int(n_pred[i] + n_gt[i])
        row = {
            "class_index": k,
            "class": names[k],
            "dsc": 1.0 if denom == 0 else 2.0 * float(inter[i]) / denom,
            "hd95": hd[k].directed if k in hd else nan,
            "gt_voxels": int(n_gt[i]),
            "pred_voxels": int(n_pred[i]),
            "hd95_pooled": hd[k].pooled if k in hd else nan,
            "diagonal_mm": diagonal,
        }
        rows.append({"case": case, **row} if case is not None else row)
    return rows


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-class mean/std over cases, plus ``all``: per-case mean over object classes, then over cases.

    `rows` needs columns case, class_index, class, dsc, hd95; NaNs (background HD95) are skipped.
    """
    out = []
    for (k, name), g in rows.groupby(["class_index", "class"], sort=True):
        out.append(_stats(int(k), str(name), g["dsc"], g["hd95"]))
    objects = rows[rows["class_index"] > 0]
    if len(objects):
        per_case = objects.groupby("case", sort=True)[["dsc", "hd95"]].mean()
        out.append(_stats(-1, "all", per_case["dsc"], per_case["hd95"]))
    else:
        out.append({**dict.fromkeys(SUMMARY_COLUMNS, float("nan")), "class_index": -1, "class": "all", "n_cases": 0})
    df = pd.DataFrame(out, columns=SUMMARY_COLUMNS)
    df["n_cases"] = df["n_cases"].astype(int)
    return df


def _stats(k: int, name: str, dsc: pd.Series, hd: pd.Series) -> dict:
    return {
        "class_index": k,
        "class": name,
        "n_cases": int(len(dsc)),
        "dsc_mean": float(dsc.mean()),
        "dsc_std": float(dsc.std(ddof=1)),
        "hd95_mean": float(hd.mean()),
        "hd95_std": float(hd.std(ddof=1)),
    }


# ----------------------------------------------------------------------------- I/O edge


def read_labels(path: Path) -> dict[str, int]:
    """dataset.json's `labels` (name -> integer index, background 0)."""
    try:
        meta = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DicebenchError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise DicebenchError(f"{path}: not valid JSON ({exc})") from None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise DicebenchError(f"{path}: no 'labels' mapping (name -> index)")
    out: dict[str, int] = {}
    for name, v in labels.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise DicebenchError(f"{path}: label {name!r} must map to a non-negative integer, got {v!r}")
        out[str(name)] = v
    if out.get("background") != 0:
        raise DicebenchError(f"{path}: labels must contain \"background\": 0")
    if len(set(out.values())) != len(out):
        raise DicebenchError(f"{path}: two labels share one index")
    return out


def _label_array(image: sitk.Image, path: Path, allowed: set[int]) -> np.ndarray:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DicebenchError(f"{path}: a label map must have one component per voxel")
    a = sitk.GetArrayViewFromImage(image)
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or not np.array_equal(a, np.round(a)):
            raise DicebenchError(f"{path}: label map holds non-integer values")
    a = np.asarray(a)
    lo, hi = (a.min(), a.max()) if a.size else (0, 0)
    if np.issubdtype(a.dtype, np.integer) and lo >= 0 and hi < 1 << 16:
        values = np.flatnonzero(np.bincount(a.ravel()))  # much faster than np.unique on a large scan
    else:
        values = np.unique(a)
    bad = [v for v in values.tolist() if int(v) not in allowed]
    if bad:
        raise DicebenchError(f"{path}: label values {bad[:5]} are not in dataset.json's labels")
    top = max(allowed)
    dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int64
    return a.astype(dtype, copy=False)


def _geometry(image: sitk.Image) -> str:
    return (f"size {image.GetSize()}, spacing {tuple(round(s, 5) for s in image.GetSpacing())}, "
            f"origin {tuple(round(o, 4) for o in image.GetOrigin())}")


def evaluate_dirs(pred_dir: Path, gt_dir: Path, dataset_json: Path, threads: int = 1) -> pd.DataFrame:
    """Per-case rows for every ground-truth case; a missing or misaligned prediction is an error.

    With `threads` > 1, cases are read and evaluated that many at a time (reading and the metrics
    release the GIL); rows come back in case order, identical to one thread's.
    """
    labels = read_labels(dataset_json)
    allowed = set(labels.values())
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    if not gt_dir.is_dir():
        raise DicebenchError(f"{gt_dir}: ground-truth folder not found")
    if not pred_dir.is_dir():
        raise DicebenchError(f"{pred_dir}: prediction folder not found")
    gts = sorted(p for p in gt_dir.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))
    if not gts:
        raise DicebenchError(f"{gt_dir}: no *{SUFFIX} ground-truth files")
    missing = [pred_dir / g.name for g in gts if not (pred_dir / g.name).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DicebenchError(f"{missing[0]}: prediction missing for ground truth {gt_dir / missing[0].name}{more}")

    def one(g: Path) -> list[dict]:
        return _evaluate_file_pair(pred_dir / g.name, g, labels, allowed)

    if threads > 1 and len(gts) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(gts))) as pool:
            per_case = list(pool.map(one, gts))  # in order; the first error is raised
    else:
        per_case = [one(g) for g in gts]
    return pd.DataFrame([row for rows in per_case for row in rows], columns=CASE_COLUMNS)


def _evaluate_file_pair(p: Path, g: Path, labels: dict[str, int], allowed: set[int]) -> list[dict]:
    case = g.name[: -len(SUFFIX)]
    gt_img, pred_img = read_image(g), read_image(p)
    if not same_geometry(pred_img, gt_img):
        raise DicebenchError(
            f"{p}: geometry differs from ground truth {g} ({_geometry(pred_img)} vs {_geometry(gt_img)}, "
            "or direction)"
        )
    gt = _label_array(gt_img, g, allowed)
    pred = _label_array(pred_img, p, allowed)
    spacing = tuple(reversed(gt_img.GetSpacing()))  # array axes are (z, y, x)
    return evaluate_case(pred, gt, spacing, labels, case=case)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred-dir", required=True, type=Path, help="predicted label maps {case}.nii.gz")
    parser.add_argument("--gt-dir", required=True, type=Path, help="ground-truth label maps {case}.nii.gz")
    parser.add_argument("--dataset-json", required=True, type=Path, help="dataset.json with 'labels'")
    parser.add_argument("--cases-out", required=True, type=Path, help="per-case, per-class CSV")
    parser.add_argument("--out", required=True, type=Path, help="summary metrics.csv")
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="cases evaluated at a time (results do not depend on it; default 1)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    per_case = evaluate_dirs(args.pred_dir, args.gt_dir, args.dataset_json, threads=args.threads)
    summary = summarise(per_case)
    write_csv(per_case, args.cases_out)
    write_csv(summary, args.out)
    return 0
