"""The phantoms: deterministic, in the nnU-Net v2 layout, with the geometry and classes asked for."""

import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk

from dicebench.data.synthetic import PHANTOMS, generate_case, resolve_spec, synthesize
from dicebench.errors import DicebenchError

SMALL = {"prostate": (8, 40, 40), "acdc": (6, 40, 40), "wmh": (24, 36, 30), "abdomen": (16, 32, 40)}


def _digest(img):
    return hashlib.sha256(sitk.GetArrayFromImage(img).tobytes()).hexdigest()


@pytest.mark.parametrize("kind", sorted(PHANTOMS))
def test_deterministic_and_seed_dependent(kind):
    spec = resolve_spec(kind, shape=SMALL[kind])
    a_img, a_lab = generate_case(kind, spec, seed=1, index=0)
    b_img, b_lab = generate_case(kind, spec, seed=1, index=0)
    c_img, _ = generate_case(kind, spec, seed=2, index=0)
    assert _digest(a_img) == _digest(b_img) and _digest(a_lab) == _digest(b_lab)
    assert _digest(a_img) != _digest(c_img)


@pytest.mark.parametrize("kind", sorted(PHANTOMS))
def test_geometry_and_labels(kind):
    spec = resolve_spec(kind, shape=SMALL[kind])
    img, lab = generate_case(kind, spec, seed=0, index=1)
    assert img.GetSize() == SMALL[kind][::-1]
    assert np.allclose(img.GetSpacing(), spec.spacing)
    for attr in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert np.allclose(getattr(img, attr)(), getattr(lab, attr)())
    arr = sitk.GetArrayFromImage(img)
    labels = sitk.GetArrayFromImage(lab)
    assert np.isfinite(arr).all()
    assert set(np.unique(labels)) <= set(spec.labels.values())
    assert (labels > 0).any()


def test_prostate_is_anisotropic_with_a_bias_field():
    spec = resolve_spec("prostate")
    assert spec.spacing[2] / spec.spacing[0] > 4  # ~0.6 x 0.6 x 3.6 mm
    img, lab = generate_case("prostate", spec, seed=0, index=0)
    arr, labels = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(lab)
    background = arr[labels == 0]
    # A smooth multiplicative field: the two halves of the background differ markedly.
    left, right = arr[:, :, :48][labels[:, :, :48] == 0], arr[:, :, 48:][labels[:, :, 48:] == 0]
    assert abs(np.median(left) - np.median(right)) / np.median(background) > 0.05


def test_abdomen_has_seven_organs_of_very_different_sizes():
    spec = resolve_spec("abdomen")
    _, lab = generate_case("abdomen", spec, seed=0, index=0)
    counts = np.bincount(sitk.GetArrayFromImage(lab).ravel(), minlength=8)[1:]
    assert (counts > 0).all()
    assert counts.max() / counts.min() > 50  # liver-like vs gallbladder-like


def test_absent_fraction_controls_class_presence():
    spec = resolve_spec("wmh", shape=SMALL["wmh"], knobs={"absent_fraction": {"other_pathology": 1.0}})
    for i in range(3):
        _, lab = generate_case("wmh", spec, seed=0, index=i)
        labels = sitk.GetArrayFromImage(lab)
        assert not (labels == 2).any() and (labels == 1).any()
    spec = resolve_spec("wmh", shape=SMALL["wmh"], knobs={"absent_fraction": {"other_pathology": 0.0}})
    _, lab = generate_case("wmh", spec, seed=0, index=0)
    assert (sitk.GetArrayFromImage(lab) == 2).any()


def test_unknown_knob_is_a_clear_error():
    with pytest.raises(DicebenchError, match="unknown knob"):
        resolve_spec("acdc", knobs={"sizee": 2})
    with pytest.raises(DicebenchError, match="unknown class"):
        resolve_spec("acdc", knobs={"absent_fraction": {"aorta": 0.5}})


def test_written_layout_is_nnunet_v2(tiny_acdc):
    meta = json.loads((tiny_acdc / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
    assert meta["numTraining"] == 4 and meta["file_ending"] == ".nii.gz"
    assert meta["channel_names"] == {"0": "cineMRI"}
    assert len(list((tiny_acdc / "imagesTr").glob("*_0000.nii.gz"))) == 4
    assert len(list((tiny_acdc / "labelsTs").glob("*.nii.gz"))) == 2
    # nibabel (as nnU-Net, ITK-SNAP and Slicer would) reads a real affine: oblique, mm spacing.
    import nibabel as nib

    nii = nib.load(str(next((tiny_acdc / "imagesTr").glob("*.nii.gz"))))
    zooms = nii.header.get_zooms()
    assert np.allclose(zooms, (1.5625, 1.5625, 10.0))
    assert not np.allclose(nii.affine[:3, :3] / zooms, np.diag(np.sign(np.diag(nii.affine[:3, :3]))))


def test_case_does_not_depend_on_dataset_size(tmp_path):
    a = synthesize("acdc", tmp_path / "a", n_train=2, n_test=1, seed=5, shape=(4, 24, 24))
    b = synthesize("acdc", tmp_path / "b", n_train=3, n_test=1, seed=5, shape=(4, 24, 24))
    first = "synth_acdc_000"
    assert _digest(sitk.ReadImage(str(a / "imagesTr" / f"{first}_0000.nii.gz"))) == \
        _digest(sitk.ReadImage(str(b / "imagesTr" / f"{first}_0000.nii.gz")))


def test_absent_fraction_is_met_exactly_in_each_split(tmp_path):
    """A mechanism built on an absent class holds in the training and the test scans alike:
    round(n * fraction) scans of each split lack the class, whatever the draws give."""
    out = synthesize("wmh", tmp_path / "wmh", n_train=5, n_test=4, seed=3, shape=SMALL["wmh"],
                     knobs={"absent_fraction": {"other_pathology": 0.6}})
    measured = json.loads((out / "dataset.json").read_text())["synthetic"]["measured"]
    assert measured["Tr"]["other_pathology"]["scans_with_class"] == 0.4  # 2 of 5
    assert measured["Ts"]["other_pathology"]["scans_with_class"] == 0.5  # 2 of 4 (round(2.4) = 2 absent)
    assert measured["Tr"]["WMH"]["scans_with_class"] == 1.0
