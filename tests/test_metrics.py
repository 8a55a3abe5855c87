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

from dicebench.evaluation.metrics import (
    bounding_box,
    dice,
    hausdorff_percentile,
    hd95,
    hd95_labels,
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
