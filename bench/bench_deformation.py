"""V-Net's random deformation field (Liu & Fu's augmentation in config/paper.yaml) on a training
patch: ours (`bspline_mesh_field`, SimpleITK's coefficient grid evaluated as one contraction per
axis) beside SimpleITK's own evaluation of the same transform (`TransformToDisplacementField`),
with the same coefficients; median of interleaved repeats, and the largest difference.

    .venv/bin/python bench/bench_deformation.py [--shape 64 128 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import SimpleITK as sitk

from dicebench.preprocessing.augmentation import bspline_mesh_field


def simpleitk_field(seed: int, shape: tuple[int, ...], sigma: float, mesh: int, frozen: tuple[int, ...]) -> np.ndarray:
    ref = sitk.Image([int(n) for n in reversed(shape)], sitk.sitkUInt8)
    tx = sitk.BSplineTransformInitializer(ref, [mesh] * len(shape))
    c = np.random.default_rng(seed).normal(0, sigma, size=(len(shape), len(tx.GetParameters()) // len(shape)))
    for axis in frozen:
        c[len(shape) - 1 - axis] = 0.0
    tx.SetParameters(c.ravel().tolist())
    disp = sitk.TransformToDisplacementField(tx, sitk.sitkVectorFloat64, ref.GetSize(), ref.GetOrigin(),
                                             ref.GetSpacing(), ref.GetDirection())
    return np.moveaxis(sitk.GetArrayFromImage(disp)[..., ::-1], -1, 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs="+", default=[64, 128, 128])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    shape = tuple(args.shape)
    times: dict[str, list[float]] = {"ours": [], "SimpleITK": []}
    diff = 0.0
    for seed in range(args.repeats):
        t = time.perf_counter()
        ours = bspline_mesh_field(np.random.default_rng(seed), shape, 15.0, 2, (0,))
        times["ours"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = simpleitk_field(seed, shape, 15.0, 2, (0,))
        times["SimpleITK"].append(time.perf_counter() - t)
        diff = max(diff, float(np.abs(ours - ref).max()))
    print(f"V-Net deformation field, patch {'x'.join(map(str, shape))}, mesh 2, sigma 15, z frozen; "
          f"median of {args.repeats} (SimpleITK threads: {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()})")
    for name, values in times.items():
        print(f"  {name:10s} {statistics.median(values) * 1000:9.1f} ms")
    print(f"  largest difference {diff:.2e} voxels")


if __name__ == "__main__":
    main()
