"""Each converter on miniature trees in its release's published layout (tests/real_layouts.py),
quirks included: they convert, or fail before anything is written, naming the file and the cause."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.linalg
import SimpleITK as sitk
from real_layouts import (OBLIQUE, PHILIPS, SHEARED, expected_totalseg, make_acdc, make_msd,
                          make_promise_challenge, make_promise_zenodo, make_totalseg, make_wmh_2017_zips,
                          make_wmh_dataverse, vol, write, write_sheared)

import dicebench.data.convert as convert_mod
from dicebench.cli import main
from dicebench.data.check import find_problems
from dicebench.data.convert import case_name, convert
from dicebench.errors import DicebenchError
from dicebench.io import check_complete, read_header, read_image, read_image_orthonormal, same_geometry


def same_voxels(a: sitk.Image | Path, b: sitk.Image | Path) -> bool:
    a = sitk.ReadImage(str(a)) if isinstance(a, Path) else a
    b = sitk.ReadImage(str(b)) if isinstance(b, Path) else b
    return same_geometry(a, b) and np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


def dataset_json(out: Path) -> dict:
    return json.loads((out / "dataset.json").read_text())


@pytest.fixture
def writes(monkeypatch) -> list[Path]:
    """Every image the converter writes; empty when a conversion fails before writing."""
    calls: list[Path] = []
    real = convert_mod.write_image

    def spy(image, path, *a, **k):
        calls.append(Path(path))
        return real(image, path, *a, **k)

    monkeypatch.setattr(convert_mod, "write_image", spy)
    return calls


# ---------------------------------------------------------------- case names

def test_case_name_mapping():
    assert case_name("Amsterdam", PHILIPS, "160") == "Amsterdam_Philips_VU_PETMR_01_160"
    assert case_name("Utrecht", "", "0") == "Utrecht_0"
    assert case_name("test", "Case00") == "test_Case00" and case_name("", "Case00") == "Case00"
    assert case_name("a b", "c/d", "x-1") == "a_b_c_d_x-1"
    with pytest.raises(DicebenchError, match="cannot build a case name"):
        case_name(" .", "")


# ---------------------------------------------------------------- ACDC

def test_acdc(tmp_path):
    src = make_acdc(tmp_path / "src")
    out = convert("acdc", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = dataset_json(out)
    assert meta["labels"] == {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
    assert meta["numTraining"] == 4 and meta["numTest"] == 2
    names = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert names == ["patient001_ED_0000.nii.gz", "patient001_ES_0000.nii.gz",
                     "patient002_ED_0000.nii.gz", "patient002_ES_0000.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["patient101_ED.nii.gz", "patient101_ES.nii.gz"]
    pdir = src / "ACDC" / "database" / "training" / "patient001"
    assert same_voxels(out / "imagesTr" / "patient001_ES_0000.nii.gz", pdir / "patient001_frame12.nii.gz")
    assert same_voxels(out / "labelsTr" / "patient001_ES.nii.gz", pdir / "patient001_frame12_gt.nii.gz")
    assert same_voxels(out / "labelsTr" / "patient001_ED.nii.gz", pdir / "patient001_frame01_gt.nii.gz")
    # both frames of a patient carry the patient: splits must be drawn by it
    cases = meta["cases"]
    assert sorted(cases) == ["patient001_ED", "patient001_ES", "patient002_ED", "patient002_ES",
                             "patient101_ED", "patient101_ES"]
    assert cases["patient001_ES"] == {
        "split": "Tr", "patient": "patient001", "group": "DCM",
        "source": "ACDC/database/training/patient001/patient001_frame12.nii.gz",
        "files": ["ACDC/database/training/patient001/patient001_frame12.nii.gz",
                  "ACDC/database/training/patient001/patient001_frame12_gt.nii.gz"]}
    assert cases["patient101_ED"]["split"] == "Ts" and cases["patient101_ED"]["patient"] == "patient101"
    assert {c["patient"] for c in cases.values()} == {"patient001", "patient002", "patient101"}


def test_acdc_bad_label_fails_before_writing(tmp_path, writes):
    src = make_acdc(tmp_path / "src", bad_label_in="patient002")
    with pytest.raises(DicebenchError) as ei:
        convert("acdc", src, tmp_path / "work" / "out")
    assert "patient002_frame10_gt.nii.gz" in str(ei.value) and "[5]" in str(ei.value)
    assert writes == []  # found by the check before writing, not after patient001 was written
    assert not (tmp_path / "work").exists() or list((tmp_path / "work").iterdir()) == []


def test_acdc_bad_info_cfg(tmp_path):
    src = make_acdc(tmp_path / "src")
    cfg = src / "ACDC" / "database" / "training" / "patient002" / "Info.cfg"
    cfg.write_text("Group: NOR\n")
    with pytest.raises(DicebenchError, match="Info.cfg: missing or invalid 'ED'"):
        convert("acdc", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_acdc_holdout_moves_whole_patients_to_the_test_split(tmp_path):
    """Kervadec & de Bruijne's split: the test set is whole training patients (both frames), drawn
    with a seed and recorded; the release's test patients are left out of this dataset."""
    src = make_acdc(tmp_path / "src", more_training=4)  # training patients 001-006, test 101
    out = convert("acdc", src, tmp_path / "out", holdout_patients=2, holdout_seed=0)
    assert find_problems(out) == []
    meta = dataset_json(out)
    held = meta["holdout"]["patients"]
    assert len(held) == 2 and meta["holdout"]["seed"] == 0 and meta["holdout"]["release_test_cases_left_out"] == 2
    cases = meta["cases"]
    test_cases = sorted(c for c, v in cases.items() if v["split"] == "Ts")
    assert test_cases == sorted(f"{p}_{phase}" for p in held for phase in ("ED", "ES"))
    assert all(cases[c].get("holdout") is True for c in test_cases)
    train_patients = {v["patient"] for v in cases.values() if v["split"] == "Tr"}
    assert not train_patients & set(held) and len(train_patients) == 4  # no patient on both sides
    assert "patient101" not in {v["patient"] for v in cases.values()}
    assert meta["numTest"] == 4 and meta["numTraining"] == 8
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == [f"{c}.nii.gz" for c in test_cases]
    assert "held out (seed 0)" in meta["split_note"]
    # seeded: the same seed draws the same patients, another seed (here) others
    again = dataset_json(convert("acdc", src, tmp_path / "again", holdout_patients=2, holdout_seed=0))
    assert again["holdout"]["patients"] == held
    other = dataset_json(convert("acdc", src, tmp_path / "other", holdout_patients=2, holdout_seed=1))
    assert other["holdout"]["patients"] != held


def test_acdc_holdout_cli_and_impossible_sizes(tmp_path, writes):
    src = make_acdc(tmp_path / "src", more_training=1)  # three training patients
    out = tmp_path / "cli"
    assert main(["convert", "acdc", "--src", str(src), "--out", str(out), "--holdout-patients", "1",
                 "--holdout-seed", "3"]) == 0
    assert dataset_json(out)["holdout"]["seed"] == 3 and len(dataset_json(out)["holdout"]["patients"]) == 1
    writes.clear()
    with pytest.raises(DicebenchError, match=r"src: a hold-out of 3 patient\(s\) needs between 1 and 2"):
        convert("acdc", src, tmp_path / "bad", holdout_patients=3)
    assert writes == [] and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("converter, make", [
    ("acdc", make_acdc), ("wmh", make_wmh_dataverse), ("promise12", make_promise_challenge),
    ("promise12", make_promise_zenodo), ("msd_prostate", make_msd), ("totalsegmentator", make_totalseg)])
def test_every_split_is_drawn_by_patient(tmp_path, converter, make):
    """Whatever makes a converter's test split (the release's, or a hold-out where no test labels
    are published), no patient has cases on both sides, and every case names its patient."""
    cases = dataset_json(convert(converter, make(tmp_path / "src"), tmp_path / "out"))["cases"]
    assert all(v.get("patient") for v in cases.values())
    sides = {split: {v["patient"] for v in cases.values() if v["split"] == split} for split in ("Tr", "Ts")}
    assert sides["Tr"] and sides["Ts"] and not sides["Tr"] & sides["Ts"]


# ---------------------------------------------------------------- WMH

WMH_TR = ["Amsterdam_GE3T_100", "Singapore_50", "Utrecht_0"]
WMH_TS = ["Amsterdam_GE1T5_150", "Amsterdam_Philips_VU_PETMR_01_160"]


def test_wmh_dataverse_release(tmp_path):
    src = make_wmh_dataverse(tmp_path / "src")
    assert (src / "test" / "Amsterdam" / PHILIPS / "160" / "wmh.nii.gz").is_file()  # the quirk is real
    out = convert("wmh", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = dataset_json(out)
    assert meta["channel_names"] == {"0": "FLAIR", "1": "T1"}
    assert meta["labels"] == {"background": 0, "WMH": 1, "other_pathology": 2}
    assert sorted(p.name[:-7] for p in (out / "labelsTr").iterdir()) == WMH_TR
    assert sorted(p.name[:-7] for p in (out / "labelsTs").iterdir()) == WMH_TS
    philips = meta["cases"]["Amsterdam_Philips_VU_PETMR_01_160"]
    assert philips == {"split": "Ts", "patient": f"Amsterdam/{PHILIPS}/160", "site": "Amsterdam", "scanner": PHILIPS,
                       "source": f"test/Amsterdam/{PHILIPS}/160",
                       "files": [f"test/Amsterdam/{PHILIPS}/160/pre/FLAIR.nii.gz",
                                 f"test/Amsterdam/{PHILIPS}/160/pre/T1.nii.gz",
                                 f"test/Amsterdam/{PHILIPS}/160/wmh.nii.gz"]}
    assert meta["cases"]["Utrecht_0"]["patient"] == "Utrecht/0" and "scanner" not in meta["cases"]["Utrecht_0"]
    # every case traces back to an existing source; other observers' masks and pre/3DT1 are not used
    used = [f for c in meta["cases"].values() for f in c["files"]]
    assert all((src / f).is_file() for f in used)
    assert not any("additional_annotations" in f or "3DT1" in f or "/orig/" in f for f in used)
    d = src / "test" / "Amsterdam" / PHILIPS / "160"
    assert same_voxels(out / "imagesTs" / "Amsterdam_Philips_VU_PETMR_01_160_0001.nii.gz", d / "pre" / "T1.nii.gz")
    lab = sitk.ReadImage(str(out / "labelsTr" / "Amsterdam_GE3T_100.nii.gz"))
    ref = sitk.ReadImage(str(src / "training/Amsterdam/GE3T/100/wmh.nii.gz"))
    assert lab.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(lab), sitk.GetArrayFromImage(ref).astype(np.uint8))
    assert 2 in np.unique(sitk.GetArrayFromImage(lab))  # other pathology kept as its own class


def test_wmh_2017_zips_give_the_same_names(tmp_path):
    out = convert("wmh", make_wmh_2017_zips(tmp_path / "src"), tmp_path / "out")
    meta = dataset_json(out)
    assert sorted(meta["cases"]) == WMH_TR and meta["numTest"] == 0
    assert meta["cases"]["Amsterdam_GE3T_100"]["patient"] == "Amsterdam/GE3T/100"
    assert meta["cases"]["Amsterdam_GE3T_100"]["source"] == "GE3T/100"


def test_wmh_name_collision_names_both_sources_before_writing(tmp_path, writes):
    src = make_wmh_dataverse(tmp_path / "src")
    # a second folder that sanitises to the same name as the Philips scanner's
    (src / "test" / "Amsterdam" / "Philips_VU_PETMR_01").mkdir()
    (src / "test" / "Amsterdam" / PHILIPS / "160").rename(src / "test" / "Amsterdam" / "Philips_VU_PETMR_01" / "160")
    make_wmh_dataverse(tmp_path / "other")
    (tmp_path / "other" / "test" / "Amsterdam" / PHILIPS / "160").rename(src / "test" / "Amsterdam" / PHILIPS / "160")
    with pytest.raises(DicebenchError) as ei:
        convert("wmh", src, tmp_path / "out")
    msg = str(ei.value)
    assert "Amsterdam_Philips_VU_PETMR_01_160" in msg
    assert f"test/Amsterdam/{PHILIPS}/160" in msg and "test/Amsterdam/Philips_VU_PETMR_01/160" in msg
    assert writes == [] and not (tmp_path / "out").exists()


def test_wmh_missing_t1_fails_up_front(tmp_path, writes):
    src = make_wmh_dataverse(tmp_path / "src")
    (src / "training" / "Utrecht" / "0" / "pre" / "T1.nii.gz").unlink()
    with pytest.raises(DicebenchError, match=r"training/Utrecht/0/pre/T1.nii.gz: missing"):
        convert("wmh", src, tmp_path / "out")
    assert writes == []


def test_wmh_flair_only_cli(tmp_path, capsys):
    src = make_wmh_dataverse(tmp_path / "src")
    rc = main(["convert", "wmh2017", "--src", str(src), "--out", str(tmp_path / "out"), "--flair-only",
               "--max-cases", "2"])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "out"
    meta = dataset_json(out)
    assert meta["channel_names"] == {"0": "FLAIR"} and meta["numTraining"] == 2 and meta["numTest"] == 2
    assert sorted(meta["cases"]) == ["Amsterdam_GE1T5_150", "Amsterdam_GE3T_100",
                                     "Amsterdam_Philips_VU_PETMR_01_160", "Singapore_50"]
    assert find_problems(out) == []
    rc = main(["convert", "wmh2017", "--src", str(src), "--out", str(out)])
    assert rc == 1 and "not empty" in capsys.readouterr().err


# ---------------------------------------------------------------- PROMISE12

def test_promise12_challenge_archives(tmp_path):
    src = make_promise_challenge(tmp_path / "src")
    assert (src / "TrainingData_Part1" / "Case00.raw").is_file()  # true .mhd/.raw pairs
    out = convert("promise12", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = dataset_json(out)
    # every 5th case in sorted order is held out; the unlabelled TestData/Case00 neither counts nor collides
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["Case04.nii.gz"]
    assert meta["numTraining"] == 5 and "every 5th" in meta["split_note"]
    assert meta["cases"]["Case04"] == {"split": "Ts", "patient": "Case04", "cohort": "train",
                                       "source": "TrainingData_Part3/Case04.mhd",
                                       "files": ["TrainingData_Part3/Case04.mhd",
                                                 "TrainingData_Part3/Case04_segmentation.mhd"]}
    src_img = sitk.ReadImage(str(src / "TrainingData_Part2" / "Case03.mhd"))
    assert same_voxels(out / "imagesTr" / "Case03_0000.nii.gz", src_img)
    assert np.allclose(sitk.ReadImage(str(out / "imagesTr" / "Case03_0000.nii.gz")).GetDirection(), OBLIQUE)


def test_promise12_zenodo_copy_with_test_labels(tmp_path):
    src = make_promise_zenodo(tmp_path / "src")
    out = convert("promise12", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = dataset_json(out)
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"Case{i:02d}.nii.gz" for i in range(4)]
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["test_Case00.nii.gz", "test_Case01.nii.gz"]
    assert "release's labelled test cases" in meta["split_note"]
    assert meta["cases"]["test_Case00"]["source"] == "test_data/Case00.mhd"
    assert meta["cases"]["Case00"]["source"] == "training_data/Case00.mhd"
    assert meta["cases"]["test_Case00"]["patient"] != meta["cases"]["Case00"]["patient"]
    assert same_voxels(out / "imagesTs" / "test_Case01_0000.nii.gz", src / "test_data" / "Case01.mhd")
    assert same_voxels(out / "labelsTr" / "Case01.nii.gz", src / "training_data" / "Case01_segmentation.mhd")


def test_promise12_zenodo_copy_without_test_labels(tmp_path):
    out = convert("promise12", make_promise_zenodo(tmp_path / "src", test_labels=False), tmp_path / "out")
    meta = dataset_json(out)
    assert sorted(meta["cases"]) == ["Case00", "Case01", "Case02", "Case03"]
    assert meta["numTest"] == 0 and "every 5th" in meta["split_note"]


def test_promise12_truncated_raw_fails_up_front(tmp_path, writes):
    src = make_promise_challenge(tmp_path / "src")
    raw = src / "TrainingData_Part3" / "Case05.raw"
    raw.write_bytes(raw.read_bytes()[:100])
    with pytest.raises(DicebenchError, match=r"Case05.mhd: unreadable or truncated image \(Case05.raw has 100 bytes"):
        convert("promise12", src, tmp_path / "out")
    assert writes == []


# ---------------------------------------------------------------- MSD Task05

def test_msd_prostate(tmp_path):
    src = make_msd(tmp_path / "src")
    out = convert("msd_prostate", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = dataset_json(out)
    assert meta["channel_names"] == {"0": "T2", "1": "ADC"}
    assert meta["labels"] == {"background": 0, "PZ": 1, "TZ": 2}
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["prostate_04.nii.gz"]  # 4th of 5 sorted
    assert meta["numTraining"] == 4
    assert meta["cases"]["prostate_04"]["patient"] == "prostate_04"
    assert meta["cases"]["prostate_04"]["source"] == "Task05_Prostate/imagesTr/prostate_04.nii.gz"
    # the 4D image is split into its two 3D channels, geometry kept
    assert same_voxels(out / "imagesTr" / "prostate_06_0000.nii.gz", vol(6, spacing=(0.6, 0.6, 4.0)))
    assert same_voxels(out / "imagesTr" / "prostate_06_0001.nii.gz", vol(56, spacing=(0.6, 0.6, 4.0)))


def test_msd_download_extract_convert_end_to_end(tmp_path):
    """A tarball in the release's layout, served over HTTP, downloaded, extracted, converted, checked."""
    import hashlib
    import http.server
    import tarfile
    import threading

    from dicebench.data.download import DatasetEntry, RemoteFile, extract_dataset, fetch_dataset

    src = make_msd(tmp_path / "build")
    tar = tmp_path / "serve" / "Task05_Prostate.tar"
    tar.parent.mkdir()
    with tarfile.open(tar, "w") as tf:
        tf.add(src / "Task05_Prostate", arcname="Task05_Prostate")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    handler = lambda *a, **k: Quiet(*a, directory=str(tar.parent), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/Task05_Prostate.tar"
        md5 = hashlib.md5(tar.read_bytes()).hexdigest()
        entry = DatasetEntry("msd", "t", "msd_prostate", False, (RemoteFile(tar.name, (url,), tar.stat().st_size, "md5", md5),))
        paths = fetch_dataset(entry, tmp_path / "dl", progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    ext = extract_dataset(paths, tmp_path / "extracted")
    out = convert("msd_prostate", ext, tmp_path / "raw")
    assert find_problems(out) == []
    assert dataset_json(out)["numTraining"] == 4


# ---------------------------------------------------------------- TotalSegmentator

def itk_permissive(path: Path, monkeypatch) -> sitk.Image:
    """The closest library: ITK's own reading of a sheared sform, ITK_NIFTI_SFORM_PERMISSIVE."""
    with monkeypatch.context() as m:
        m.setenv("ITK_NIFTI_SFORM_PERMISSIVE", "YES")
        return sitk.ReadImage(str(path))


def test_totalsegmentator_oblique_subject(tmp_path, monkeypatch):
    src = make_totalseg(tmp_path / "Totalsegmentator_dataset_v201")
    ct0 = src / "s0000" / "ct.nii.gz"
    with pytest.raises(RuntimeError, match="orthonormal"):
        sitk.ReadImage(str(ct0))  # the quirk is real: ITK refuses the file
    warnings: list[str] = []
    out = convert("totalsegmentator", tmp_path, tmp_path / "out", warn=warnings.append)
    assert find_problems(out) == []
    meta = dataset_json(out)
    assert meta["labels"] == {"background": 0, "artery": 1, "portal_vein": 2, "liver": 3, "spleen": 4,
                              "stomach": 5, "gallbladder": 6, "pancreas": 7}
    assert meta["skipped_cases"] == ["s0001"]  # the head scan has none of the seven classes
    assert meta["numTraining"] == 1 and meta["numTest"] == 1
    lab = sitk.ReadImage(str(out / "labelsTs" / "s0002.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(lab), expected_totalseg())
    assert same_geometry(lab, sitk.ReadImage(str(src / "s0002" / "ct.nii.gz")))
    # the sheared subject: voxels untouched, geometry as ITK's permissive reading within float precision
    img = sitk.ReadImage(str(out / "imagesTr" / "s0000_0000.nii.gz"))
    ref = itk_permissive(ct0, monkeypatch)
    assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref))
    assert np.allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-5)
    assert np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    assert np.allclose(img.GetDirection(), ref.GetDirection(), atol=2e-4)  # see the test below
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    assert np.allclose(d @ d.T, np.eye(3), atol=1e-6)
    lab0 = sitk.ReadImage(str(out / "labelsTr" / "s0000.nii.gz"))
    assert same_geometry(lab0, img) and np.array_equal(sitk.GetArrayFromImage(lab0), expected_totalseg())
    # the deviation is recorded per case: the largest change of a direction cosine from the stored
    # (unit-length) axes to the nearest orthonormal ones (scipy's polar decomposition)
    m = np.diag([-1.0, -1.0, 1.0]) @ SHEARED[:3, :3]
    expected = np.abs(m / np.linalg.norm(m, axis=0) - scipy.linalg.polar(m)[0]).max()
    fix = meta["cases"]["s0000"]
    assert fix["geometry_fixed"] == pytest.approx(expected, abs=1e-7) and fix["geometry_fixed"] > 0.005
    assert fix["geometry_shift_mm"] > 0 and fix["patient"] == "s0000"
    assert fix["source"] == "Totalsegmentator_dataset_v201/s0000"
    assert "geometry_fixed" not in meta["cases"]["s0002"]
    assert len(warnings) == 1 and "s0000/ct.nii.gz" in warnings[0] and "not orthonormal" in warnings[0]


def test_totalsegmentator_cli_oblique_subject(tmp_path, capsys):
    src = make_totalseg(tmp_path / "ts", sheared=("s0000", "s0002"))
    rc = main(["convert", "totalsegmentator", "--src", str(src), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err.count("warning:") == 2 and "s0002/ct.nii.gz" in err
    assert find_problems(tmp_path / "out") == []
    assert set(dataset_json(tmp_path / "out")["cases"]) == {"s0000", "s0002"}


def test_totalsegmentator_degenerate_affine_fails_up_front(tmp_path, writes):
    src = make_totalseg(tmp_path / "ts")
    flat = SHEARED.copy()
    flat[:3, 1] = flat[:3, 0] * 1.0001  # two voxel axes (nearly) the same direction
    write_sheared(sitk.GetArrayFromImage(read_image_orthonormal(src / "s0002" / "ct.nii.gz")[0]),
                  src / "s0002" / "ct.nii.gz", flat)
    with pytest.raises(DicebenchError, match=r"s0002/ct.nii.gz: unsupported geometry: degenerate affine"):
        convert("totalsegmentator", src, tmp_path / "out")
    assert writes == []


def test_totalsegmentator_truncated_ct_fails_up_front(tmp_path, writes):
    src = make_totalseg(tmp_path / "ts")
    ct = src / "s0002" / "ct.nii.gz"
    ct.write_bytes(ct.read_bytes()[: ct.stat().st_size // 2])
    with pytest.raises(DicebenchError, match=r"s0002/ct.nii.gz: unreadable or truncated image"):
        convert("totalsegmentator", src, tmp_path / "out")
    assert writes == []


def test_totalsegmentator_missing_mask(tmp_path):
    src = make_totalseg(tmp_path / "ts")
    (src / "s0002" / "segmentations" / "pancreas.nii.gz").unlink()
    with pytest.raises(DicebenchError, match=r"s0002/segmentations/pancreas.nii.gz: file not found"):
        convert("totalsegmentator", src, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts"]


def test_unknown_and_empty_sources(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for name in ("acdc", "wmh", "promise12", "msd_prostate", "totalsegmentator"):
        with pytest.raises(DicebenchError, match=str(tmp_path / "empty")):
            convert(name, tmp_path / "empty", tmp_path / "out")
    assert main(["convert", "nope", "--src", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "unknown dataset or converter 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------- reading what the releases hold

SHAPE_ZYX = (4, 6, 5)


def test_unreadable_and_unsupported_geometry_are_told_apart(tmp_path):
    sheared = write_sheared(np.zeros(SHAPE_ZYX, np.int16), tmp_path / "sheared.nii.gz")
    with pytest.raises(DicebenchError) as ei:
        read_image(sheared)
    assert str(ei.value).startswith(f"{sheared}: unsupported geometry: direction cosines are not orthonormal")
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    for reader in (read_image, read_header, read_image_orthonormal):
        with pytest.raises(DicebenchError, match="broken.nii.gz: unreadable or truncated image"):
            reader(broken)


# Sheared and anisotropic (MR-like 0.8 x 0.8 x 3 mm): the polar factor of the affine's 3x3 part,
# which ITK takes, differs here from that of its unit-length axes by 7e-3.
ANISOTROPIC_SHEARED = np.array([[-0.8, 0.0, 0.06, 110.0], [0.0, -0.8, 0.0, 90.0], [0.0, 0.02, 3.0, -50.0],
                                [0.0, 0.0, 0.0, 1.0]])


def test_orthonormalised_header_matches_itk_permissive(tmp_path, monkeypatch):
    arr = np.arange(np.prod(SHAPE_ZYX), dtype=np.int16).reshape(SHAPE_ZYX)
    path = write_sheared(arr, tmp_path / "s.nii.gz", ANISOTROPIC_SHEARED)
    header = read_header(path)
    image, fixed = read_image_orthonormal(path)
    ref = itk_permissive(path, monkeypatch)
    assert fixed == header and header.size == ref.GetSize() == image.GetSize()
    assert np.allclose(header.spacing, ref.GetSpacing(), atol=1e-5)
    assert np.allclose(header.origin, ref.GetOrigin(), atol=1e-4)
    # the direction: the nearest orthonormal matrix (scipy's polar decomposition, in LPS) ...
    lps = np.diag([-1.0, -1.0, 1.0])
    nearest = lps @ scipy.linalg.polar(ANISOTROPIC_SHEARED[:3, :3])[0]
    direction = np.asarray(header.direction).reshape(3, 3)
    assert np.allclose(direction, nearest, atol=1e-9)
    assert header.deviation == pytest.approx(0.0197, abs=1e-4)
    # ... where ITK's permissive reading ends with the transpose of that polar factor: within
    # 4e-4 of ours here, a tenth of what normalising the axes before the decomposition would move
    itk = np.asarray(ref.GetDirection()).reshape(3, 3)
    assert np.allclose(direction, lps @ itk.T @ lps, atol=1e-6)
    assert np.abs(direction - itk).max() < 5e-4
    assert np.array_equal(sitk.GetArrayFromImage(image), arr)
    assert image.GetPixelID() == ref.GetPixelID() == sitk.sitkInt16
    # nibabel's view of the same voxel grid: voxel (i, j, k) maps to the same place within the shift
    affine = nib.load(str(path)).affine
    corner = np.array([SHAPE_ZYX[2] - 1, SHAPE_ZYX[1] - 1, SHAPE_ZYX[0] - 1])
    ras = affine[:3, :3] @ corner + affine[:3, 3]
    lps = np.array(image.TransformIndexToPhysicalPoint(tuple(int(c) for c in corner)))
    assert np.linalg.norm(lps * [-1, -1, 1] - ras) <= header.shift_mm + 1e-6
    # an orthonormal file: no fix, the plain ITK reading
    plain = write(vol(3), tmp_path / "plain.nii.gz")
    assert read_image_orthonormal(plain)[1] is None and read_header(plain).deviation == 0.0


def test_check_complete_finds_short_data(tmp_path):
    img = vol(1, shape=(6, 20, 30))
    gz, nii, mhd = (write(img, tmp_path / n) for n in ("a.nii.gz", "a.nii", "a.mhd"))
    for p in (gz, nii, mhd):
        check_complete(p)
    gz.write_bytes(gz.read_bytes()[:-200])
    nii.write_bytes(nii.read_bytes()[:-1])
    (tmp_path / "a.raw").write_bytes((tmp_path / "a.raw").read_bytes()[:10])
    for p in (gz, nii, mhd):
        with pytest.raises(DicebenchError, match=f"{p.name}: unreadable or truncated image"):
            check_complete(p)
    # a multi-member gzip (e.g. from bgzip) is complete although its trailer counts one member
    import gzip

    raw = (tmp_path / "b.nii")
    write(img, raw)
    data = raw.read_bytes()
    multi = tmp_path / "b.nii.gz"
    multi.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    check_complete(multi)
    assert same_voxels(sitk.ReadImage(str(multi)), img)
