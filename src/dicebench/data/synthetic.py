"""Synthetic phantom datasets, one per real dataset of the papers, generated deterministically.

Each phantom is written in the nnU-Net v2 raw layout every real dataset is converted to
(`imagesTr/{case}_0000.nii.gz`, `labelsTr/{case}.nii.gz`, `imagesTs/`, `labelsTs/`,
`dataset.json`), as NIfTI with real affines, so the rest of the workflow cannot tell
a phantom from a converted real dataset.

The phantoms have knobs (object size, count, contrast, noise, share of cases in which a
class is absent) so that sweeps can vary the label imbalance the papers study:

- `prostate` (PROMISE12 stand-in): anisotropic T2-like MRI, one ellipsoidal gland, a smooth
  multiplicative bias field so that N4 matters.
- `acdc` (ACDC stand-in): short-axis cine-like stacks on an oblique direction: LV blood
  pool, myocardial ring, RV crescent, tapering towards the apex.
- `wmh` (WMH 2017 stand-in): FLAIR-like contrast synthesised from the real MNI152 T1 and
  tissue maps bundled with nilearn, a few tiny bright lesions (class 1) and a larger,
  rarer "other pathology" (class 2) absent from most cases.
- `abdomen` (Shen et al. stand-in): CT-like body with seven organs of very different
  sizes, from a liver-like organ down to thin artery- and vein-like tubes.

Every case draws from its own `numpy.random.Generator` seeded from (dataset seed, case
index), so a case does not change when the number of cases does, except for which cases lack
a class: in a dataset, `absent_fraction` is met exactly in each split (round(n * fraction)
scans of the split, drawn from the dataset seed, lack the class), so that a mechanism built
on absent classes holds in the training and the test scans alike, not only on average.
"""

from __future__ import annotations

import argparse
import importlib.resources
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from dicebench.errors import DicebenchError
from dicebench.data.phantoms import PHANTOMS, PhantomSpec, resolve_spec
from dicebench.io import json_option, write_image

Volume = tuple[np.ndarray, np.ndarray]  # (image float32, label uint8), both (z, y, x)


def _grid(shape, spacing_zyx):
    """Physical coordinates (mm) of each voxel, centred on the volume."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing_zyx)]
    return np.meshgrid(*axes, indexing="ij")


def _ellipsoid(coords, centre, radii):
    z, y, x = coords
    return ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + (
        (x - centre[2]) / radii[2]
    ) ** 2 <= 1.0


def _smooth_noise(rng, shape, sigma_vox, amplitude):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="reflect")
    field /= field.std() + 1e-12
    return amplitude * field


def _bias_field(rng, coords, strength):
    """A smooth multiplicative field exp(polynomial), as in MR coil inhomogeneity."""
    z, y, x = (c / (np.abs(c).max() + 1e-9) for c in coords)
    a = rng.normal(0, 1, 6)
    poly = a[0] * x + a[1] * y + a[2] * z + a[3] * x * y + a[4] * x * x + a[5] * y * y
    poly /= np.abs(poly).max() + 1e-9
    return np.exp(strength * poly)


def _present(rng, knobs, name) -> bool:
    """Whether the case holds class `name`: drawn with the knob's absent fraction, unless the
    dataset fixed it (`_absent`, set by `synthesize`; the draw is consumed either way, so the
    rest of the case stays the same)."""
    drawn = rng.random() >= float(knobs.get("absent_fraction", {}).get(name, 0.0))
    fixed = knobs.get("_absent")
    return drawn if fixed is None else name not in fixed


def absent_cases(count: int, fractions: dict[str, float], seed: int, split: str) -> list[set[str]]:
    """Per case of a split, the classes it lacks: exactly round(count * fraction) cases per
    class, chosen by a generator seeded from (dataset seed, split)."""
    rng = np.random.default_rng([seed, 1 + ("Tr", "Ts").index(split)])
    out: list[set[str]] = [set() for _ in range(count)]
    for name, fraction in sorted(fractions.items()):
        for i in rng.permutation(count)[: int(round(count * float(fraction)))]:
            out[int(i)].add(name)
    return out


def prostate(rng: np.random.Generator, spec: PhantomSpec, knobs: dict) -> Volume:
    shape, sp = spec.shape, spec.spacing[::-1]
    coords = _grid(shape, sp)
    label = np.zeros(shape, np.uint8)
    size = knobs["size"]
    centre = rng.normal(0, 4.0, 3) * np.array([0.3, 1, 1])
    radii = np.array([16.0, 13.0, 17.0]) * size * rng.uniform(0.85, 1.15, 3)
    if _present(rng, knobs, "prostate"):
        label[_ellipsoid(coords, centre, radii)] = 1
    # Tissue: smooth texture, a darker rectum-like blob behind the gland, bright gland.
    img = 0.45 + _smooth_noise(rng, shape, (1, 4, 4), 0.05)
    rectum = _ellipsoid(coords, centre + np.array([0, radii[1] + 9, 0]), [20, 8, 10])
    img[rectum] = 0.2
    img[label == 1] += knobs["contrast"] * (1 + _smooth_noise(rng, shape, (1, 2, 2), 0.15)[label == 1])
    img *= _bias_field(rng, coords, knobs["bias"])
    img += rng.normal(0, knobs["noise"], shape)
    return (np.clip(img, 0, None) * 1000).astype(np.float32), label


def acdc(rng: np.random.Generator, spec: PhantomSpec, knobs: dict) -> Volume:
    shape, sp = spec.shape, spec.spacing[::-1]
    z, y, x = _grid(shape, sp)
    size = knobs["size"]
    cy, cx = rng.normal(0, 4, 2)
    r_lv = 18.0 * size * rng.uniform(0.8, 1.2)
    wall = 7.0 * size * rng.uniform(0.85, 1.15)
    # Taper towards the apex (last slices) like a short-axis stack.
    taper = np.clip(1.0 - 0.6 * ((z - z.min()) / (np.ptp(z) + 1e-9)) ** 2, 0.2, 1)
    r = np.hypot(y - cy, x - cx)
    lv = r <= r_lv * taper
    myo = (r > r_lv * taper) & (r <= (r_lv + wall) * taper)
    rv_centre = (cy - 6, cx - (r_lv + wall) * 1.05)
    r_rv = np.hypot((y - rv_centre[0]) / 1.3, x - rv_centre[1])
    rv = (r_rv <= r_lv * 0.95 * taper) & ~myo & ~lv & (r > (r_lv + wall) * taper)
    label = np.zeros(shape, np.uint8)
    for name, mask, idx in (("RV", rv, 1), ("MYO", myo, 2), ("LV", lv, 3)):
        if _present(rng, knobs, name):
            label[mask] = idx
    c = knobs["contrast"]
    img = 0.35 + _smooth_noise(rng, shape, (0.5, 3, 3), 0.06)
    body = np.hypot(y / 1.15, x) <= 0.45 * min(np.ptp(y), np.ptp(x))
    img[~body] = 0.05
    img[label == 1] = 0.35 + 0.9 * c
    img[label == 3] = 0.35 + c
    img[label == 2] = 0.35 - 0.4 * c
    img += rng.normal(0, knobs["noise"], shape)
    img = ndimage.gaussian_filter(img, (0, 0.6, 0.6))
    return (np.clip(img, 0, None) * 500).astype(np.float32), label


def _mni_volume(name: str) -> sitk.Image:
    data = importlib.resources.files("nilearn.datasets") / "data" / name
    with importlib.resources.as_file(data) as path:
        return sitk.ReadImage(str(path), sitk.sitkFloat32)


def wmh(rng: np.random.Generator, spec: PhantomSpec, knobs: dict) -> Volume:
    """FLAIR-like contrast from the MNI152 tissue maps, resampled with a random affine per case."""
    t1 = _mni_volume("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = _mni_volume("mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    wm = _mni_volume("mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    shape, spacing = spec.shape, spec.spacing
    # Reference grid centred on the MNI brain, with this spec's size and spacing.
    ref = sitk.Image([int(n) for n in shape[::-1]], sitk.sitkFloat32)
    ref.SetSpacing(spacing)
    centre = np.array(t1.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in t1.GetSize()]))
    ref.SetOrigin(tuple(centre - (np.array(shape[::-1]) - 1) / 2 * np.array(spacing)))
    tx = sitk.AffineTransform(3)
    angle = rng.normal(0, 0.06, 3)
    rot = sitk.Euler3DTransform((0, 0, 0), *angle).GetMatrix()
    scale = rng.uniform(0.93, 1.07, 3)
    tx.SetMatrix((np.array(rot).reshape(3, 3) @ np.diag(scale)).ravel().tolist())
    tx.SetCenter(tuple(centre))
    tx.SetTranslation(tuple(rng.normal(0, 2.0, 3)))

    def warp(img):
        # The bundled maps are stored as 0..255; bring them to 0..1.
        return sitk.GetArrayFromImage(sitk.Resample(img, ref, tx, sitk.sitkLinear, 0.0)) / 255.0

    t1a, gma, wma = warp(t1), warp(gm), warp(wm)
    brain = (gma + wma) > 0.3
    csf = (t1a > 0.05 * t1a.max()) & ~brain & ndimage.binary_closing(brain, iterations=2)
    # FLAIR: CSF dark, WM darker than GM, lesions bright.
    img = 0.55 * gma + 0.42 * wma + 0.08 * csf
    label = np.zeros(shape, np.uint8)
    wm_core = ndimage.binary_erosion(wma > 0.7, iterations=1)
    candidates = np.argwhere(wm_core)
    if len(candidates) and _present(rng, knobs, "WMH"):
        n = rng.integers(knobs["lesions_min"], knobs["lesions_max"] + 1)
        coords = _grid(shape, spacing[::-1])
        for idx in candidates[rng.choice(len(candidates), n, replace=False)]:
            centre_mm = [coords[a][tuple(idx)] for a in range(3)]
            radii = rng.uniform(1.0, 2.2, 3) * knobs["size"] * np.array(spacing[::-1])
            label[_ellipsoid(coords, centre_mm, radii) & (wma > 0.4)] = 1
    if len(candidates) and _present(rng, knobs, "other_pathology"):
        coords = _grid(shape, spacing[::-1])
        idx = candidates[rng.integers(len(candidates))]
        centre_mm = [coords[a][tuple(idx)] for a in range(3)]
        radii = rng.uniform(2.5, 4.0, 3) * knobs["size"] * knobs["other_size"] * np.array(spacing[::-1])
        label[_ellipsoid(coords, centre_mm, radii) & brain] = 2
    c = knobs["contrast"]
    img[label == 1] = 0.42 + c
    img[label == 2] = 0.42 - 0.6 * c  # an infarct-like hypo-intense region
    img = ndimage.gaussian_filter(img, 0.5)
    img += rng.normal(0, knobs["noise"], shape) * (img > 0.02)
    return (np.clip(img, 0, None) * 800).astype(np.float32), label


def abdomen(rng: np.random.Generator, spec: PhantomSpec, knobs: dict) -> Volume:
    """CT-like (Hounsfield units): body, fat, and seven organs of very different sizes."""
    shape, sp = spec.shape, spec.spacing[::-1]
    coords = _grid(shape, sp)
    z, y, x = coords
    s = knobs["size"]
    j = lambda v: np.asarray(v, float) + rng.normal(0, 2.0, len(v))  # noqa: E731  jitter in mm
    ext_y, ext_x = np.ptp(y) / 2, np.ptp(x) / 2
    body = (y / (0.75 * ext_y)) ** 2 + (x / (0.92 * ext_x)) ** 2 <= 1
    fat = body & ~((y / (0.68 * ext_y)) ** 2 + (x / (0.85 * ext_x)) ** 2 <= 1)
    img = np.full(shape, -1000.0)
    img[body] = 30.0
    img[fat] = -100.0
    label = np.zeros(shape, np.uint8)
    # Order matters: later organs overwrite earlier ones where they touch.
    organs = [
        ("liver", 3, 60.0, _ellipsoid(coords, j([8, -8, -0.35 * ext_x]), s * np.array([40, 0.45 * ext_y, 0.35 * ext_x]))),
        ("spleen", 4, 50.0, _ellipsoid(coords, j([10, 0.25 * ext_y, 0.55 * ext_x]), s * np.array([30, 20, 13]))),
        ("stomach", 5, 20.0, _ellipsoid(coords, j([14, -0.25 * ext_y, 0.3 * ext_x]), s * np.array([24, 18, 22]))),
        ("gallbladder", 6, 5.0, _ellipsoid(coords, j([-6, -0.35 * ext_y, -0.2 * ext_x]), s * np.array([9, 5, 5]))),
        ("pancreas", 7, 45.0, _ellipsoid(coords, j([-2, 0.05 * ext_y, 0.05 * ext_x]), s * np.array([8, 7, 0.35 * ext_x]))),
    ]
    # Thin tubes: an aorta-like artery along z, a portal-vein-like oblique vessel.
    ay, ax = j([0.3 * ext_y, 0.05 * ext_x])
    artery = ((y - ay) ** 2 + (x - ax) ** 2 <= (s * 5.0) ** 2) & body
    t = (x + 0.3 * ext_x) / (0.5 * ext_x)
    vy, vz = j([-0.05 * ext_y, 0.0])
    vein = ((y - vy - 4 * t) ** 2 + (z - vz - 6 * t) ** 2 <= (s * 3.5) ** 2) & (t > 0) & (t < 1) & body
    organs += [("artery", 1, 200.0, artery), ("portal_vein", 2, 170.0, vein)]
    c = knobs["contrast"]
    for name, idx, hu, mask in organs:
        if _present(rng, knobs, name):
            mask = mask & body & ~fat
            label[mask] = idx
            img[mask] = 30.0 + c * (hu - 30.0)
    img += _smooth_noise(rng, shape, 1.5, 8.0) * body
    img += rng.normal(0, knobs["noise"], shape)
    return img.astype(np.float32), label


# The generator of each phantom kind in the registry (dicebench.data.phantoms.PHANTOMS).
GENERATORS: dict[str, Callable[[np.random.Generator, PhantomSpec, dict], Volume]] = {
    "prostate": prostate,
    "acdc": acdc,
    "wmh": wmh,
    "abdomen": abdomen,
}

# Oblique short-axis orientation for the cardiac phantom, as real cine stacks have.
_DIRECTIONS = {
    "acdc": tuple(
        sitk.Euler3DTransform((0, 0, 0), 0.35, -0.25, 0.5).GetMatrix()
    ),
}


def generate_case(kind: str, spec: PhantomSpec, seed: int, index: int,
                  absent: set[str] | None = None) -> tuple[sitk.Image, sitk.Image]:
    """One phantom case as SimpleITK images with a real geometry (spacing, origin, direction).
    `absent`: the classes this case lacks, fixed by the dataset (default: drawn per case)."""
    rng = np.random.default_rng([seed, index])
    knobs = spec.knobs if absent is None else {**spec.knobs, "_absent": absent}
    image, label = GENERATORS[kind](rng, spec, knobs)
    out = []
    for arr in (image, label):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(spec.spacing)
        img.SetDirection(_DIRECTIONS.get(kind, (1, 0, 0, 0, 1, 0, 0, 0, 1)))
        # Put the volume centre near the scanner's isocentre, as real scans are.
        centre_index = [(n - 1) / 2 for n in img.GetSize()]
        img.SetOrigin((0.0, 0.0, 0.0))
        c = np.array(img.TransformContinuousIndexToPhysicalPoint(centre_index))
        img.SetOrigin(tuple(-c + np.array([3.5, -12.0, 20.0])))
        out.append(img)
    return out[0], out[1]


def class_mechanism(voxels: np.ndarray, labels: dict[str, int]) -> dict:
    """What the knobs produced, per class: the share of scans containing it and its share of
    the voxels (and of the foreground voxels), from (cases, classes) voxel counts."""
    if not len(voxels):
        return {}
    total, fg = voxels.sum(), voxels[:, 1:].sum()
    return {name: {"scans_with_class": round(float((voxels[:, k] > 0).mean()), 4),
                   "voxel_share": round(float(voxels[:, k].sum() / total), 6) if total else None,
                   "foreground_share": round(float(voxels[:, k].sum() / fg), 4) if fg and k else None}
            for name, k in labels.items()}


def synthesize(kind: str, out_dir: str | Path, n_train: int, n_test: int, seed: int = 0,
               shape=None, spacing=None, knobs: dict | None = None, name: str | None = None) -> Path:
    """Write a phantom dataset in the nnU-Net v2 raw layout; dataset.json is written last."""
    from dicebench.data.layout import write_dataset_json

    spec = resolve_spec(kind, shape, spacing, knobs)
    out = Path(out_dir)
    if n_train < 2:
        raise DicebenchError(f"dataset '{name or kind}': n_train must be at least 2 (one for validation)")
    prefix = name or f"synth_{kind}"
    counts = {split: np.zeros((0, len(spec.labels)), np.int64) for split in ("Tr", "Ts")}
    fractions = {k: v for k, v in spec.knobs.get("absent_fraction", {}).items() if v > 0}
    for split, count, offset in (("Tr", n_train, 0), ("Ts", n_test, n_train)):
        absent = absent_cases(count, fractions, seed, split)
        for i in range(count):
            case = f"{prefix}_{offset + i:03d}"
            image, label = generate_case(kind, spec, seed, offset + i, absent[i])
            write_image(image, out / f"images{split}" / f"{case}_0000.nii.gz")
            write_image(label, out / f"labels{split}" / f"{case}.nii.gz")
            voxels = np.bincount(sitk.GetArrayViewFromImage(label).ravel(), minlength=len(spec.labels))
            counts[split] = np.vstack([counts[split], voxels[: len(spec.labels)]])
    write_dataset_json(
        out,
        name=prefix,
        channel_names={"0": spec.channel},
        labels=spec.labels,
        num_training=n_train,
        description=f"Synthetic phantom standing in for {spec.stands_in_for}",
        stands_in_for=spec.stands_in_for,
        modality=spec.modality,
        numTest=n_test,
        synthetic={"kind": kind, "seed": seed, "shape_zyx": list(spec.shape),
                   "spacing_xyz": list(spec.spacing), "knobs": spec.knobs,
                   "measured": {split: class_mechanism(c, spec.labels) for split, c in counts.items()}},
    )
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", required=True, choices=sorted(PHANTOMS))
    p.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    p.add_argument("--name", help="case prefix and dataset name (default synth_KIND)")
    p.add_argument("--n-train", type=int, default=6)
    p.add_argument("--n-test", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"))
    p.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), help="mm")
    p.add_argument("--knobs", default="{}", help="JSON object of phantom knobs")


def run(args: argparse.Namespace) -> int:
    knobs = json_option(args.knobs, "--knobs")
    synthesize(args.kind, args.out, args.n_train, args.n_test, args.seed, args.shape, args.spacing,
               knobs, args.name)
    return 0
