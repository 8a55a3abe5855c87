"""HD95 time of dicebench beside MONAI's compute_hausdorff_distance, same run, same masks.

    .venv/bin/python bench/bench_hd95.py [--quick] [--repeats N] [--threads N]

A 512 x 512 x 200 scan (array (200, 512, 512), spacing 2.5 x 0.8 x 0.8 mm) with small
structures: the ground truth is three ellipsoids, the prediction the same ellipsoids shifted,
grown or shrunk, plus a small false positive. Prints the median and minimum seconds of each
(ours and MONAI interleaved, so both see the same load), both HD95 values, and the speed-up
MONAI / ours of the medians. Also times the per-class path `hd95_labels` on the label map
(3 classes) beside MONAI run on each class mask. Not a test: no assertion on time.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance

from dicebench.evaluation.metrics import hd95, hd95_labels


def ellipsoid(shape, centre, radii_mm, spacing) -> tuple[tuple[slice, ...], np.ndarray]:
    """(box, mask inside the box) of an ellipsoid, built without touching the full volume."""
    r_vox = [r / s for r, s in zip(radii_mm, spacing)]
    box = tuple(slice(max(0, int(c - r) - 1), min(n, int(c + r) + 2)) for c, r, n in zip(centre, r_vox, shape))
    grids = np.ogrid[box]
    q = sum(((g - c) * s / r) ** 2 for g, c, s, r in zip(grids, centre, spacing, radii_mm))
    return box, q <= 1.0


def make_case(shape, spacing, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    centres = [(100, 200, 260), (110, 300, 240), (90, 260, 330)]
    for k, c in enumerate(centres, start=1):
        radii = rng.uniform(8, 20, 3)
        box, m = ellipsoid(shape, c, radii, spacing)
        gt[box][m] = k
        shift = rng.normal(0, 1.5, 3)
        box, m = ellipsoid(shape, tuple(np.add(c, shift)), radii * rng.uniform(0.85, 1.15, 3), spacing)
        pred[box][m] = k
    box, m = ellipsoid(shape, (60, 150, 150), (4, 4, 4), spacing)  # a small false positive of class 1
    pred[box][m] = 1
    return pred, gt


def timed(fn, *a, **kw) -> tuple[float, float]:
    t0 = time.perf_counter()
    v = fn(*a, **kw)
    return time.perf_counter() - t0, float(v)


def monai_hd95(pred: np.ndarray, gt: np.ndarray, spacing) -> float:
    return compute_hausdorff_distance(
        torch.from_numpy(pred)[None, None], torch.from_numpy(gt)[None, None],
        include_background=True, percentile=95, spacing=list(spacing),
    ).item()


def report(name: str, ours: list[float], ref: list[float], v_ours: float, v_ref: float) -> None:
    mo, mr = statistics.median(ours), statistics.median(ref)
    print(f"{name:<28} ours {mo:8.4f} s (min {min(ours):.4f})   MONAI {mr:8.4f} s (min {min(ref):.4f})   "
          f"speed-up x{mr / mo:6.1f} (min x{min(ref) / min(ours):.1f})")
    print(f"{'':<28} HD95 ours {v_ours:.6f} mm   MONAI {v_ref:.6f} mm   |diff| {abs(v_ours - v_ref):.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="(100, 256, 256) and 3 repeats")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    spacing = (2.5, 0.8, 0.8)
    repeats = args.repeats or (3 if args.quick else 5)
    pred, gt = make_case((200, 512, 512), spacing, seed=0)
    if args.quick:  # the same structures in a smaller scan around them
        pred, gt = pred[50:150, 128:384, 128:384].copy(), gt[50:150, 128:384, 128:384].copy()
    shape = pred.shape
    print(f"scan {shape} (z, y, x), spacing {spacing} mm, "
          f"gt voxels per class {np.bincount(gt.ravel(), minlength=4)[1:].tolist()}, "
          f"pred {np.bincount(pred.ravel(), minlength=4)[1:].tolist()}")

    p1, g1 = pred == 1, gt == 1
    ours, ref = [], []
    for _ in range(repeats):
        t, v_ours = timed(hd95, p1, g1, spacing)
        ours.append(t)
        t, v_ref = timed(monai_hd95, p1, g1, spacing)
        ref.append(t)
    report("one class (bool masks)", ours, ref, v_ours, v_ref)

    ours, ref = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        d_ours = hd95_labels(pred, gt, spacing, [1, 2, 3])
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        d_ref = {k: monai_hd95(pred == k, gt == k, spacing) for k in (1, 2, 3)}
        ref.append(time.perf_counter() - t0)
    report("3 classes (label map)", ours, ref, float(np.mean(list(d_ours.values()))),
           float(np.mean(list(d_ref.values()))))
    print("  per class ours  " + "  ".join(f"{k}: {v:.6f}" for k, v in d_ours.items()))
    print("  per class MONAI " + "  ".join(f"{k}: {v:.6f}" for k, v in d_ref.items()))


if __name__ == "__main__":
    main()
