"""B-spline elastic deformation: node interpolation, identity, shared field, statistics; V-Net's
B-spline mesh (against SimpleITK's own evaluation) and its in-plane switch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicebench.preprocessing.augmentation import (bspline_mesh_field, dense_field, elastic_deform,
                                                   offline_deformations, random_control_displacements, random_field,
                                                   warp)
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


# ---------------------------------------------------------------- V-Net's deformation (Liu & Fu)


def _sitk_field(seed: int, shape, sigma: float, mesh: int, frozen=()) -> np.ndarray:
    """SimpleITK's own evaluation of V-Net's transform with the coefficients bspline_mesh_field
    draws (same generator, same order: all drawn, then the frozen axes zeroed)."""
    import SimpleITK as sitk

    ref = sitk.Image([int(n) for n in reversed(shape)], sitk.sitkUInt8)
    tx = sitk.BSplineTransformInitializer(ref, [mesh] * len(shape))
    c = np.random.default_rng(seed).normal(0, sigma, size=(len(shape), len(tx.GetParameters()) // len(shape)))
    for axis in frozen:
        c[len(shape) - 1 - axis] = 0.0
    tx.SetParameters(c.ravel().tolist())
    disp = sitk.TransformToDisplacementField(tx, sitk.sitkVectorFloat64, ref.GetSize(), ref.GetOrigin(),
                                             ref.GetSpacing(), ref.GetDirection())
    return np.moveaxis(sitk.GetArrayFromImage(disp)[..., ::-1], -1, 0)


@pytest.mark.parametrize("shape,mesh,frozen", [((10, 20, 30), 2, ()), ((16, 24, 24), 2, (0,)), ((9, 12, 14), 3, (1,)),
                                               ((24, 40), 2, ()), ((17, 33), 1, (0,))])
def test_bspline_mesh_field_is_simpleitks_transform(shape, mesh, frozen):
    field = bspline_mesh_field(np.random.default_rng(4), shape, 15.0, mesh, frozen)
    np.testing.assert_allclose(field, _sitk_field(4, shape, 15.0, mesh, frozen), atol=1e-9)
    for axis in frozen:
        assert (field[axis] == 0).all()
    assert all(np.abs(field[a]).max() > 1 for a in range(len(shape)) if a not in frozen)


def test_bspline_mesh_image_warp_is_simpleitks_resampling():
    """Warping with the field is V-Net's resampling of the image (SimpleITK, linear)."""
    import SimpleITK as sitk

    shape = (12, 20, 24)
    image = ndimage.gaussian_filter(np.random.default_rng(1).normal(size=shape), 2.0)
    field = bspline_mesh_field(np.random.default_rng(6), shape, 3.0, 2, (0,))
    ref = sitk.GetImageFromArray(image)
    tx = sitk.BSplineTransformInitializer(ref, [2, 2, 2])
    c = np.random.default_rng(6).normal(0, 3.0, size=(3, len(tx.GetParameters()) // 3))
    c[2] = 0.0  # ITK's z: V-Net's "remove z deformations"
    tx.SetParameters(c.ravel().tolist())
    expected = sitk.GetArrayFromImage(sitk.Resample(ref, ref, tx, sitk.sitkLinear, 0.0))
    ours = warp(image, field, order=1, mode="constant", cval=0.0)
    inside = np.all([(np.indices(shape)[d] + field[d] >= 0) & (np.indices(shape)[d] + field[d] <= shape[d] - 1)
                     for d in range(3)], axis=0)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(ours[inside], expected[inside], atol=1e-6)


def test_freezing_z_zeroes_it_and_leaves_the_plane():
    for grid in ("interpolating", "bspline_mesh"):
        free = random_field(np.random.default_rng(2), (8, 32, 32), 5.0, 2 if grid == "bspline_mesh" else 4, grid)
        flat = random_field(np.random.default_rng(2), (8, 32, 32), 5.0, 2 if grid == "bspline_mesh" else 4, grid,
                            in_plane=True)
        assert (flat[0] == 0).all() and np.abs(free[0]).max() > 0.5
        np.testing.assert_array_equal(flat[1:], free[1:])
    # a 2D patch is an axial slice: there is no z to freeze
    np.testing.assert_array_equal(random_field(np.random.default_rng(3), (24, 24), 5.0, 2, "bspline_mesh", True),
                                  random_field(np.random.default_rng(3), (24, 24), 5.0, 2, "bspline_mesh", False))
    # linear in sigma
    np.testing.assert_allclose(random_field(np.random.default_rng(5), (6, 10, 10), 2.0, 2, "bspline_mesh"),
                               2 * random_field(np.random.default_rng(5), (6, 10, 10), 1.0, 2, "bspline_mesh"))
    with pytest.raises(ValueError, match="grid must be one of"):
        random_field(np.random.default_rng(0), (8, 8), 1.0, grid="sitk")


def test_vnet_augmentation_in_sample_batch_never_mixes_slices():
    """Liu & Fu's recipe in paper.yaml: V-Net's mesh, sigma 15, in-plane. A label that is its own
    slice index stays one slice index per output slice (nothing moves along z), consecutive along
    z; with z free the slices mix."""
    z = np.arange(1, 13)[:, None, None] * np.ones((12, 48, 48), dtype=np.int64)
    cases = [Case("a", z[None].astype(np.float32), z)]
    vnet = {"elastic_sigma": 15.0, "elastic_probability": 1.0, "elastic_control_points": 2,
            "elastic_grid": "bspline_mesh", "elastic_in_plane": True}
    for seed in range(4):
        _, y = sample_batch(cases, np.random.default_rng(seed), 1, (8, 32, 32), augment=vnet)
        values = [set(np.unique(s)) - {0} for s in y[0]]
        assert all(len(v) == 1 for v in values), values
        assert np.all(np.diff([v.pop() for v in values]) == 1)
    mixed = [sample_batch(cases, np.random.default_rng(seed), 1, (8, 32, 32),
                          augment={**vnet, "elastic_in_plane": False})[1] for seed in range(4)]
    assert any(len(set(np.unique(s)) - {0}) > 1 for y in mixed for s in y[0])
