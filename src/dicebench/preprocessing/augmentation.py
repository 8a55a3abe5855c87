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

V-Net's own code, which Liu & Fu follow (faustomilletari/VNet, utilities.py,
`produceRandomlyDeformedImage`, called from VNet.py `prepareDataThread`), draws the field
differently: SimpleITK's `BSplineTransform` over the whole input volume with a mesh of 2 cells
per axis (`numcontrolpoints = 2` in main.py, i.e. 2 + 3 = 5 B-spline coefficients per axis),
every coefficient ~ N(0, 15^2) voxels, the displacements along z set to zero ("The resolution
in z is too bad"), applied online to half of the training volumes. `bspline_mesh_field` is that
model on SimpleITK's coefficient grid (tested equal to SimpleITK's own evaluation); `random_field`
picks the model (`grid`) and whether z moves (`in_plane`), for the online deformation of
`dicebench.training.sampling`.

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


GRIDS = ("interpolating", "bspline_mesh")


def _cubic_bspline(u: np.ndarray) -> np.ndarray:
    """The uniform cubic B-spline basis beta3(u), support (-2, 2)."""
    a = np.abs(u)
    return np.where(a < 1, (4 - 6 * a**2 + 3 * a**3) / 6, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


def bspline_mesh_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, mesh_size: int = 2,
                       frozen_axes: tuple[int, ...] = ()) -> np.ndarray:
    """V-Net's random deformation field over `shape` (numpy axis order), (dims, *shape) in voxels.

    The model is SimpleITK's cubic `BSplineTransform` on a mesh of `mesh_size` cells per axis
    spanning the volume (`BSplineTransformInitializer`, as V-Net's code calls it), every
    coefficient ~ N(0, sigma^2), the coefficients of each axis in `frozen_axes` set to zero
    (V-Net: z). All coefficients are drawn before any is zeroed, as V-Net does, so freezing an
    axis leaves the other axes' displacements unchanged. The coefficient grid (origin, spacing)
    is SimpleITK's own; the field u(x) = sum_j c_j beta3(t(x) - j) is then evaluated as one
    contraction per axis: SimpleITK's `TransformToDisplacementField` gives the same numbers
    (tests/test_augmentation.py) but evaluates every voxel on its own, about 25 times slower on a
    64 x 128 x 128 patch (bench/bench_deformation.py). The convention is ITK's resampling one,
    out(x) = in(x + u(x)), as `warp`'s.
    """
    import SimpleITK as sitk

    dims = len(shape)
    if mesh_size < 1:
        raise ValueError("mesh_size must be at least 1 (cells per axis)")
    reference = sitk.Image([int(n) for n in reversed(shape)], sitk.sitkUInt8)  # unit spacing: voxels
    grid = sitk.BSplineTransformInitializer(reference, [int(mesh_size)] * dims).GetCoefficientImages()[0]
    sizes = grid.GetSize()[::-1]  # numpy axis order
    coefficients = rng.normal(0.0, float(sigma), size=(dims, int(np.prod(sizes))))  # ITK order: x, y[, z]
    for axis in frozen_axes:
        coefficients[dims - 1 - int(axis)] = 0.0  # numpy axis a is ITK component dims - 1 - a
    weights = [_cubic_bspline((np.arange(n) - origin) / spacing - np.arange(m)[:, None]).T
               for n, m, origin, spacing in zip(shape, sizes, grid.GetOrigin()[::-1], grid.GetSpacing()[::-1])]
    field = coefficients[::-1].reshape((dims, *sizes))  # component along numpy axis a, over numpy axes
    for axis, w in enumerate(weights):
        field = np.moveaxis(np.tensordot(w, field, axes=([1], [axis + 1])), 0, axis + 1)
    return np.ascontiguousarray(field)


def random_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, control_points: int = 4,
                 grid: str = "interpolating", in_plane: bool = False) -> np.ndarray:
    """One random deformation field (dims, *shape) in voxels.

    grid "interpolating": the cubic spline through `control_points` nodes per axis (module doc);
    "bspline_mesh": V-Net's B-spline transform with a mesh of `control_points` cells per axis
    (`bspline_mesh_field`). `in_plane`: no displacement along the first axis of a 3D shape (z,
    as V-Net's code); a 2D shape (an axial slice) has no z, so it changes nothing there.
    """
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    frozen = (0,) if in_plane and len(shape) == 3 else ()
    if grid == "bspline_mesh":
        return bspline_mesh_field(rng, shape, sigma, control_points, frozen)
    control = random_control_displacements(rng, len(shape), sigma, control_points)
    control[list(frozen)] = 0.0
    return dense_field(control, shape)


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
