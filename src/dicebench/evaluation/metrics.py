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
  gt surface voxel, and gt -> pred), as MONAI and DeepMind's ``surface-distance`` do.
  MedPy instead pools both directions before taking one percentile: that value is
  computed beside it (``Hausdorff.pooled``, ``hd95_pooled``, per_case.csv's
  ``hd95_pooled``) under the same empty-mask conventions. Percentiles use linear
  interpolation (NumPy's default, = ``torch.quantile``).
* Empty masks, as Kervadec & de Bruijne (2023, Sec. 3) count them: an object that
  exists but is not predicted, or is predicted where there is none, has HD95 equal to
  the diagonal of the scan in mm, ``sqrt(sum((n_i * s_i)^2))``; no object and none
  predicted has HD95 = 0.
* DSC = 2|P & G| / (|P| + |G|); when both are empty DSC = 1 (the same "nothing to
  find, nothing found" reading as HD95 = 0, and what Kervadec's ``dice_coef`` with a
  tiny smoothing term returns). Such cases therefore stay in every mean.

Speed (`hausdorff_labels`, exact to the brute-force definition): one streaming pass
finds each map's foreground box; one sweep of that box yields the surface voxels of
every class (a voxel whose face neighbour holds another value); then, per class, every
surface voxel walks outwards over shells of offsets sorted by length until it meets a
surface voxel of the other mask, and the walk stops as soon as the ranks that the
percentiles read are known -- the points far beyond the 95th percentile are never
resolved. If the percentiles lie beyond the walk (a prediction far from the truth), a sample
of the open points gets exact distances from a k-d tree; being 1-Lipschitz, the distance
field bounds every other open point from its nearest sample, and only the points whose
bounds reach the percentile ranks are queried exactly.
`bench/bench_hd95.py` times it beside MONAI.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = [
    "Hausdorff",
    "dice",
    "hd95",
    "hd95_labels",
    "hd95_pooled",
    "hausdorff_labels",
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


# ----------------------------------------------------------------------------- HD95, all classes at once


class Hausdorff(NamedTuple):
    """One class's HD95 under both conventions (mm); the same empty-mask rules apply to both."""

    directed: float  # max of the two directed percentiles (MONAI, DeepMind): the `hd95` of the tables
    pooled: float  # one percentile over both directions pooled (MedPy's `hd95`)


def hd95(pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: Sequence[float], percentile: float = 95.0) -> float:
    """HD95 in mm of two boolean masks: the larger of the two directed 95th percentiles of the
    surface distances (MONAI / DeepMind convention, not MedPy's pooled one).

    One mask empty -> the scan diagonal in mm; both empty -> 0 (Kervadec & de Bruijne 2023).
    """
    return _mask_pair(pred_mask, gt_mask, spacing, percentile).directed


def hd95_pooled(pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: Sequence[float],
                percentile: float = 95.0) -> float:
    """MedPy's HD95 of two boolean masks: one percentile over the distances of both directions
    pooled; the same empty-mask conventions as `hd95`."""
    return _mask_pair(pred_mask, gt_mask, spacing, percentile).pooled


def _mask_pair(pred_mask, gt_mask, spacing, percentile: float) -> Hausdorff:
    pred_mask = np.asarray(pred_mask, dtype=bool)
    gt_mask = np.asarray(gt_mask, dtype=bool)
    _check(pred_mask, gt_mask, spacing)
    return hausdorff_labels(pred_mask.view(np.uint8), gt_mask.view(np.uint8), spacing, [1], percentile)[1]


def hd95_labels(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    labels: Sequence[int],
    percentile: float = 95.0,
) -> dict[int, float]:
    """HD95 per object class of two integer label maps, = `hd95(pred == k, gt == k)`, all classes in one pass."""
    return {k: h.directed for k, h in hausdorff_labels(pred, gt, spacing, labels, percentile).items()}


def hausdorff_labels(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    labels: Sequence[int],
    percentile: float = 95.0,
) -> dict[int, Hausdorff]:
    """HD95 of every object class k of two integer label maps under both conventions, in one pass.

    Equal to the brute-force definition on `pred == k`, `gt == k` (see the module's conventions):
    one sweep of each map's foreground box gives the surface voxels of all classes; per class,
    each surface voxel then walks outwards to the nearest surface voxel of the other mask, and
    the walk stops as soon as every rank the percentiles read is known (`_class_percentiles`).
    Values not listed in `labels` belong to no class; values <= 0 are background.
    """
    pred, gt = _as_label_input(pred), _as_label_input(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    labels = [int(k) for k in labels]
    if any(k <= 0 for k in labels):
        raise ValueError(f"HD95 takes object classes (> 0), got {labels}")
    sp = np.asarray(spacing, dtype=np.float64).ravel()
    if sp.size != pred.ndim:
        raise ValueError(f"spacing {tuple(sp)} has {sp.size} values for a {pred.ndim}-D map")
    if not np.all(sp > 0):
        raise ValueError(f"spacing must be positive, got {tuple(sp)}")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    if not labels:
        return {}
    q = float(percentile)
    classes = sorted(set(labels))
    surf_p = _surface_points(pred, classes)
    surf_g = _surface_points(gt, classes)
    n_p = np.bincount(surf_p.slot, minlength=len(classes))
    n_g = np.bincount(surf_g.slot, minlength=len(classes))
    diag = scan_diagonal(pred.shape, sp)
    out: dict[int, Hausdorff] = {}
    for i, k in enumerate(classes):
        if n_p[i] == 0 and n_g[i] == 0:
            out[k] = Hausdorff(0.0, 0.0)
        elif n_p[i] == 0 or n_g[i] == 0:
            out[k] = Hausdorff(diag, diag)
    both = np.flatnonzero((n_p > 0) & (n_g > 0))
    if both.size:
        by_p, by_g = _split_by_slot(surf_p, len(classes)), _split_by_slot(surf_g, len(classes))
        for i in both:
            out[classes[i]] = _class_percentiles(by_p[i], by_g[i], sp, q)
    return {k: out[k] for k in labels}


# ----------------------------------------------------------------------------- surfaces of all classes


class _Surface(NamedTuple):
    coords: np.ndarray  # (ndim, n) int64, voxel indices in the full scan
    slot: np.ndarray  # (n,) int, the voxel's class as an index into the sorted requested classes


def _positive_box(a: np.ndarray) -> Box | None:
    """Tightest box around the values > 0, or None, without a full-size temporary.

    Two reductions that stream the map: the maximum of each slice along the first axis, then,
    inside the slab found, the maximum over that axis (left with the other axes' extent).
    """
    if a.size == 0:
        return None
    if a.ndim < 2 or not a.flags.c_contiguous:
        return bounding_box(a > 0)
    hits = np.flatnonzero(a.reshape(a.shape[0], -1).max(1) > 0)
    if hits.size == 0:
        return None
    first = slice(int(hits[0]), int(hits[-1]) + 1)
    across = a[first].max(0) > 0  # (other axes), small
    rest = []
    for axis in range(across.ndim):
        idx = np.flatnonzero(across.any(axis=tuple(d for d in range(across.ndim) if d != axis)))
        rest.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return (first, *rest)


def _surface_points(a: np.ndarray, classes: list[int]) -> _Surface:
    """Surface voxels of every requested class of label map `a`, from one pass over its foreground box.

    A voxel of class k > 0 is on the surface when a face neighbour holds another value or lies
    outside the scan. Structures that fill few of the box's rows (lesions, vessels, a distant
    false positive) are visited voxel by voxel; others are swept whole.
    """
    box = _positive_box(a)
    if box is None:
        return _Surface(np.empty((a.ndim, 0), np.int64), np.empty(0, np.intp))
    sub = a[box]
    if a.ndim >= 2 and a.flags.c_contiguous:
        row_max = sub.max(axis=-1)
        rows = np.flatnonzero(row_max > 0)
        if rows.size * _SPARSE_ROWS < row_max.size:
            coords, label = _surface_sparse(a, box, row_max.shape, rows)
            return _classify(coords, label, classes)
    coords, label = _surface_dense(np.ascontiguousarray(sub))
    coords += np.array([s.start for s in box], np.int64)[:, None]
    return _classify(coords, label, classes)


_SPARSE_ROWS = 4  # a box with fewer than 1 in this many rows non-empty is visited voxel by voxel


def _surface_dense(sub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface voxels of a contiguous box whose faces border only values <= 0 (or the scan's end).

    Each voxel is compared with the next one along every axis in the flattened box (contiguous,
    vectorised); pairs that wrap across a row or slice involve a face voxel of the box, which is
    surface anyway, so clearing the faces afterwards makes the sweep exact.
    """
    flat = sub.ravel()
    fg = flat > 0
    inner = fg.copy()
    same = np.empty(flat.size, bool)
    stride = 1
    for n in sub.shape[::-1]:
        if stride < flat.size:
            e = same[: flat.size - stride]
            np.equal(flat[:-stride], flat[stride:], out=e)
            inner[:-stride] &= e
            inner[stride:] &= e
        stride *= n
    inner_nd = inner.reshape(sub.shape)
    for axis in range(sub.ndim):
        face = [slice(None)] * sub.ndim
        for end in (0, -1):
            face[axis] = end
            inner_nd[tuple(face)] = False
    np.logical_xor(fg, inner, out=fg)
    idx = np.flatnonzero(fg)
    return np.stack(np.unravel_index(idx, sub.shape)).astype(np.int64, copy=False), flat[idx]


def _surface_sparse(a: np.ndarray, box: Box, rows_shape: tuple[int, ...], rows: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Surface voxels from the foreground voxels of the non-empty rows, each checked against its
    2 x ndim face neighbours in the (C-contiguous) full map; a neighbour beyond the scan counts
    as background."""
    lead = np.unravel_index(rows, rows_shape)
    sub = a[box]
    row_data = sub[lead]  # (rows, last axis of the box)
    fg = np.flatnonzero(row_data > 0)
    r, x = np.divmod(fg, row_data.shape[1])
    coords = np.stack([lead[d][r] + box[d].start for d in range(a.ndim - 1)] + [x + box[-1].start])
    coords = coords.astype(np.int64, copy=False)
    label = row_data.ravel()[fg]
    flat_a = a.reshape(-1)
    flat = np.ravel_multi_index(tuple(coords), a.shape)
    surface = np.zeros(flat.size, bool)
    stride = 1
    for d in range(a.ndim - 1, -1, -1):
        c = coords[d]
        for step, edge in ((-1, 0), (1, a.shape[d] - 1)):
            at_edge = c == edge
            nb = flat + step * stride
            if at_edge.any():
                surface |= at_edge
                nb = np.where(at_edge, flat, nb)
            surface |= flat_a[nb] != label
        stride *= a.shape[d]
    return coords[:, surface], label[surface]


def _classify(coords: np.ndarray, label: np.ndarray, classes: list[int]) -> _Surface:
    slot = _slots(label, classes)
    keep = slot >= 0
    if not keep.all():
        coords, slot = coords[:, keep], slot[keep]
    return _Surface(coords, slot)


def _slots(values: np.ndarray, classes: list[int]) -> np.ndarray:
    """Index of each value in `classes` (sorted), -1 for values that are no requested class."""
    if values.size == 0:
        return np.empty(0, np.intp)
    hi = int(values.max())
    if values.dtype.kind in "ub" and hi < 1 << 16:
        lut = np.full(max(hi, classes[-1]) + 1, -1, np.intp)
        lut[classes] = np.arange(len(classes))
        return lut[values]
    cls = np.asarray(classes)
    pos = np.minimum(np.searchsorted(cls, values), len(cls) - 1)
    return np.where(cls[pos] == values, pos, -1)


# ----------------------------------------------------------------------------- banded nearest-surface search

MAX_OFFSETS = 1500  # offsets tried per point by the ball walk (~ a ball of 7 voxels radius)
MAX_ROWS = 400  # rows (offsets over all axes but the last) tried per point by the row walk
_MAX_LINE = 15  # voxels along the last axis the row walk looks (its 1-D map takes 4 doubling steps)
_ROW_WALK_VOXELS = 48  # the row walk when its volume is under this many voxels per surface point
_SHELL_GROWTH = 2.0  # each shell of offsets holds about this many times the offsets of all before it
# leave the walk for the k-d tree when, this far into its offsets, fewer than this share of the
# needed distances are found (a prediction far from the truth: the rest would mostly be wasted)
_GIVE_UP_AFTER, _GIVE_UP_BELOW = 0.25, 0.5
_SAMPLE_EVERY, _SAMPLE_ABOVE = 8, 64  # past the walk: exact distances of every 8th open point bound the rest
_CHUNK = 1 << 17  # (point, offset) pairs gathered per step: the index block stays in cache


@functools.lru_cache(maxsize=32)
def _offset_ball(spacing: tuple[float, ...], max_count: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Integer offsets with length <= R mm, sorted by length; their lengths; shells (start, stop).

    R is the largest radius whose ball holds at most `max_count` offsets. Shells end at a change of
    length, so after a shell every point with a nearest distance up to its last length is found.
    """
    sp = np.asarray(spacing)
    ndim = sp.size
    unit_ball = math.pi ** (ndim / 2) / math.gamma(ndim / 2 + 1)
    radius = 1.3 * (max_count * float(np.prod(sp)) / unit_ball) ** (1 / ndim)
    half = np.floor(radius / sp).astype(int)
    complete_below = float(np.min((half + 1) * sp))  # any offset outside the grid is at least this long
    grid = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), -1).reshape(-1, ndim)
    length = np.sqrt(((grid * sp) ** 2).sum(1))
    order = np.argsort(length, kind="stable")
    grid, length = grid[order], length[order]
    n = int(np.searchsorted(length, complete_below, side="left"))
    n = min(n, max_count)
    while n < len(length) and n > 1 and length[n] == length[n - 1]:
        n -= 1  # never split a set of equally long offsets
    grid, length = grid[:n], length[:n]
    change = np.flatnonzero(np.diff(length) > 0) + 1  # first index of each new length
    shells, start = [], 0
    for stop in list(change) + [n]:
        if stop - start >= _SHELL_GROWTH * max(start, 1) or stop == n or start == 0:
            shells.append((start, int(stop)))
            start = int(stop)
    return grid, length, shells


def _split_by_slot(s: _Surface, n_slots: int) -> list[np.ndarray]:
    """Coordinates (ndim, n) of each class slot's surface voxels."""
    if s.slot.size and (s.slot == s.slot[0]).all():
        return [s.coords if k == s.slot[0] else s.coords[:, :0] for k in range(n_slots)]
    order = np.argsort(s.slot.astype(np.int32 if n_slots >= 1 << 15 else np.int16), kind="stable")
    bounds = np.searchsorted(s.slot[order], np.arange(n_slots + 1))
    coords = s.coords[:, order]
    return [coords[:, bounds[k]:bounds[k + 1]] for k in range(n_slots)]


def _class_percentiles(p: np.ndarray, g: np.ndarray, sp: np.ndarray, q: float) -> Hausdorff:
    """HD95 (directed, pooled) of one class from its surface voxels `p`, `g` ((ndim, n) each, non-empty).

    Each surface voxel looks for its nearest surface voxel of the other mask by one of two exact
    walks over shells of increasing length: the *row walk* (compact structures) reads, for each
    row offset (all axes but the last), the distance along the last axis to the nearest target
    voxel from a precomputed 1-D distance map; the *ball walk* (structures sparse in their box,
    whose map would cost more than the walk) tests integer offsets one by one. Both directions
    walk together (one array: pred's points search gt's surface in the first half of the
    volume, gt's points pred's surface in the second), so after each shell every distance up
    to the shell's length is known in both; the walk stops once the ranks the three percentiles
    read are all known. If they lie beyond its last shell (or it finds under half of them a
    quarter of the way in), `_beyond_walk` finishes with k-d trees.
    """
    n = (p.shape[1], g.shape[1])
    need = (_rank_pair(n[0], q)[1] + 1, _rank_pair(n[1], q)[1] + 1, _rank_pair(n[0] + n[1], q)[1] + 1)
    lo_pts, hi_pts = np.minimum(p.min(1), g.min(1)), np.maximum(p.max(1), g.max(1))
    rows = sp.size >= 2
    if rows:
        offsets, length, shells, reach, settled = _row_walk(tuple(float(s) for s in sp), MAX_ROWS, _MAX_LINE)
        rows = math.prod((hi_pts - lo_pts + 2 * reach + 1).tolist()) <= _ROW_WALK_VOXELS * (n[0] + n[1])
    if not rows:
        offsets, length, shells = _offset_ball(tuple(float(s) for s in sp), MAX_OFFSETS)
        reach = np.abs(offsets).max(0)
    lo = lo_pts - reach
    padded = tuple(int(x) for x in hi_pts + reach + 1 - lo)
    size = math.prod(padded)
    strides = np.array([math.prod(padded[d + 1:]) for d in range(sp.size)], np.int64)
    flat_p, flat_g = _flat_index(p, lo, strides), _flat_index(g, lo, strides)
    surfaces = np.concatenate([flat_g, flat_p + size])  # what pred's points, then gt's points, look for
    pending = np.concatenate([flat_p, flat_g + size])
    pending_a = n[0]  # pending[:pending_a] are pred's points
    flat_offsets = offsets @ strides
    if rows:
        target = _line_distance(surfaces, 2 * size, int(reach[-1]) + 1)
        last_sq = (np.arange(reach[-1] + 2) * sp[-1]) ** 2
        last_sq[-1] = np.inf  # "no target voxel within reach along the last axis"
        row_sq = length ** 2
        best = np.full(pending.size, np.inf)
    else:
        target = _indicator(surfaces, 2 * size)
    found: list[list[np.ndarray]] = [[], []]
    count = [0, 0]
    done = False
    for i, (start, stop) in enumerate(shells):
        if rows:
            np.minimum(best, _row_minima(target, pending, flat_offsets[start:stop], last_sq, row_sq[start:stop]),
                       out=best)
            got = best <= settled[i]
            dist = best
        else:
            dist = _first_distance(target, pending, flat_offsets[start:stop], length[start:stop])
            got = dist < np.inf
        got_a, got_b = got[:pending_a], got[pending_a:]
        for d, part in ((0, dist[:pending_a][got_a]), (1, dist[pending_a:][got_b])):
            found[d].append(np.sqrt(part) if rows else part)  # the row walk finds squared distances
        count[0] += int(np.count_nonzero(got_a))
        count[1] += int(np.count_nonzero(got_b))
        if count[0] >= need[0] and count[1] >= need[1] and count[0] + count[1] >= need[2]:
            done = True
            break
        keep = ~got
        pending_a = int(np.count_nonzero(keep[:pending_a]))
        pending = pending[keep]
        if rows:
            best = best[keep]
        if stop >= _GIVE_UP_AFTER * len(length) and count[0] + count[1] < _GIVE_UP_BELOW * (need[0] + need[1]):
            break
    resolved = [np.concatenate(found[0]), np.concatenate(found[1])]
    if done:
        a, b = resolved
        directed = max(_percentile_of_smallest(a, n[0], q), _percentile_of_smallest(b, n[1], q))
        return Hausdorff(directed, _percentile_of_smallest(np.concatenate([a, b]), n[0] + n[1], q))
    # some ranks lie beyond the walk: the points it left open, in mm, and k-d trees of their targets
    open_pts = [np.stack(np.unravel_index(pending[:pending_a], padded)).T * sp,
                np.stack(np.unravel_index(pending[pending_a:] - size, padded)).T * sp]
    trees = [_tree((t - lo[:, None]).T * sp) for t in (g, p)]
    return _beyond_walk(resolved, open_pts, trees, n, q)


def _tree(points_mm: np.ndarray) -> cKDTree:
    return cKDTree(points_mm, leafsize=32, balanced_tree=False, compact_nodes=False)


def _beyond_walk(resolved: list[np.ndarray], open_pts: list[np.ndarray], trees: list[cKDTree],
                 n: tuple[int, int], q: float) -> Hausdorff:
    """Both percentiles when ranks they read lie among the points the walk left open.

    Every resolved distance is below every open one, so a rank beyond the resolved values is a
    rank among the open points. The distance to a fixed set is 1-Lipschitz, so the exact distances
    of a sample of open points bound all of them (`_lipschitz_bounds`); the value at rank k lies
    between the k-th smallest lower and the k-th smallest upper bound, and only the points whose
    bounds reach into that bracket need exact k-d tree queries: the value is the (k - #wholly
    below)-th smallest of them.
    """
    bounds = [_lipschitz_bounds(x, t) for x, t in zip(open_pts, trees)]
    # the three sets whose percentiles are read: pred -> gt, gt -> pred, both pooled
    sets = [(resolved[0], bounds[0][0], bounds[0][1], n[0]),
            (resolved[1], bounds[1][0], bounds[1][1], n[1]),
            (np.concatenate(resolved), np.concatenate([bounds[0][0], bounds[1][0]]),
             np.concatenate([bounds[0][1], bounds[1][1]]), n[0] + n[1])]
    brackets = []  # (set, rank among open points, lower end, upper end)
    wanted = [np.zeros(len(x), bool) for x in open_pts]
    for i, (res, lower, upper, total) in enumerate(sets):
        for k in sorted(set(_rank_pair(total, q)[:2])):
            k_open = k - res.size
            if k_open < 0:
                continue
            lo_k, hi_k = np.partition(lower, k_open)[k_open], np.partition(upper, k_open)[k_open]
            brackets.append((i, k_open, lo_k, hi_k))
            amb = (upper >= lo_k) & (lower <= hi_k)
            if i < 2:
                wanted[i] |= amb
            else:
                wanted[0] |= amb[: len(open_pts[0])]
                wanted[1] |= amb[len(open_pts[0]):]
    # a point beyond every bracket it is wanted for only has to be known to lie beyond: a bounded
    # search (inf past the bound) prunes the tree
    reach = [max((hi for i, _, _, hi in brackets if i in (d, 2)), default=0.0) for d in (0, 1)]
    exact = []
    for x, t, w, r in zip(open_pts, trees, wanted, reach):
        e = np.full(len(x), np.nan)
        if w.any():
            e[w] = t.query(x[w], k=1, distance_upper_bound=r * (1 + 1e-9) + 1e-9)[0]
        exact.append(e)
    exact.append(np.concatenate(exact))
    open_value = {}
    for i, k_open, lo_k, hi_k in brackets:
        lower, upper = sets[i][1], sets[i][2]
        below = int(np.count_nonzero(upper < lo_k))
        values = exact[i][(upper >= lo_k) & (lower <= hi_k)]
        open_value[i, k_open] = float(np.partition(values, k_open - below)[k_open - below])

    def percentile(i: int) -> float:
        res, total = sets[i][0], sets[i][3]
        r0, r1, t = _rank_pair(total, q)
        inside = [k for k in (r0, r1) if k < res.size]
        part = np.partition(res, inside) if inside else res
        a, b = (float(part[k]) if k < res.size else open_value[i, k - res.size] for k in (r0, r1))
        return _lerp(a, b, t)

    return Hausdorff(max(percentile(0), percentile(1)), percentile(2))


def _lipschitz_bounds(points: np.ndarray, tree: cKDTree) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of each point's distance to the tree's points: exact for a few
    points, else from the exact distances of a sample (`_sampled_bounds`)."""
    if len(points) < _SAMPLE_ABOVE:
        d = tree.query(points, k=1)[0]
        return d, d
    return _sampled_bounds(points, tree)


def _sampled_bounds(points: np.ndarray, tree: cKDTree) -> tuple[np.ndarray, np.ndarray]:
    """Bounds from the exact distances of every `_SAMPLE_EVERY`-th point: the distance to a fixed
    set is 1-Lipschitz, |d(x) - d(s)| <= |x - s| for the point's nearest sample s. Widened by a
    few ulps, so that rounding can only make a point ambiguous, never misplace it."""
    sample = points[::_SAMPLE_EVERY]
    d_sample = tree.query(sample, k=1)[0]
    gap, nearest = _tree(sample).query(points, k=1)
    centre = d_sample[nearest]
    return np.maximum((centre - gap) * (1 - 1e-12) - 1e-12, 0.0), (centre + gap) * (1 + 1e-12) + 1e-12


@functools.lru_cache(maxsize=32)
def _row_walk(spacing: tuple[float, ...], max_rows: int, max_line: int
              ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Row offsets (last axis 0) sorted by length, their lengths, shells, the reach per axis, and
    for each shell the squared distance up to which a point's best candidate is final.

    The walk covers every row up to a length R that the 1-D distance map sees along the last
    axis (`max_line` voxels), so any voxel within R of a point lies in a walked row within the
    map's reach. After a shell, a candidate no longer than the next row's length is final (no
    later row can beat it), and after the last shell any candidate up to R is.
    """
    sp = np.asarray(spacing)
    offsets, length, shells = _offset_ball(tuple(spacing[:-1]), max_rows)
    reach_last = min(int(math.floor(length[-1] / sp[-1])), max_line)
    radius = reach_last * sp[-1]
    keep = int(np.searchsorted(length, radius, side="right"))
    offsets, length = offsets[:keep], length[:keep]
    shells = [(a, min(b, keep)) for a, b in shells if a < keep]
    settled = np.array([length[b] ** 2 if b < keep else radius ** 2 for _, b in shells])
    reach = np.append(np.abs(offsets).max(0), reach_last)
    offsets = np.hstack([offsets, np.zeros((len(offsets), 1), offsets.dtype)])
    return offsets, length, shells, reach, settled


def _indicator(flat: np.ndarray, size: int) -> np.ndarray:
    vol = np.zeros(size, bool)
    vol[flat] = True
    return vol


def _line_distance(flat: np.ndarray, size: int, clip: int) -> np.ndarray:
    """Distance in voxels along the last axis to the nearest voxel of `flat`, capped at `clip`.

    Min-plus steps of 1, 2, 4, ... voxels on the flattened volume: after the step of 2^j every
    distance below 2^(j+1) is exact. Steps that wrap into the next row cross at least twice the
    padding of the last axis (>= clip), so they only ever produce capped values.
    """
    dist = np.full(size, clip, np.uint8)
    dist[flat] = 0
    shifted = np.empty(size, np.uint8)
    s = 1
    while s < clip:
        m = size - s
        if m > 0:
            np.add(dist[s:], np.uint8(s), out=shifted[:m])
            np.minimum(dist[:m], shifted[:m], out=dist[:m])
            np.add(dist[:m], np.uint8(s), out=shifted[:m])
            np.minimum(dist[s:], shifted[:m], out=dist[s:])
        s *= 2
    return dist


def _row_minima(dist: np.ndarray, idx: np.ndarray, row_offsets: np.ndarray, last_sq: np.ndarray,
                row_sq: np.ndarray) -> np.ndarray:
    """Squared distance in mm to the nearest target among the given rows, for each point (inf if none).

    Blocks are laid out (offset, point) so that the minimum runs across offsets element-wise.
    """
    out = np.empty(idx.size)
    step = max(1, _CHUNK // row_offsets.size)
    for a in range(0, idx.size, step):
        along = dist[row_offsets[:, None] + idx[None, a:a + step]]
        sq = last_sq[along]
        sq += row_sq[:, None]
        sq.min(0, out=out[a:a + step])
    return out


def _flat_index(coords: np.ndarray, lo: np.ndarray, strides: np.ndarray) -> np.ndarray:
    f = (coords[0] - lo[0]) * strides[0]
    for d in range(1, len(strides)):
        f += (coords[d] - lo[d]) * strides[d]
    return f


def _first_distance(target: np.ndarray, idx: np.ndarray, offs: np.ndarray, length: np.ndarray) -> np.ndarray:
    """For each point, the length of its shortest offset in `offs` that lands on the target (inf if none).

    Blocks are laid out (offset, point) so that the minimum runs across offsets element-wise.
    """
    if offs.size == 1:
        return np.where(target[idx + offs[0]], length[0], np.inf)
    out = np.empty(idx.size)
    step = max(1, _CHUNK // offs.size)
    weights = length[:, None]
    for a in range(0, idx.size, step):
        hit = target[offs[:, None] + idx[None, a:a + step]]
        np.where(hit, weights, np.inf).min(0, out=out[a:a + step])
    return out


def _rank_pair(n: int, q: float) -> tuple[int, int, float]:
    """The two order statistics (0-based) and weight of NumPy's linear-interpolation percentile."""
    qq = q / 100.0
    virtual = n * qq + (1 - qq) - 1  # NumPy's _compute_virtual_index for the linear method
    r0 = int(math.floor(virtual))
    r0 = min(max(r0, 0), n - 1)
    return r0, min(r0 + 1, n - 1), virtual - r0


def _percentile_of_smallest(smallest: np.ndarray, n: int, q: float) -> float:
    """NumPy's linear percentile of n values of which `smallest` holds at least the ranks it reads."""
    r0, r1, t = _rank_pair(n, q)
    part = np.partition(smallest, (r0, r1)) if smallest.size > r1 + 1 else np.sort(smallest)
    return _lerp(float(part[r0]), float(part[r1]), t)


def _lerp(a: float, b: float, t: float) -> float:
    """NumPy's linear interpolation between two order statistics (its exact arithmetic)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _as_label_input(a: np.ndarray) -> np.ndarray:
    """Label maps must be integer (or boolean); values <= 0 belong to no class."""
    a = np.asarray(a)
    if a.dtype == bool:
        return a.view(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"label maps must be integer, got {a.dtype}")
    return a
