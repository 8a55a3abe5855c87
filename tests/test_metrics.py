"""DSC and HD95 against independent references: brute force over all surface-voxel pairs,
MONAI's compute_hausdorff_distance / DiceMetric, and hand-computed geometry."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist

from dicebench.evaluation import metrics
from dicebench.evaluation.metrics import (
    Hausdorff,
    bounding_box,
    dice,
    hausdorff_labels,
    hausdorff_percentile,
    hd95,
    hd95_labels,
    hd95_pooled,
    overlap_counts,
    scan_diagonal,
    surface_distances,
    surface_mask,
)


# ---------------------------------------------------------------- independent references


def brute_surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of `mask` with a face neighbour outside it (outside the array = outside), by shifting."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = tuple(slice(1, -1) for _ in mask.shape)
    all_in = np.ones_like(mask, dtype=bool)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            all_in &= np.roll(padded, step, axis=axis)[inner]
    return mask & ~all_in


def brute_directed(src: np.ndarray, dst: np.ndarray, spacing) -> np.ndarray:
    a = np.argwhere(brute_surface(src)) * np.asarray(spacing, float)
    b = np.argwhere(brute_surface(dst)) * np.asarray(spacing, float)
    return cdist(a, b).min(axis=1)


def brute_hd95(pred, gt, spacing, q=95.0) -> float:
    """Max of the two directed linear-interpolated percentiles over all pairwise distances."""
    return max(np.percentile(brute_directed(pred, gt, spacing), q), np.percentile(brute_directed(gt, pred, spacing), q))


def brute_hd95_pooled(pred, gt, spacing, q=95.0) -> float:
    """MedPy's convention: one percentile over both directions pooled."""
    return float(np.percentile(np.concatenate([brute_directed(pred, gt, spacing), brute_directed(gt, pred, spacing)]), q))


def monai_hd95(pred, gt, spacing) -> float:
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compute_hausdorff_distance(
            torch.from_numpy(pred)[None, None], torch.from_numpy(gt)[None, None],
            include_background=True, percentile=95, spacing=[float(s) for s in spacing],
        ).item()


def random_blobs(rng, shape, density=0.01, grow=2) -> np.ndarray:
    seeds = rng.random(shape) < density
    if not seeds.any():
        seeds[tuple(rng.integers(0, n) for n in shape)] = True
    n = int(rng.integers(0, grow + 1))
    return ndimage.binary_dilation(seeds, iterations=n) if n else seeds  # iterations=0 would fill all


# ---------------------------------------------------------------- HD95


@pytest.mark.parametrize("seed", range(12))
def test_hd95_equals_brute_force_3d_anisotropic(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(5, 16, 3))
    pred, gt = random_blobs(rng, shape), random_blobs(rng, shape)
    spacing = rng.uniform(0.3, 4.0, 3)
    assert hd95(pred, gt, spacing) == pytest.approx(brute_hd95(pred, gt, spacing), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_hd95_equals_brute_force_2d(seed):
    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(n) for n in rng.integers(6, 30, 2))
    pred, gt = random_blobs(rng, shape, 0.02, 3), random_blobs(rng, shape, 0.02, 3)
    spacing = rng.uniform(0.2, 3.0, 2)
    assert hd95(pred, gt, spacing) == pytest.approx(brute_hd95(pred, gt, spacing), rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_hd95_equals_monai(seed):
    rng = np.random.default_rng(200 + seed)
    shape = tuple(int(n) for n in rng.integers(8, 24, 3))
    gt = random_blobs(rng, shape, 0.005, 3)
    # a prediction that overlaps the truth: the truth, perturbed
    pred = ndimage.binary_dilation(gt, iterations=1) if seed % 2 else ndimage.binary_erosion(gt) | random_blobs(rng, shape, 0.002, 1)
    if not pred.any():
        pred = random_blobs(rng, shape)
    spacing = rng.uniform(0.5, 5.0, 3)
    assert hd95(pred, gt, spacing) == pytest.approx(monai_hd95(pred, gt, spacing), rel=1e-5)


def test_objects_touching_the_scan_border_match_monai_and_brute_force():
    """Voxels on the scan border are surface (outside the scan counts as background)."""
    gt = np.zeros((6, 9, 11), bool)
    gt[:, :4, :] = True  # a slab filling the scan along two axes
    pred = np.zeros_like(gt)
    pred[:, 2:7, 3:] = True
    spacing = (3.0, 0.7, 1.1)
    ref = brute_hd95(pred, gt, spacing)
    assert hd95(pred, gt, spacing) == pytest.approx(ref, rel=1e-12)
    assert hd95(pred, gt, spacing) == pytest.approx(monai_hd95(pred, gt, spacing), rel=1e-5)
    assert surface_mask(np.ones((2, 5), bool)).all()
    assert surface_mask(np.ones((3, 5), bool)).sum() == 3 * 5 - 3


def test_hand_computed_single_voxels():
    a = np.zeros((5, 6, 2), bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[3, 4, 0] = True
    assert hd95(a, b, (1, 1, 1)) == pytest.approx(5.0)
    assert hd95(a, b, (2, 1, 1)) == pytest.approx(math.sqrt(36 + 16))
    assert hd95(a, b, (1, 1, 1)) == hd95(b, a, (1, 1, 1))
    assert hd95(a, a, (1.3, 0.2, 9)) == 0.0


def test_spacing_follows_the_array_axes():
    """Transposing the masks and the spacing together leaves HD95 unchanged; spacing alone changes it."""
    rng = np.random.default_rng(3)
    pred, gt = random_blobs(rng, (7, 10, 13)), random_blobs(rng, (7, 10, 13))
    sp = (4.0, 1.0, 0.5)
    v = hd95(pred, gt, sp)
    order = (2, 0, 1)
    assert hd95(pred.transpose(order), gt.transpose(order), [sp[i] for i in order]) == pytest.approx(v, rel=1e-12)
    assert hd95(pred, gt, sp[::-1]) != pytest.approx(v, rel=1e-6)


def test_max_of_directed_percentiles_not_medpy_pooled():
    """A case where the two conventions differ: we report the MONAI / DeepMind one."""
    gt = np.zeros((40, 40), bool)
    gt[5:35, 5:35] = True  # 116 surface voxels
    pred = gt.copy()
    pred[36:40, 36:40] = True  # a far-away false positive: 12 of pred's 128 surface voxels (> 5 %)
    sp = (1.0, 1.0)
    ours, directed, pooled = hd95(pred, gt, sp), brute_hd95(pred, gt, sp), brute_hd95_pooled(pred, gt, sp)
    assert directed != pytest.approx(pooled)
    assert ours == pytest.approx(directed, rel=1e-12)


def test_empty_cases_follow_kervadec():
    shape, sp = (4, 10, 12), (5.0, 0.8, 0.9)
    diag = math.sqrt((4 * 5.0) ** 2 + (10 * 0.8) ** 2 + (12 * 0.9) ** 2)
    assert scan_diagonal(shape, sp) == pytest.approx(diag)
    obj = np.zeros(shape, bool)
    obj[1:3, 2:5, 3:7] = True
    none = np.zeros(shape, bool)
    assert hd95(none, obj, sp) == pytest.approx(diag)  # missed object
    assert hd95(obj, none, sp) == pytest.approx(diag)  # object predicted where there is none
    assert hd95(none, none, sp) == 0.0


def test_crop_is_invisible():
    """Padding the scan with background changes nothing (the crop is an implementation detail)."""
    rng = np.random.default_rng(11)
    pred, gt = random_blobs(rng, (6, 8, 9)), random_blobs(rng, (6, 8, 9))
    sp = (2.0, 0.9, 1.3)
    pad = ((3, 20), (0, 5), (7, 1))
    assert hd95(np.pad(pred, pad), np.pad(gt, pad), sp) == pytest.approx(hd95(pred, gt, sp), rel=1e-12)


def test_surface_distances_directions_and_empties():
    rng = np.random.default_rng(5)
    pred, gt = random_blobs(rng, (6, 7, 8)), random_blobs(rng, (6, 7, 8))
    sp = (1.5, 0.5, 2.0)
    d_pg, d_gp = surface_distances(pred, gt, sp)
    np.testing.assert_allclose(np.sort(d_pg), np.sort(brute_directed(pred, gt, sp)), rtol=1e-12)
    np.testing.assert_allclose(np.sort(d_gp), np.sort(brute_directed(gt, pred, sp)), rtol=1e-12)
    assert hausdorff_percentile(d_pg, d_gp) == pytest.approx(brute_hd95(pred, gt, sp))
    empty = np.zeros_like(gt)
    d_pg, d_gp = surface_distances(empty, gt, sp)
    assert d_pg.size == 0 and d_gp.size == brute_surface(gt).sum() and np.isinf(d_gp).all()


def test_bounding_box_is_tight():
    rng = np.random.default_rng(9)
    for _ in range(5):
        m = np.zeros((9, 11, 13), bool)
        m[tuple(rng.integers(0, n, 4) for n in m.shape)] = True
        idx = np.argwhere(m)
        box = bounding_box(m)
        assert box == tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(idx.min(0), idx.max(0)))
    assert bounding_box(np.zeros((3, 4), bool)) is None
    assert bounding_box(np.ones((3, 4, 5), bool)[:, ::2]) == (slice(0, 3), slice(0, 2), slice(0, 5))


@pytest.mark.parametrize("seed", range(4))
def test_hd95_labels_equals_hd95_per_class(seed):
    rng = np.random.default_rng(300 + seed)
    shape = (8, 14, 15)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    for k in (1, 2, 3):
        gt[random_blobs(rng, shape, 0.004, 2)] = k
        pred[random_blobs(rng, shape, 0.004, 2)] = k
    gt[gt == 3] = 0  # class 3 absent from the truth: a false positive -> diagonal
    pred[pred == 2] = 0  # class 2 not predicted: a miss -> diagonal
    sp = (3.0, 0.75, 0.8)
    got = hd95_labels(pred, gt, sp, [1, 2, 3, 4])
    for k in (1, 2, 3, 4):
        assert got[k] == pytest.approx(hd95(pred == k, gt == k, sp), rel=1e-12)
    assert got[2] == got[3] == pytest.approx(scan_diagonal(shape, sp))
    assert got[4] == 0.0


# ---------------------------------------------------------------- all classes in one pass, every code path

# hausdorff_labels chooses, per map and per class, between code paths that must all give the
# brute-force value: surfaces swept densely or voxel by voxel; the row walk or the ball walk;
# early stop or the k-d tree past the walk (all open points, or those a sample's bounds leave
# ambiguous). Each configuration forces one combination.
PATHS = {
    "default": {},
    "dense-surface+row-walk": {"_SPARSE_ROWS": 10**9, "_ROW_WALK_VOXELS": 10**9},
    "sparse-surface+ball-walk": {"_SPARSE_ROWS": 0, "_ROW_WALK_VOXELS": 0},
    "tiny-row-walk+kdtree": {"_ROW_WALK_VOXELS": 10**9, "MAX_ROWS": 3, "_MAX_LINE": 1},
    "tiny-ball-walk+kdtree": {"_ROW_WALK_VOXELS": 0, "MAX_OFFSETS": 7},
    "tiny-walk+sampled-bounds": {"MAX_ROWS": 3, "_MAX_LINE": 1, "MAX_OFFSETS": 7, "_SAMPLE_EVERY": 3,
                                 "_SAMPLE_ABOVE": 0},
}


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    for name, value in PATHS[request.param].items():
        monkeypatch.setattr(metrics, name, value)
    return request.param


def label_map(rng, shape, n_classes, density=0.01, grow=2, touch_border=True) -> np.ndarray:
    """Classes painted over each other, so that they touch; often reaching the scan border."""
    out = np.zeros(shape, np.uint8)
    for k in range(1, n_classes + 1):
        out[random_blobs(rng, shape, density, grow)] = k
    if touch_border:
        face = [slice(None)] * len(shape)
        face[int(rng.integers(len(shape)))] = 0 if rng.random() < 0.5 else -1
        out[tuple(face)] = np.where(rng.random(out[tuple(face)].shape) < 0.3, n_classes, out[tuple(face)])
    return out


def brute_pair(pred, gt, spacing, q=95.0) -> Hausdorff:
    if not pred.any() and not gt.any():
        return Hausdorff(0.0, 0.0)
    if not pred.any() or not gt.any():
        d = scan_diagonal(pred.shape, spacing)
        return Hausdorff(d, d)
    a, b = brute_directed(pred, gt, spacing), brute_directed(gt, pred, spacing)
    return Hausdorff(max(np.percentile(a, q), np.percentile(b, q)), float(np.percentile(np.concatenate([a, b]), q)))


def assert_equal_hd(got: Hausdorff, ref: Hausdorff):
    assert got.directed == pytest.approx(ref.directed, rel=1e-12, abs=1e-9)
    assert got.pooled == pytest.approx(ref.pooled, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_all_classes_equal_brute_force_3d(path, seed):
    rng = np.random.default_rng(500 + seed)
    shape = tuple(int(n) for n in rng.integers(6, 18, 3))
    gt, pred = label_map(rng, shape, 3), label_map(rng, shape, 3)
    pred[pred == 3] = 0 if seed % 4 == 0 else 3  # sometimes a class is missed
    spacing = tuple(rng.uniform(0.3, 4.0, 3))
    got = hausdorff_labels(pred, gt, spacing, [1, 2, 3, 4])
    for k in (1, 2, 3, 4):
        assert_equal_hd(got[k], brute_pair(pred == k, gt == k, spacing))


@pytest.mark.parametrize("seed", range(4))
def test_all_classes_equal_brute_force_2d(path, seed):
    rng = np.random.default_rng(600 + seed)
    shape = tuple(int(n) for n in rng.integers(8, 40, 2))
    gt, pred = label_map(rng, shape, 2, 0.02, 3), label_map(rng, shape, 2, 0.02, 3)
    spacing = tuple(rng.uniform(0.2, 3.0, 2))
    got = hausdorff_labels(pred, gt, spacing, [1, 2])
    for k in (1, 2):
        assert_equal_hd(got[k], brute_pair(pred == k, gt == k, spacing))


@pytest.mark.parametrize("q", [0.0, 37.5, 50.0, 95.0, 99.0, 100.0])
def test_any_percentile_equals_brute_force(path, q):
    rng = np.random.default_rng(int(q * 10))
    pred, gt = random_blobs(rng, (9, 13, 11), 0.02, 2), random_blobs(rng, (9, 13, 11), 0.02, 2)
    sp = (2.5, 0.7, 1.1)
    got = hausdorff_labels(pred.view(np.uint8), gt.view(np.uint8), sp, [1], percentile=q)[1]
    assert_equal_hd(got, brute_pair(pred, gt, sp, q))


def test_far_false_positive_beyond_the_walk(path):
    """More than 5 % of the prediction's surface lies far away: its distances come from the k-d tree."""
    gt = np.zeros((12, 30, 90), bool)
    gt[3:9, 5:20, 5:20] = True
    pred = gt.copy()
    pred[2:10, 5:20, 4:21] = True  # grown by one voxel in z and x
    pred[4:7, 10:14, 80:88] = True  # a false positive 60 voxels away
    sp = (3.0, 0.8, 0.8)
    assert_equal_hd(hausdorff_labels(pred.view(np.uint8), gt.view(np.uint8), sp, [1])[1], brute_pair(pred, gt, sp))


def test_objects_filling_the_scan_and_its_border(path):
    rng = np.random.default_rng(21)
    gt = np.ones((5, 7, 9), np.uint8)  # fills the scan: every border voxel is surface
    gt[2, 3, 4] = 0
    pred = np.where(rng.random(gt.shape) < 0.1, 0, 1).astype(np.uint8)
    sp = (2.0, 1.0, 0.6)
    assert_equal_hd(hausdorff_labels(pred, gt, sp, [1])[1], brute_pair(pred == 1, gt == 1, sp))


def test_each_configuration_takes_its_path(path, monkeypatch):
    """The configurations above really exercise the code paths they are named after."""
    calls = {"sparse": 0, "dense": 0, "rows": 0, "ball": 0, "kdtree": 0, "bounds": 0}
    for name, key in (("_surface_sparse", "sparse"), ("_surface_dense", "dense"), ("_row_minima", "rows"),
                      ("_first_distance", "ball"), ("cKDTree", "kdtree"), ("_sampled_bounds", "bounds")):
        real = getattr(metrics, name)

        def spy(*a, _real=real, _key=key, **kw):
            calls[_key] += 1
            return _real(*a, **kw)

        monkeypatch.setattr(metrics, name, spy)
    rng = np.random.default_rng(1)
    for _ in range(3):
        gt, pred = label_map(rng, (10, 24, 24), 2, 0.004, 2), label_map(rng, (10, 24, 24), 2, 0.004, 2)
        hausdorff_labels(pred, gt, (2.0, 0.8, 0.8), [1, 2])
    expected = {
        "dense-surface+row-walk": {"dense", "rows"},
        "sparse-surface+ball-walk": {"sparse", "ball"},
        "tiny-row-walk+kdtree": {"rows", "kdtree"},
        "tiny-ball-walk+kdtree": {"ball", "kdtree"},
        "tiny-walk+sampled-bounds": {"kdtree", "bounds"},
    }.get(path, set())
    assert all(calls[k] > 0 for k in expected), calls
    if path == "dense-surface+row-walk":
        assert calls["sparse"] == calls["ball"] == 0
    if path == "sparse-surface+ball-walk":
        assert calls["dense"] == calls["rows"] == 0


def noisy_ellipsoid(shape, spacing, centre, radii_mm, rough_mm, rng) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    f = np.sqrt(sum(((g - c) * s / r) ** 2 for g, c, s, r in zip(grids, centre, spacing, radii_mm)))
    f = (f - 1.0) * float(np.mean(radii_mm))
    if rough_mm:
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
        f = f + noise * rough_mm / noise.std()
    return f <= 0


@pytest.mark.parametrize("rough_mm", [0.0, 2.0])
def test_organ_sized_masks_equal_the_exact_reference(rough_mm):
    """Default settings on an organ-sized pair (the walks go many shells deep), against every
    surface distance from a k-d tree and NumPy's percentile."""
    rng = np.random.default_rng(7)
    shape, sp = (40, 120, 110), (2.0, 0.7, 0.7)
    gt = noisy_ellipsoid(shape, sp, (20, 60, 55), (30.0, 35.0, 30.0), rough_mm, rng)
    pred = noisy_ellipsoid(shape, sp, (21, 57, 57), (31.0, 33.0, 31.0), rough_mm, rng)
    d_pg, d_gp = surface_distances(pred, gt, sp)
    got = hausdorff_labels(pred.view(np.uint8), gt.view(np.uint8), sp, [1])[1]
    assert got.directed == pytest.approx(hausdorff_percentile(d_pg, d_gp), rel=1e-12)
    assert got.pooled == pytest.approx(float(np.percentile(np.concatenate([d_pg, d_gp]), 95)), rel=1e-12)


def test_badly_placed_prediction_leaves_the_walk_early_and_stays_exact(monkeypatch):
    """A prediction 20+ mm off: the walk gives up after a quarter of its rows, the k-d tree answers."""
    rng = np.random.default_rng(8)
    shape, sp = (40, 120, 110), (2.0, 0.7, 0.7)
    gt = noisy_ellipsoid(shape, sp, (20, 50, 45), (25.0, 25.0, 22.0), 0.0, rng)
    pred = noisy_ellipsoid(shape, sp, (22, 80, 70), (24.0, 22.0, 22.0), 0.0, rng)
    calls = []
    real = metrics._row_minima
    monkeypatch.setattr(metrics, "_row_minima", lambda *a: calls.append(1) or real(*a))
    got = hausdorff_labels(pred.view(np.uint8), gt.view(np.uint8), sp, [1])[1]
    d_pg, d_gp = surface_distances(pred, gt, sp)
    assert got.directed == pytest.approx(hausdorff_percentile(d_pg, d_gp), rel=1e-12)
    assert got.pooled == pytest.approx(float(np.percentile(np.concatenate([d_pg, d_gp]), 95)), rel=1e-12)
    assert got.directed > 15.0
    shells = metrics._row_walk(sp, metrics.MAX_ROWS, metrics._MAX_LINE)[2]
    assert 0 < len(calls) < len(shells)


def test_hd95_pooled_equals_medpy():
    medpy = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(31)
    for _ in range(6):
        shape = tuple(int(n) for n in rng.integers(6, 20, 3))
        pred, gt = random_blobs(rng, shape, 0.01, 2), random_blobs(rng, shape, 0.01, 2)
        sp = tuple(rng.uniform(0.4, 3.0, 3))
        assert hd95_pooled(pred, gt, sp) == pytest.approx(medpy.hd95(pred, gt, voxelspacing=sp), rel=1e-12)
    # where the conventions differ (a distant false positive), pooled is MedPy's, directed is not
    gt = np.zeros((40, 40), bool)
    gt[5:35, 5:35] = True
    pred = gt.copy()
    pred[36:40, 36:40] = True
    ref = medpy.hd95(pred, gt, voxelspacing=(1.0, 1.0))
    assert hd95_pooled(pred, gt, (1.0, 1.0)) == pytest.approx(ref, rel=1e-12)
    assert hd95(pred, gt, (1.0, 1.0)) != pytest.approx(ref, rel=1e-3)


def test_hd95_pooled_empty_conventions():
    shape, sp = (4, 10, 12), (5.0, 0.8, 0.9)
    obj = np.zeros(shape, bool)
    obj[1:3, 2:5, 3:7] = True
    none = np.zeros(shape, bool)
    assert hd95_pooled(none, obj, sp) == hd95_pooled(obj, none, sp) == pytest.approx(scan_diagonal(shape, sp))
    assert hd95_pooled(none, none, sp) == 0.0


def test_label_values_dtypes_and_layouts():
    """Unlisted and negative values belong to no class; large labels, mixed dtypes and
    non-contiguous views give the values of the plain masks."""
    rng = np.random.default_rng(41)
    shape = (7, 12, 10)
    gt = label_map(rng, shape, 3).astype(np.int64)
    pred = label_map(rng, shape, 3).astype(np.int64)
    gt[gt == 2] = 1000  # a large label
    pred[pred == 2] = 1000
    pred[rng.random(shape) < 0.05] = -3  # negative: background
    gt[rng.random(shape) < 0.05] = 7  # unlisted: no class, but not class 1 either
    sp = (1.7, 0.9, 0.6)
    ref = {k: brute_pair(pred == k, gt == k, sp) for k in (1, 3, 1000)}
    for p_, g_ in ((pred, gt), (pred.astype(np.int16), gt.astype(np.uint16) if gt.min() >= 0 else gt)):
        got = hausdorff_labels(p_, g_, sp, [1000, 3, 1])
        assert list(got) == [1000, 3, 1]
        for k in (1, 3, 1000):
            assert_equal_hd(got[k], ref[k])
    order = (2, 0, 1)
    t_pred, t_gt = pred.transpose(order), gt.transpose(order)  # views, not C-contiguous
    assert not t_pred.flags.c_contiguous
    got = hausdorff_labels(t_pred, t_gt, [sp[i] for i in order], [1, 3, 1000])
    for k in (1, 3, 1000):
        assert_equal_hd(got[k], ref[k])


def test_one_dimensional_and_bad_arguments():
    a = np.array([0, 1, 1, 0, 0, 0, 0, 1, 0], bool)
    b = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0], bool)
    assert_equal_hd(hausdorff_labels(a.view(np.uint8), b.view(np.uint8), [0.5], [1])[1], brute_pair(a, b, [0.5]))
    lm = a.view(np.uint8)
    with pytest.raises(ValueError, match="object classes"):
        hausdorff_labels(lm, lm, [1.0], [0, 1])
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_labels(lm, lm, [1.0], [1], percentile=101)
    with pytest.raises(ValueError, match="integer"):
        hausdorff_labels(lm.astype(float), lm, [1.0], [1])
    assert hausdorff_labels(lm, lm, [1.0], []) == {}


# ---------------------------------------------------------------- DSC


def brute_dice(pred, gt, k) -> float:
    p, g = pred == k, gt == k
    return 1.0 if p.sum() + g.sum() == 0 else 2 * (p & g).sum() / (p.sum() + g.sum())


@pytest.mark.parametrize("seed", range(5))
def test_dice_equals_brute_force_and_monai(seed):
    from monai.metrics import compute_dice

    rng = np.random.default_rng(400 + seed)
    shape = (5, 12, 13)
    gt = rng.integers(0, 4, shape).astype(np.int16)
    pred = np.where(rng.random(shape) < 0.7, gt, rng.integers(0, 4, shape)).astype(np.int16)
    got = dice(pred, gt, [0, 1, 2, 3])
    onehot = lambda a: torch.from_numpy(np.stack([a == k for k in range(4)])[None].astype(np.float32))  # noqa: E731
    ref = compute_dice(onehot(pred), onehot(gt), include_background=True)[0].numpy()
    for k in range(4):
        assert got[k] == pytest.approx(brute_dice(pred, gt, k), rel=1e-12)
        assert got[k] == pytest.approx(float(ref[k]), rel=1e-6)


def test_dice_both_empty_is_one_and_unlisted_values_belong_to_no_class():
    gt = np.array([[0, 1, 1, 7], [0, 0, 1, 7]])
    pred = np.array([[0, 1, 7, 7], [1, 0, 0, 9]])
    got = dice(pred, gt, [0, 1, 2])
    assert got[2] == 1.0  # absent from both
    assert got[1] == pytest.approx(2 * 1 / (2 + 3))
    assert got[0] == pytest.approx(2 * 2 / (3 + 3))
    # floats and negative values take the slow path and agree
    assert dice(pred.astype(float), gt.astype(float), [0, 1, 2]) == pytest.approx(got)
    assert dice(pred - 1, gt - 1, [-1, 0, 1]) == pytest.approx({-1: got[0], 0: got[1], 1: got[2]})


def test_overlap_counts_small_foreground_in_large_scan():
    """The box shortcut counts the untouched background correctly."""
    rng = np.random.default_rng(12)
    gt = np.zeros((20, 30, 40), np.uint8)
    pred = np.zeros_like(gt)
    gt[5:9, 10:14, 3:9] = rng.integers(0, 3, (4, 4, 6))
    pred[6:10, 11:15, 30:33] = rng.integers(0, 3, (4, 4, 3))
    inter, n_pred, n_gt = overlap_counts(pred, gt, [0, 1, 2])
    for i, k in enumerate([0, 1, 2]):
        assert inter[i] == np.count_nonzero((pred == k) & (gt == k))
        assert n_pred[i] == np.count_nonzero(pred == k)
        assert n_gt[i] == np.count_nonzero(gt == k)
    empty = np.zeros((3, 3), np.uint8)
    assert [list(x) for x in overlap_counts(empty, empty, [0, 1])] == [[9, 0], [9, 0], [9, 0]]


def test_shape_and_spacing_mismatch_are_errors():
    a = np.zeros((3, 4, 5), bool)
    with pytest.raises(ValueError, match="shape"):
        hd95(a, np.zeros((3, 4, 6), bool), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, (1, 1))
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros(3, int), np.zeros(4, int), [0])
