"""Dice similarity coefficient and 95th-percentile Hausdorff distance (HD95, mm).

Conventions, used everywhere in dicebench (tables, per-case CSVs, reports):

* Surface of a mask: the mask voxels that have a background voxel among their face
  neighbours (6-connectivity in 3-D), i.e. ``mask & ~binary_erosion(mask)`` with
  SciPy's default cross-shaped structuring element; voxels outside the scan count as
  background, so object voxels on the scan border are surface. This is MONAI's
  ``get_mask_edges`` (without sub-voxel areas) and gives values equal to MONAI's
  ``compute_hausdorff_distance``.
* Distances are Euclidean between voxel centres in mm, with the (anisotropic) spacing
  given in the array's axis order.
* HD95 is the *larger of the two directed 95th percentiles* (pred surface -> nearest
  gt surface voxel, and gt -> pred), as MONAI and DeepMind's ``surface-distance`` do;
  MedPy instead pools both directions before taking one percentile. Percentiles use
  linear interpolation (NumPy's default, = ``torch.quantile``).
* Empty masks, as Kervadec & de Bruijne (2023, Sec. 3) count them: an object that
  exists but is not predicted, or is predicted where there is none, has HD95 equal to
  the diagonal of the scan in mm, ``sqrt(sum((n_i * s_i)^2))``; no object and none
  predicted has HD95 = 0.
* DSC = 2|P & G| / (|P| + |G|); when both are empty DSC = 1 (the same "nothing to
  find, nothing found" reading as HD95 = 0, and what Kervadec's ``dice_coef`` with a
  tiny smoothing term returns). Such cases therefore stay in every mean.

Speed: everything after one pass over the full volume happens inside the union
bounding box of both masks plus a one-voxel margin, and the nearest-surface search
runs on surface voxels only (a k-d tree over their mm coordinates: exact, and cheap
because surfaces are thin), so small structures in a large scan cost little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = [
    "dice",
    "hd95",
    "hd95_labels",
    "overlap_counts",
    "hausdorff_percentile",
    "surface_distances",
    "surface_mask",
    "bounding_box",
    "scan_diagonal",
]

Box = tuple[slice, ...]


def dice(pred: np.ndarray, gt: np.ndarray, labels: Sequence[int]) -> dict[int, float]:
    """DSC per class of two integer label maps: 2|P_k & G_k| / (|P_k| + |G_k|); 1 if both empty.

    One joint histogram pass over the volume instead of one comparison per class.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    labels = [int(k) for k in labels]
    inter, n_pred, n_gt = overlap_counts(pred, gt, labels)
    out: dict[int, float] = {}
    for i, k in enumerate(labels):
        denom = n_pred[i] + n_gt[i]
        out[k] = 1.0 if denom == 0 else 2.0 * inter[i] / denom
    return out


def overlap_counts(pred: np.ndarray, gt: np.ndarray, labels: Sequence[int]) -> tuple[np.ndarray, ...]:
    """(|P_k & G_k|, |P_k|, |G_k|) for each label k, as int64 arrays in `labels` order.

    Values that are not in `labels` belong to no class.
    """
    labels = [int(k) for k in labels]
    n = len(labels)
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    if pred.size and np.issubdtype(pred.dtype, np.integer) and np.issubdtype(gt.dtype, np.integer):
        # Outside the box around both foregrounds every voxel is (0, 0): count it, don't visit it.
        box = _union_box(bounding_box(pred != 0), bounding_box(gt != 0), pred.shape, margin=0)
        if box is None:
            box = tuple(slice(0, 0) for _ in pred.shape)
        p, g = pred[box].ravel(), gt[box].ravel()
        outside = pred.size - p.size
        lo = min(int(p.min(initial=0)), int(g.min(initial=0)), min(labels, default=0))
        hi = max(int(p.max(initial=0)), int(g.max(initial=0)), max(labels, default=0))
        if lo >= 0 and hi < 1 << 16:
            lut = np.full(hi + 1, n, dtype=np.intp)  # n = "no listed class"
            lut[labels] = np.arange(n)
            joint = np.bincount(lut[g] * (n + 1) + lut[p], minlength=(n + 1) ** 2).reshape(n + 1, n + 1)
            joint[lut[0], lut[0]] += outside
            return np.diag(joint)[:n].copy(), joint.sum(0)[:n], joint.sum(1)[:n]
    p, g = pred.ravel(), gt.ravel()
    inter = np.array([np.count_nonzero((p == k) & (g == k)) for k in labels], dtype=np.int64)
    n_pred = np.array([np.count_nonzero(p == k) for k in labels], dtype=np.int64)
    n_gt = np.array([np.count_nonzero(g == k) for k in labels], dtype=np.int64)
    return inter, n_pred, n_gt


def scan_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length in mm of the scan's diagonal, sqrt(sum((n_i * s_i)^2)): the HD95 of a missed object."""
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


def bounding_box(mask: np.ndarray) -> Box | None:
    """Tightest box holding every True voxel, or None if there is none.

    Only the first axis scans the whole volume; later axes scan the slab found so far.
    """
    box: list[slice] = []
    sub = mask
    for axis in range(mask.ndim):
        moved = np.moveaxis(sub, axis, 0)
        flat = moved.reshape(moved.shape[0], -1) if moved.flags.c_contiguous else None
        hits = flat.any(axis=1) if flat is not None else moved.any(axis=tuple(range(1, moved.ndim)))
        idx = np.flatnonzero(hits)
        if idx.size == 0:
            return None
        s = slice(int(idx[0]), int(idx[-1]) + 1)
        box.append(s)
        sub = sub[(slice(None),) * axis + (s,)]
    return tuple(box)


def _union_box(a: Box | None, b: Box | None, shape: Sequence[int], margin: int = 1) -> Box | None:
    boxes = [x for x in (a, b) if x is not None]
    if not boxes:
        return None
    return tuple(
        slice(max(0, min(x[d].start for x in boxes) - margin), min(n, max(x[d].stop for x in boxes) + margin))
        for d, n in enumerate(shape)
    )


def surface_mask(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a face neighbour outside the mask (outside the array counts as outside)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _coords_mm(surface: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    return np.argwhere(surface).astype(np.float64) * spacing


def _directed(from_pts: np.ndarray, to_pts: np.ndarray) -> np.ndarray:
    """Distance from each point of `from_pts` to its nearest point of `to_pts` (exact)."""
    if len(from_pts) == 0:
        return np.empty(0)
    if len(to_pts) == 0:
        return np.full(len(from_pts), np.inf)
    return cKDTree(to_pts, leafsize=32, balanced_tree=False, compact_nodes=False).query(from_pts, k=1)[0]


def _check(pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(f"pred and gt masks differ in shape: {pred_mask.shape} vs {gt_mask.shape}")
    sp = np.asarray(spacing, dtype=np.float64).ravel()
    if sp.size != pred_mask.ndim:
        raise ValueError(f"spacing {tuple(sp)} has {sp.size} values for a {pred_mask.ndim}-D mask")
    if not np.all(sp > 0):
        raise ValueError(f"spacing must be positive, got {tuple(sp)}")
    return sp


def _cropped_distances(
    pred_mask: np.ndarray, gt_mask: np.ndarray, sp: np.ndarray, box: Box | None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances inside `box` (which must hold both masks plus a margin)."""
    if box is None:
        return np.empty(0), np.empty(0)
    p_surf = surface_mask(pred_mask[box])
    g_surf = surface_mask(gt_mask[box])
    p_pts, g_pts = _coords_mm(p_surf, sp), _coords_mm(g_surf, sp)
    return _directed(p_pts, g_pts), _directed(g_pts, p_pts)


def surface_distances(
    pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred surface -> gt surface, gt surface -> pred surface).

    One value per surface voxel of the source mask; +inf when the target mask is empty,
    an empty array when the source mask is.
    """
    pred_mask = np.asarray(pred_mask, dtype=bool)
    gt_mask = np.asarray(gt_mask, dtype=bool)
    sp = _check(pred_mask, gt_mask, spacing)
    box = _union_box(bounding_box(pred_mask), bounding_box(gt_mask), pred_mask.shape)
    return _cropped_distances(pred_mask, gt_mask, sp, box)


def hausdorff_percentile(d_pred_gt: np.ndarray, d_gt_pred: np.ndarray, percentile: float = 95.0) -> float:
    """max(P_q(d(pred->gt)), P_q(d(gt->pred))), linear-interpolated percentiles; both-empty -> 0."""
    parts = [float(np.percentile(d, percentile)) for d in (d_pred_gt, d_gt_pred) if len(d)]
    return max(parts) if parts else 0.0


def _hd_from_box(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    sp: np.ndarray,
    box: Box | None,
    pred_empty: bool,
    gt_empty: bool,
    percentile: float,
) -> float:
    if pred_empty and gt_empty:
        return 0.0
    if pred_empty or gt_empty:
        return scan_diagonal(pred_mask.shape, sp)
    return hausdorff_percentile(*_cropped_distances(pred_mask, gt_mask, sp, box), percentile)


def hd95(pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: Sequence[float], percentile: float = 95.0) -> float:
    """HD95 in mm of two boolean masks: the larger of the two directed 95th percentiles of the
    surface distances (MONAI / DeepMind convention, not MedPy's pooled one).

    One mask empty -> the scan diagonal in mm; both empty -> 0 (Kervadec & de Bruijne 2023).
    """
    pred_mask = np.asarray(pred_mask, dtype=bool)
    gt_mask = np.asarray(gt_mask, dtype=bool)
    sp = _check(pred_mask, gt_mask, spacing)
    pb, gb = bounding_box(pred_mask), bounding_box(gt_mask)
    box = _union_box(pb, gb, pred_mask.shape)
    return _hd_from_box(pred_mask, gt_mask, sp, box, pb is None, gb is None, percentile)


def hd95_labels(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    labels: Sequence[int],
    percentile: float = 95.0,
) -> dict[int, float]:
    """HD95 per object class of two non-negative integer label maps, = `hd95(pred == k, gt == k)`.

    The bounding boxes of all classes come from one `ndimage.find_objects` pass per map, so
    only the boxes are ever compared against k.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    labels = [int(k) for k in labels]
    if any(k <= 0 for k in labels):
        raise ValueError(f"hd95_labels takes object classes (> 0), got {labels}")
    sp = np.asarray(spacing, dtype=np.float64).ravel()
    if sp.size != pred.ndim:
        raise ValueError(f"spacing {tuple(sp)} has {sp.size} values for a {pred.ndim}-D map")
    if not labels:
        return {}
    top = max(labels)
    pboxes = _label_boxes(_as_label_input(pred), top)
    gboxes = _label_boxes(_as_label_input(gt), top)
    out: dict[int, float] = {}
    for k in labels:
        pb, gb = pboxes[k - 1], gboxes[k - 1]
        if pb is None and gb is None:
            out[k] = 0.0
        elif pb is None or gb is None:
            out[k] = scan_diagonal(pred.shape, sp)
        else:
            box = _union_box(pb, gb, pred.shape)
            d = _cropped_distances(pred[box] == k, gt[box] == k, sp, _full(box))
            out[k] = hausdorff_percentile(*d, percentile)
    return out


def _label_boxes(a: np.ndarray, top: int) -> list[Box | None]:
    """Bounding box of each label 1..top: `find_objects` run only inside the foreground's box."""
    fg = bounding_box(a != 0)
    if fg is None:
        return [None] * top
    boxes = ndimage.find_objects(a[fg], max_label=top)
    return [None if b is None else tuple(slice(o.start + s.start, o.start + s.stop) for o, s in zip(fg, b))
            for b in boxes]


def _full(box: Box) -> Box:
    return tuple(slice(0, s.stop - s.start) for s in box)


def _as_label_input(a: np.ndarray) -> np.ndarray:
    """find_objects wants non-negative integers; negative values belong to no class."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"label maps must be integer, got {a.dtype}")
    if a.dtype.kind == "i" and a.size and a.min() < 0:
        a = np.where(a < 0, 0, a)
    return a
