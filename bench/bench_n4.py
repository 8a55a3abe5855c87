"""N4 bias-field correction: antspyx beside SimpleITK at the same settings, same volume, same run.

    .venv/bin/python bench/bench_n4.py [--repeats 3] [--threads 1] [--shape Z Y X]

One synthetic volume (default 96x96x32 voxels, 1x1x3 mm): three tissue classes in an ellipsoid,
Gaussian noise, times a smooth multiplicative bias field exp(polynomial). Both tools get the same
foreground mask, shrink factor 4, 4 levels x 50 iterations, a B-spline mesh of 1 per axis at
the first level (ANTs `-b [1x1x1]` == SimpleITK's default 4 control points with spline order 3),
and the same convergence tolerance. antspyx's default tolerance is 1e-7, SimpleITK's 1e-3: both
are timed, so the rows show how much of the gap is the tolerance and how much the tool.

Printed per row: min and median wall seconds over repeats (ours = the SimpleITK path the
preprocessing uses, beside antspyx, interleaved), their ratio, and the quality of each result:
the correlation of the recovered log-bias with the true one inside the mask, and the
coefficient of variation of the corrected intensities inside the largest tissue class.
Not a test: no assertion on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def phantom(shape_zyx=(32, 96, 96), spacing_xyz=(1.0, 1.0, 3.0), seed=0):
    """(image, mask, true log-bias, tissue-class map) as (z, y, x) float32 arrays."""
    rng = np.random.default_rng(seed)
    z, y, x = [np.linspace(-1, 1, n) for n in shape_zyx]
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    r = np.sqrt((X / 0.85) ** 2 + (Y / 0.75) ** 2 + (Z / 0.9) ** 2)
    cls = np.zeros(shape_zyx, np.uint8)
    cls[r < 1.0] = 1
    cls[r < 0.7] = 2
    cls[(r < 0.35) | ((np.abs(X - 0.3) < 0.12) & (r < 0.9))] = 3
    means = np.array([0.0, 300.0, 550.0, 800.0], np.float32)
    clean = means[cls]
    log_bias = 0.35 * X - 0.25 * Y + 0.2 * Z + 0.3 * X * Y - 0.25 * X**2 + 0.15 * Y**2
    log_bias = (log_bias - log_bias[cls > 0].mean()).astype(np.float32)
    img = (clean * np.exp(log_bias) + rng.normal(0, 15, shape_zyx)).astype(np.float32)
    img = np.clip(img, 1.0, None)  # N4 works on log intensities: keep them positive
    mask = (cls > 0).astype(np.uint8)
    return img, mask, log_bias, cls


def run_sitk(img, mask, spacing, shrink, iters, tol):
    import SimpleITK as sitk

    im = sitk.GetImageFromArray(img)
    im.SetSpacing(spacing)
    mk = sitk.GetImageFromArray(mask)
    mk.CopyInformation(im)
    t0 = time.perf_counter()
    small = sitk.Shrink(im, [shrink] * 3)
    small_mask = sitk.Shrink(mk, [shrink] * 3)
    f = sitk.N4BiasFieldCorrectionImageFilter()
    f.SetMaximumNumberOfIterations(list(iters))
    f.SetConvergenceThreshold(tol)
    f.SetNumberOfControlPoints([4, 4, 4])
    f.SetSplineOrder(3)
    f.Execute(small, small_mask)
    log_bias = f.GetLogBiasFieldAsImage(im)
    corrected = im / sitk.Exp(log_bias)
    dt = time.perf_counter() - t0
    return dt, sitk.GetArrayFromImage(corrected), sitk.GetArrayFromImage(log_bias)


def run_ants(img, mask, spacing, shrink, iters, tol):
    import ants

    a_img = ants.from_numpy(np.ascontiguousarray(img.transpose(2, 1, 0)), spacing=tuple(spacing))
    a_mask = ants.from_numpy(np.ascontiguousarray(mask.transpose(2, 1, 0).astype(np.float32)), spacing=tuple(spacing))
    t0 = time.perf_counter()
    bias = ants.n4_bias_field_correction(a_img, mask=a_mask, shrink_factor=shrink,
                                         convergence={"iters": list(iters), "tol": tol},
                                         spline_param=[1, 1, 1], return_bias_field=True)
    dt = time.perf_counter() - t0
    b = bias.numpy().transpose(2, 1, 0)
    return dt, img / b, np.log(np.clip(b, 1e-6, None))


def quality(log_est, corrected, log_true, mask, cls):
    m = mask > 0
    est = log_est[m] - log_est[m].mean()
    corr = float(np.corrcoef(est, log_true[m])[0, 1])
    big = cls == np.bincount(cls[m]).argmax()
    v = corrected[big]
    return corr, float(v.std() / v.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="ITK threads for both tools")
    ap.add_argument("--shape", type=int, nargs=3, default=(32, 96, 96), metavar=("Z", "Y", "X"))
    args = ap.parse_args()
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    spacing = (1.0, 1.0, 3.0)
    img, mask, log_true, cls = phantom(tuple(args.shape), spacing)
    shrink, iters = 4, (50, 50, 50, 50)
    run_sitk(img, mask, spacing, shrink, iters, 1e-3)  # warm-up both (imports, library loading)
    run_ants(img, mask, spacing, shrink, iters, 1e-3)
    v0 = img
    big = cls == np.bincount(cls[mask > 0]).argmax()
    print(f"volume {args.shape[2]}x{args.shape[1]}x{args.shape[0]} (x y z), spacing {spacing} mm, shrink {shrink}, "
          f"iterations {'x'.join(map(str, iters))}, mesh 1x1x1 / 4 control points, threads {args.threads}, "
          f"repeats {args.repeats}")
    print(f"uncorrected CoV in the largest class: {float(v0[big].std() / v0[big].mean()):.4f}")
    print(f"{'tolerance':>9} | {'SimpleITK min/med s':>20} | {'antspyx min/med s':>18} | {'ants/sitk':>9} | "
          f"{'sitk corr/CoV':>14} | {'ants corr/CoV':>14}")
    for tol in (1e-3, 1e-7):
        ts, ta = [], []
        for _ in range(args.repeats):
            dt, cs, ls = run_sitk(img, mask, spacing, shrink, iters, tol)
            ts.append(dt)
            dt, ca, la = run_ants(img, mask, spacing, shrink, iters, tol)
            ta.append(dt)
        qs = quality(ls, cs, log_true, mask, cls)
        qa = quality(la, ca, log_true, mask, cls)
        print(f"{tol:>9.0e} | {min(ts):>9.3f} / {statistics.median(ts):>7.3f} | {min(ta):>8.3f} / "
              f"{statistics.median(ta):>7.3f} | {min(ta) / min(ts):>9.2f} | {qs[0]:.3f} / {qs[1]:.4f} | "
              f"{qa[0]:.3f} / {qa[1]:.4f}")


if __name__ == "__main__":
    main()
