"""Random B-spline elastic deformation, shared by online augmentation and offline copies.

Liu & Fu 2018: "By varying the position of the control points with random quantities
obtained from Gaussian distribution with zero mean and 15 voxels standard deviation, we
apply random deformations to the training scans."

The model: a coarse lattice of `control_points` nodes per axis spans the patch (first node
on the first voxel, last on the last). Each node gets a displacement d_k ~ N(0, sigma^2)
per axis (in voxels). The dense field u(x) is the interpolating cubic B-spline through the
nodes (scipy's spline prefilter, mirror boundary), so u equals d_k exactly at node k and
is C^2 in between. The warped image is I'(x) = I(x + u(x)); image and label are warped by
the same field, the image linearly (or cubic), the label by nearest neighbour so that it
stays a label map.

Everything is a pure function of its inputs and the `numpy.random.Generator` passed in.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def random_control_displacements(rng: np.random.Generator, dims: int, sigma: float,
                                 control_points: int = 4) -> np.ndarray:
    """Node displacements (dims, m, ..., m), each ~ N(0, sigma^2) voxels (Liu & Fu: sigma 15)."""
    if control_points < 2:
        raise ValueError("control_points must be at least 2 (one node at each end of an axis)")
    return rng.normal(0.0, float(sigma), size=(dims,) + (int(control_points),) * dims)


def _spline_matrix(n: int, m: int) -> np.ndarray:
    """(n, m): the 1D interpolating cubic spline from m nodes onto n voxels, as a matrix.

    Column j is scipy's spline zoom of the j-th unit vector; the operator is linear and the
    tensor-product spline is separable, so the nD field is a contraction with one matrix
    per axis: the same numbers as `ndimage.zoom(..., order=3)`, ~100x faster on a patch.
    """
    eye = np.eye(m)
    return np.stack([ndimage.zoom(eye[j], n / m, order=3, mode="mirror", grid_mode=False) for j in range(m)], 1)


def dense_field(control: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The interpolating cubic B-spline through the node displacements: (dims, *shape).

    Node k of an axis of n voxels and m nodes lies on voxel k (n - 1) / (m - 1).
    """
    dims = control.shape[0]
    if len(shape) != dims:
        raise ValueError(f"a {dims}D field cannot cover a {len(shape)}D shape")
    field = control
    for axis, (n, m) in enumerate(zip(shape, control.shape[1:])):
        w = _spline_matrix(int(n), int(m))
        field = np.moveaxis(np.tensordot(w, field, axes=([1], [axis + 1])), 0, axis + 1)
    assert field.shape[1:] == tuple(shape), (field.shape, shape)
    return np.ascontiguousarray(field)


def warp(array: np.ndarray, field: np.ndarray, order: int, mode: str = "nearest",
         offset: tuple[int, ...] | None = None, cval: float = 0.0) -> np.ndarray:
    """out(x) = array(offset + x + u(x)) over the trailing spatial axes; leading axes are channels.

    The output has the field's spatial shape. With `offset`, a patch is cut and deformed in
    one interpolation from the whole volume, so the deformation pulls in real context
    rather than the patch's padded border (`mode="constant"` fills outside with `cval`).
    """
    dims = field.shape[0]
    spatial = array.shape[-dims:]
    out_shape = field.shape[1:]
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in out_shape], indexing="ij")
    coords = np.stack(grid) + field
    if offset is not None:
        coords += np.asarray(offset, dtype=np.float64).reshape((dims,) + (1,) * dims)
    lead = array.shape[:-dims]
    flat = array.reshape((-1,) + spatial)
    out = np.stack([ndimage.map_coordinates(ch, coords, order=order, mode=mode, cval=cval, prefilter=order > 1)
                    for ch in flat])
    return out.reshape(lead + tuple(out_shape)).astype(array.dtype, copy=False)


def elastic_deform(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, sigma: float,
                   control_points: int = 4, image_order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Deform an image (C, *S) and its label (*S) by one random B-spline field.

    sigma: standard deviation of the node displacements in voxels (Liu & Fu: 15).
    """
    control = random_control_displacements(rng, label.ndim, sigma, control_points)
    field = dense_field(control, label.shape)
    return warp(image, field, image_order), warp(label, field, 0)


def offline_deformations(image: np.ndarray, label: np.ndarray, k: int, sigma: float,
                         rng: np.random.Generator, control_points: int = 4,
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Liu & Fu's offline augmentation: k randomly deformed copies of one training scan."""
    return [elastic_deform(image, label, rng, sigma, control_points) for _ in range(int(k))]
