"""Preprocessing keeps geometry, corrects the bias field, and brings predictions back exactly."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from dicebench.data.synthetic import generate_case, resolve_spec
from dicebench.errors import DicebenchError
from dicebench.preprocessing.pipeline import (
    N4Settings,
    PreprocessSettings,
    n4_correct,
    normalise,
    preprocess_dataset,
    resample_like,
    resample_to_spacing,
)


def _oblique_label():
    spec = resolve_spec("acdc", shape=(8, 48, 48))
    return generate_case("acdc", spec, seed=0, index=0)


def test_resampling_keeps_physical_extent_origin_and_direction():
    img, _ = _oblique_label()
    out = resample_to_spacing(img, (1.0, 1.0, 5.0), sitk.sitkLinear)
    assert out.GetOrigin() == img.GetOrigin() and out.GetDirection() == img.GetDirection()
    assert out.GetSpacing() == (1.0, 1.0, 5.0)
    extent_in = np.array(img.GetSize()) * np.array(img.GetSpacing())
    extent_out = np.array(out.GetSize()) * np.array(out.GetSpacing())
    assert np.all(np.abs(extent_in - extent_out) <= np.array(out.GetSpacing()) / 2 + 1e-9)


def test_none_keeps_an_axis():
    img, _ = _oblique_label()
    out = resample_to_spacing(img, (None, None, 2.5), sitk.sitkLinear)
    assert out.GetSpacing()[:2] == img.GetSpacing()[:2] and out.GetSize()[:2] == img.GetSize()[:2]


def test_label_round_trip_lies_on_the_original_grid():
    """Down to the training grid with nearest neighbour and back: same geometry, near-identical labels."""
    _, lab = _oblique_label()
    down = resample_to_spacing(lab, (1.0, 1.0, 5.0), sitk.sitkNearestNeighbor)
    back = resample_like(down, lab, sitk.sitkNearestNeighbor)
    for attr in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(back, attr)() == getattr(lab, attr)()
    a, b = sitk.GetArrayFromImage(lab), sitk.GetArrayFromImage(back)
    assert set(np.unique(b)) <= set(np.unique(a))
    assert (a == b).mean() > 0.97


def test_n4_removes_most_of_the_bias_field():
    """A homogeneous object times a known smooth field: N4 flattens it."""
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (16, 40, 40)), indexing="ij")
    field = np.exp(0.4 * x + 0.3 * y * y - 0.2 * z)
    obj = (x**2 + y**2 < 0.8) & (np.abs(z) < 0.9)
    arr = np.where(obj, 100.0, 10.0) * field
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing((1.5, 1.5, 3.0))
    img.SetOrigin((10.0, -5.0, 2.0))
    corrected = n4_correct(img, N4Settings(shrink_factor=2, iterations=(50, 40, 30), spline_distance_mm=20.0))
    cv = lambda v: v.std() / v.mean()  # noqa: E731
    before, after = arr[obj], sitk.GetArrayFromImage(corrected)[obj]
    assert cv(after) < 0.5 * cv(before)
    assert corrected.GetOrigin() == img.GetOrigin() and corrected.GetSpacing() == img.GetSpacing()


def test_normalisation():
    arr = np.random.default_rng(0).normal(100, 20, (4, 8, 8)).astype(np.float32)
    z = normalise(arr, PreprocessSettings(normalization="zscore"))
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-4
    ct = normalise(np.array([-1000.0, 50.0, 3000.0]), PreprocessSettings(normalization="ct", ct_window=(-200, 300)))
    assert np.allclose(ct, [-1.0, 0.0, 1.0])
    bad = arr.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DicebenchError, match="NaN"):
        normalise(bad, PreprocessSettings())


def test_dataset_preprocessing_writes_every_case_and_resumes(tiny_acdc, tmp_path):
    out = tmp_path / "prep"
    settings = {"target_spacing": [2.0, 2.0, None], "n4": {"enabled": False}, "normalization": "zscore"}
    preprocess_dataset(tiny_acdc, out, settings)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        assert sorted(p.name for p in (out / sub).iterdir()) == sorted(p.name for p in (tiny_acdc / sub).iterdir())
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["preprocessing"]["target_spacing"] == [2.0, 2.0, None]
    img = sitk.ReadImage(str(next((out / "imagesTr").iterdir())))
    assert img.GetSpacing()[:2] == (2.0, 2.0)
    # Resume: a removed output is rebuilt, the others are left untouched.
    victim = next((out / "labelsTr").iterdir())
    keep = next((out / "imagesTr").iterdir())
    mtime = keep.stat().st_mtime_ns
    victim.unlink()
    preprocess_dataset(tiny_acdc, out, settings)
    assert victim.exists() and keep.stat().st_mtime_ns == mtime
    assert not list(out.rglob(".*tmp*"))
