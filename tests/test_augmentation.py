"""B-spline elastic deformation: node interpolation, identity, shared field, statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicebench.preprocessing.augmentation import (dense_field, elastic_deform, offline_deformations,
                                                   random_control_displacements, warp)
from dicebench.training.sampling import Case, offline_augment, sample_batch


def _blobs(shape, seed=0):
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    label = np.digitize(smooth, np.quantile(smooth, [0.5, 0.8])).astype(np.int64)
    return label


def test_field_passes_through_nodes_and_reproduces_constants():
    rng = np.random.default_rng(1)
    control = random_control_displacements(rng, 3, 3.0, control_points=4)
    field = dense_field(control, (10, 13, 16))  # nodes on voxels 0,3,6,9 / 0,4,8,12 / 0,5,10,15
    np.testing.assert_allclose(field[:, ::3, ::4, ::5], control, atol=1e-10)
    const = dense_field(np.full((2, 5, 5), 1.75), (17, 9))
    np.testing.assert_allclose(const, 1.75, atol=1e-12)


@pytest.mark.parametrize("shape,m", [((32, 48, 48), 4), ((37, 64), 5), ((9, 10, 11), 3)])
def test_separable_field_equals_scipy_nd_spline_zoom(shape, m):
    control = random_control_displacements(np.random.default_rng(2), len(shape), 5.0, m)
    ref = np.stack([ndimage.zoom(c, [n / m for n in shape], order=3, mode="mirror", grid_mode=False)
                    for c in control])
    np.testing.assert_allclose(dense_field(control, shape), ref, atol=1e-10)


def test_sigma_zero_is_identity():
    label = _blobs((8, 20, 24))
    image = np.stack([label * 1.5 + 0.25, -label.astype(np.float64)]).astype(np.float32)
    im, lb = elastic_deform(image, label, np.random.default_rng(0), sigma=0.0)
    assert np.array_equal(im, image) and np.array_equal(lb, label)
    assert im.dtype == np.float32 and lb.dtype == np.int64


def test_integer_translation_shifts_interior():
    """u = const (dz, dy, dx): out(x) = in(x + u), checked against plain slicing."""
    label = _blobs((12, 16, 16), seed=2)
    field = dense_field(np.broadcast_to(np.array([1.0, -2.0, 3.0])[:, None, None, None], (3, 4, 4, 4)).copy(),
                        label.shape)
    out = warp(label, field, order=0)
    assert np.array_equal(out[:-1, 2:, :-3], label[1:, :-2, 3:])


def test_label_is_nearest_neighbour_warp_with_the_same_field_as_the_image():
    label = _blobs((10, 24, 24), seed=3)
    image = label[None].astype(np.float32) * 10.0
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    im, lb = elastic_deform(image, label, rng_a, sigma=3.0, control_points=4)
    # Brute-force nearest neighbour with the same field, drawn from the same generator state.
    field = dense_field(random_control_displacements(rng_b, 3, 3.0, 4), label.shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in label.shape], indexing="ij")) + field
    idx = [np.clip(np.floor(grid[d] + 0.5).astype(int), 0, label.shape[d] - 1) for d in range(3)]
    expected = label[tuple(idx)]
    assert np.mean(lb == expected) > 0.999  # ties at exact .5 may round either way
    assert not np.array_equal(lb, label)
    # The image was moved by the same field: where the label's 2x2x2 neighbourhood is uniform,
    # the linearly interpolated image equals 10 x the label exactly.
    lo = [np.clip(np.floor(grid[d]).astype(int), 0, label.shape[d] - 2) for d in range(3)]
    corners = np.stack([label[lo[0] + a, lo[1] + b, lo[2] + c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    inside = (corners == corners[0]).all(0) & np.all([(grid[d] >= 0) & (grid[d] <= label.shape[d] - 1)
                                                       for d in range(3)], axis=0)
    assert inside.mean() > 0.15
    np.testing.assert_allclose(im[0][inside], 10.0 * corners[0][inside], atol=1e-4)


@pytest.mark.parametrize("sigma", [1.0, 15.0])
def test_displacement_statistics_follow_sigma(sigma):
    rng = np.random.default_rng(11)
    nodes = np.concatenate([dense_field(random_control_displacements(rng, 2, sigma, 5), (33, 33))[:, ::8, ::8]
                            .ravel() for _ in range(400)])
    assert nodes.size == 400 * 2 * 25
    assert abs(nodes.mean()) < 0.05 * sigma
    assert abs(nodes.std() / sigma - 1) < 0.03


def test_patch_is_cut_and_deformed_from_the_whole_volume():
    """With an offset, a constant integer field is a crop of the volume at start + shift:
    the deformation pulls in real context, not the patch's padded border."""
    label = _blobs((20, 30, 30), seed=5)
    field = dense_field(np.broadcast_to(np.array([2.0, -3.0, 4.0])[:, None, None, None], (3, 4, 4, 4)).copy(),
                        (8, 12, 12))
    out = warp(label, field, order=0, mode="constant", offset=(5, 10, 6))
    assert np.array_equal(out, label[7:15, 7:19, 10:22])
    outside = warp(label + 1, field, order=0, mode="constant", offset=(15, 10, 6), cval=0)
    assert (outside[-3:] == 0).all() and (outside[:3] > 0).all()  # z 17..19 inside, 20.. outside


def test_online_elastic_in_sample_batch():
    label = _blobs((3, 40, 40), seed=4)
    cases = [Case("a", label[None].astype(np.float32) * 2.0, label)]
    plain = sample_batch(cases, np.random.default_rng(9), 1, (24, 24))
    # sigma -> 0: the same start is drawn first, so the deformed crop is the plain crop
    tiny = sample_batch(cases, np.random.default_rng(9), 1, (24, 24), augment={"elastic_sigma": 1e-9})
    assert np.array_equal(plain[1], tiny[1]) and np.allclose(plain[0], tiny[0], atol=1e-6)
    x, y = sample_batch(cases, np.random.default_rng(9), 1, (24, 24), augment={"elastic_sigma": 4.0})
    assert y.shape == (1, 24, 24) and not np.array_equal(y, plain[1])
    assert set(np.unique(y)) <= set(np.unique(label))
    # image and label moved together: inside uniform label regions the linearly interpolated
    # image is 2 x label (a few pixels where the field stretches more than a voxel excepted)
    inner = ndimage.minimum_filter(y[0], 3) == ndimage.maximum_filter(y[0], 3)
    assert inner.mean() > 0.3
    assert np.mean(np.abs(x[0, 0][inner] - 2.0 * y[0][inner]) < 1e-5) > 0.95


def test_offline_gives_k_copies():
    label = _blobs((24, 24), seed=4)
    image = label[None].astype(np.float32)
    copies = offline_deformations(image, label, 3, 4.0, np.random.default_rng(5))
    assert len(copies) == 3
    assert not np.array_equal(copies[0][1], copies[1][1])
    assert all(c[0].shape == image.shape and c[1].shape == label.shape for c in copies)
    cases = offline_augment([Case("a", image, label)], 2, 4.0, seed=0)
    assert [c.name for c in cases] == ["a", "a_deformed0", "a_deformed1"]
    again = offline_augment([Case("a", image, label)], 2, 4.0, seed=0)
    assert all(np.array_equal(c.label, d.label) for c, d in zip(cases, again))
