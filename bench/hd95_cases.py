"""Synthetic ground truth / prediction pairs of the shapes HD95 meets in practice, for the benchmarks.

Each builder returns ``Case(name, pred, gt, spacing, labels)`` with integer label maps in (z, y, x)
order and the spacing in that order (mm). Everything is drawn from a seeded generator and built
inside the structures' own boxes, so a case of 40 M voxels takes about a second to make.

* ``organ_smooth``   one liver-sized organ (about 1.7 L), smooth boundary; the prediction is the
                     organ slightly displaced and rescaled.
* ``organ_rough``    the same organ with a rough, fragmented boundary (noise of a few mm on the
                     implicit surface), the prediction another noise draw: many surface voxels.
* ``lesions``        WMH-like: 60 small irregular lesions spread over a brain MRI; the prediction
                     misses some, adds false positives and grows or shrinks the rest.
* ``ring``           myocardium-like: a ring of 5-7 mm wall in each slice of a cine-MRI stack.
* ``vessels``        a tree of thin tubes (radius 1-3.5 mm) across a CT; the prediction loses
                     branch tips, changes radii and adds a few spurious segments.
* ``distant_fp``     three small ellipsoids and a distant false positive (the former benchmark).
* ``organ_offset``   a stress case beyond the suite: the smooth organ predicted 16-20 mm off (a
                     failed model), so most distances lie beyond the walk (the k-d tree path).
* ``abdomen7``       a label map with 7 classes (artery, portal vein, liver, spleen, stomach,
                     gallbladder, pancreas) at TotalSegmentator's 1.5 mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class Case:
    name: str
    pred: np.ndarray
    gt: np.ndarray
    spacing: tuple[float, ...]
    labels: list[int]
    what: str


def _box(shape, centre, reach_vox):
    return tuple(slice(max(0, int(np.floor(c - r)) - 1), min(n, int(np.ceil(c + r)) + 2))
                 for c, r, n in zip(centre, reach_vox, shape))


def ellipsoid_field(shape, centre, radii_mm, spacing, pad_mm=0.0):
    """(box, q) with q = sum(((x - c) / r)^2) inside a box reaching `pad_mm` beyond the ellipsoid."""
    reach = [(r + pad_mm) / s for r, s in zip(radii_mm, spacing)]
    box = _box(shape, centre, reach)
    grids = np.ogrid[box]
    q = sum(((g - c) * s / r) ** 2 for g, c, s, r in zip(grids, centre, spacing, radii_mm))
    return box, q


def paint(vol, box, mask, value):
    vol[box][mask] = value


def organ(shape, spacing, centre, radii_mm, rng, rough_mm=0.0, lobes=()):
    """(box, mask): an ellipsoid and its lobes (centre offset in voxels, radii), smooth or rough."""
    reach_pad = 3 * rough_mm + 2
    parts = [(centre, radii_mm)] + [(tuple(np.add(centre, off)), r) for off, r in lobes]
    lo = np.min([[c - (r + reach_pad) / s for c, r, s in zip(cc, rr, spacing)] for cc, rr in parts], axis=0)
    hi = np.max([[c + (r + reach_pad) / s for c, r, s in zip(cc, rr, spacing)] for cc, rr in parts], axis=0)
    box = tuple(slice(max(0, int(a) - 1), min(n, int(np.ceil(b)) + 2)) for a, b, n in zip(lo, hi, shape))
    grids = np.ogrid[box]
    # signed "distance" in mm, approximately: min over parts of (sqrt(q) - 1) * mean radius
    f = None
    for cc, rr in parts:
        q = np.sqrt(sum(((g - c) * s / r) ** 2 for g, c, s, r in zip(grids, cc, spacing, rr)))
        d = (q - 1.0) * float(np.mean(rr))
        f = d if f is None else np.minimum(f, d)
    if rough_mm > 0:
        noise = ndimage.gaussian_filter(rng.standard_normal(f.shape).astype(np.float32), 1.0)
        noise *= rough_mm / noise.std()
        f = f + noise
    return box, f <= 0


def organ_case(rough: bool, seed: int = 1) -> Case:
    shape, spacing = (160, 512, 512), (2.0, 0.7, 0.7)
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    centre = (80, 230, 180)
    radii = (60.0, 85.0, 75.0)
    lobes = [((-8, 60, 80), (40.0, 55.0, 50.0))]
    rough_mm = 2.5 if rough else 0.0
    paint(gt, *organ(shape, spacing, centre, radii, rng, rough_mm, lobes), 1)
    shifted = tuple(np.add(centre, (0.8, -3.0, 2.5)))
    paint(pred, *organ(shape, spacing, shifted, tuple(np.multiply(radii, (1.04, 0.97, 1.02))), rng, rough_mm,
                       [((-7, 58, 83), (42.0, 52.0, 50.0))]), 1)
    kind = "rough" if rough else "smooth"
    return Case(f"organ_{kind}", pred, gt, spacing, [1],
                f"one liver-sized organ, {kind} boundary, CT {shape} at {spacing} mm")


def organ_offset_case(seed: int = 1) -> Case:
    shape, spacing = (160, 512, 512), (2.0, 0.7, 0.7)
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    paint(gt, *organ(shape, spacing, (80, 230, 180), (60.0, 85.0, 75.0), rng), 1)
    paint(pred, *organ(shape, spacing, (88, 250, 200), (55.0, 80.0, 80.0), rng), 1)
    return Case("organ_offset", pred, gt, spacing, [1],
                f"stress: the smooth organ predicted 16-20 mm off, CT {shape} at {spacing} mm")


def lesions_case(seed: int = 2, n: int = 60) -> Case:
    shape, spacing = (192, 256, 256), (1.0, 0.94, 0.94)
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    brain_c, brain_r = np.array([96, 128, 128]), np.array([60, 85, 70])
    for i in range(n):
        c = brain_c + rng.uniform(-0.8, 0.8, 3) * brain_r
        radii = rng.uniform(1.0, 5.0, 3)
        box, m = organ(shape, spacing, tuple(c), tuple(radii), rng, rough_mm=0.4)
        paint(gt, box, m, 1)
        u = rng.random()
        if u < 0.12:
            continue  # missed lesion
        grow = rng.uniform(0.7, 1.3, 3)
        box, m = organ(shape, spacing, tuple(c + rng.normal(0, 0.8, 3)), tuple(radii * grow), rng, rough_mm=0.4)
        paint(pred, box, m, 1)
    for i in range(n // 8):  # false positives
        c = brain_c + rng.uniform(-0.8, 0.8, 3) * brain_r
        box, m = organ(shape, spacing, tuple(c), tuple(rng.uniform(1.0, 3.0, 3)), rng, rough_mm=0.3)
        paint(pred, box, m, 1)
    return Case("lesions", pred, gt, spacing, [1], f"{n} small WMH-like lesions, brain MRI {shape} at {spacing} mm")


def ring_case(seed: int = 3) -> Case:
    shape, spacing = (10, 256, 216), (10.0, 1.5, 1.5)
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    yy, xx = np.ogrid[: shape[1], : shape[2]]
    for z in range(1, 9):
        scale = 1.0 - 0.06 * max(0, z - 3)  # smaller towards the apex
        for vol, jitter in ((gt, 0.0), (pred, 1.0)):
            cy, cx = 120 + jitter * rng.normal(0, 1.0), 110 + jitter * rng.normal(0, 1.0)
            r_out = (32.0 + jitter * rng.normal(0, 1.5)) * scale
            wall = 6.0 + jitter * rng.normal(0, 1.0)
            ang = np.arctan2(yy - cy, xx - cx)
            wobble = 1.5 * np.sin(3 * ang + rng.uniform(0, 6.3))  # not a perfect circle
            r = np.hypot((yy - cy) * spacing[1], (xx - cx) * spacing[2]) + wobble
            vol[z][(r <= r_out) & (r > r_out - wall)] = 1
    return Case("ring", pred, gt, spacing, [1], f"myocardium-like ring per slice, cine MRI {shape} at {spacing} mm")


def _tube_tree(shape, spacing, rng, start, direction, radius_mm, depth, segments):
    """Random branching walk: list of (points_vox (n, 3), radius_mm) segments."""
    pts = [np.asarray(start, float)]
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    step_mm = 1.5
    length = rng.integers(40, 90)
    for _ in range(length):
        d = d + rng.normal(0, 0.15, 3)
        d /= np.linalg.norm(d)
        nxt = pts[-1] + d * step_mm / np.asarray(spacing)
        if np.any(nxt < 2) or np.any(nxt > np.asarray(shape) - 3):
            break
        pts.append(nxt)
    segments.append((np.array(pts), radius_mm))
    if depth > 0 and len(pts) > 10:
        for _ in range(2):
            j = int(rng.integers(len(pts) // 3, len(pts)))
            nd = d + rng.normal(0, 0.8, 3)
            _tube_tree(shape, spacing, rng, pts[j], nd, max(1.0, radius_mm * 0.75), depth - 1, segments)


def paint_tubes(vol, spacing, segments, value, radius_scale=1.0, keep=None):
    sp = np.asarray(spacing)
    for i, (pts, r) in enumerate(segments):
        if keep is not None and not keep[i]:
            continue
        rr = r * radius_scale
        reach = np.ceil(rr / sp).astype(int) + 1
        offs = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in reach], indexing="ij"), -1).reshape(-1, 3)
        offs = offs[np.sqrt((((offs * sp) ** 2).sum(1))) <= rr]
        # sample the polyline densely enough that the balls overlap
        seg = [pts[0]]
        for a, b in zip(pts[:-1], pts[1:]):
            n = max(1, int(np.ceil(np.linalg.norm((b - a) * sp) / (0.5 * rr))))
            seg.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
        centres = np.rint(np.array(seg)).astype(int)
        vox = (centres[:, None, :] + offs[None]).reshape(-1, 3)
        ok = np.all((vox >= 0) & (vox < np.asarray(vol.shape)), axis=1)
        vox = vox[ok]
        vol[vox[:, 0], vox[:, 1], vox[:, 2]] = value


def vessels_case(seed: int = 4) -> Case:
    shape, spacing = (200, 512, 512), (1.0, 0.7, 0.7)
    rng = np.random.default_rng(seed)
    segments: list = []
    _tube_tree(shape, spacing, rng, (100, 256, 256), (0.2, 1.0, 0.3), 3.5, 4, segments)
    _tube_tree(shape, spacing, rng, (100, 250, 250), (-0.2, -0.6, 1.0), 3.0, 4, segments)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    paint_tubes(gt, spacing, segments, 1)
    keep = rng.random(len(segments)) > 0.12  # some branches missed
    keep[:2] = True
    paint_tubes(pred, spacing, segments, 1, radius_scale=1.12, keep=keep)
    spurious: list = []
    for _ in range(3):
        c = rng.uniform(0.2, 0.8, 3) * np.asarray(shape)
        _tube_tree(shape, spacing, rng, c, rng.normal(0, 1, 3), 1.5, 0, spurious)
    paint_tubes(pred, spacing, spurious, 1)
    return Case("vessels", pred, gt, spacing, [1], f"a tree of thin tubes, CT {shape} at {spacing} mm")


def distant_fp_case(seed: int = 0) -> Case:
    """The former single benchmark: class 1 of three ellipsoids, with a distant false positive."""
    shape, spacing = (200, 512, 512), (2.5, 0.8, 0.8)
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    centres = [(100, 200, 260), (110, 300, 240), (90, 260, 330)]
    for k, c in enumerate(centres, start=1):
        radii = rng.uniform(8, 20, 3)
        box, q = ellipsoid_field(shape, c, radii, spacing)
        paint(gt, box, q <= 1.0, k)
        shift = rng.normal(0, 1.5, 3)
        box, q = ellipsoid_field(shape, tuple(np.add(c, shift)), radii * rng.uniform(0.85, 1.15, 3), spacing)
        paint(pred, box, q <= 1.0, k)
    box, q = ellipsoid_field(shape, (60, 150, 150), (4, 4, 4), spacing)
    paint(pred, box, q <= 1.0, 1)
    return Case("distant_fp", (pred == 1).astype(np.uint8), (gt == 1).astype(np.uint8), spacing, [1],
                f"an ellipsoid and a distant false positive, CT {shape} at {spacing} mm")


ABDOMEN_LABELS = {"background": 0, "artery": 1, "portal_vein": 2, "liver": 3, "spleen": 4, "stomach": 5,
                  "gallbladder": 6, "pancreas": 7}


def abdomen_case(seed: int = 5, shape=(256, 320, 320)) -> Case:
    """7 classes at 1.5 mm: two tube trees, a rough liver, smooth spleen/stomach/gallbladder, a lumpy pancreas."""
    spacing = (1.5, 1.5, 1.5)
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    zc, yc, xc = shape[0] // 2, shape[1] // 2, shape[2] // 2
    organs = [  # class, centre (vox), radii (mm), rough (mm), lobes
        (3, (zc + 10, yc - 10, xc - 50), (75.0, 85.0, 80.0), 1.5, [((-5, 25, 45), (45.0, 50.0, 45.0))]),
        (4, (zc + 15, yc + 35, xc + 65), (50.0, 30.0, 35.0), 0.0, []),
        (5, (zc + 5, yc - 20, xc + 40), (60.0, 40.0, 45.0), 0.8, []),
        (6, (zc - 10, yc - 35, xc - 20), (30.0, 16.0, 16.0), 0.0, []),
        (7, (zc - 5, yc + 25, xc + 5), (18.0, 14.0, 55.0), 1.2, [((3, 5, 30), (14.0, 12.0, 20.0))]),
    ]
    for k, c, r, rough, lobes in organs:
        paint(gt, *organ(shape, spacing, c, r, rng, rough, lobes), k)
        c2 = tuple(np.add(c, rng.normal(0, 1.2, 3)))
        r2 = tuple(np.multiply(r, rng.uniform(0.93, 1.07, 3)))
        paint(pred, *organ(shape, spacing, c2, r2, rng, rough, lobes), k)
    trees = ((1, (10, yc + 40, xc), (1.0, 0.0, 0.05), 11.0), (2, (zc, yc, xc - 20), (0.1, -0.5, -1.0), 7.0))
    for k, start, d, radius in trees:
        segments: list = []
        _tube_tree(shape, spacing, rng, start, d, radius, 3, segments)
        paint_tubes(gt, spacing, segments, k)
        keep = rng.random(len(segments)) > 0.15
        keep[0] = True
        paint_tubes(pred, spacing, segments, k, radius_scale=float(rng.uniform(0.9, 1.1)), keep=keep)
    return Case("abdomen7", pred, gt, spacing, list(range(1, 8)),
                f"7 abdominal classes, TotalSegmentator-like CT {shape} at {spacing} mm")


SHAPES = {
    "organ_smooth": lambda: organ_case(rough=False),
    "organ_rough": lambda: organ_case(rough=True),
    "lesions": lesions_case,
    "ring": ring_case,
    "vessels": vessels_case,
    "distant_fp": distant_fp_case,
}
STRESS = {"organ_offset": organ_offset_case}
