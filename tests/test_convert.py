"""Each converter on a miniature tree in its dataset's true file layout and naming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dicebench.cli import main
from dicebench.data.check import find_problems
from dicebench.data.convert import convert
from dicebench.errors import DicebenchError
from dicebench.io import same_geometry

SHAPE = (5, 9, 8)  # z, y, x
OBLIQUE = (0.96, -0.28, 0.0, 0.28, 0.96, 0.0, 0.0, 0.0, 1.0)


def vol(seed: int, kind: str = "image", shape=SHAPE, spacing=(1.4, 1.4, 10.0), origin=(-3.0, 7.5, 12.0),
        direction=OBLIQUE, values=4, dtype=None) -> sitk.Image:
    rng = np.random.default_rng(seed)
    if kind == "image":
        arr = rng.normal(200, 30, shape).astype(dtype or np.float32)
    else:
        arr = rng.integers(0, values, shape).astype(dtype or np.uint8)
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing(spacing)
    im.SetOrigin(origin)
    im.SetDirection(direction)
    return im


def write(im: sitk.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(im, str(path))
    return path


def same_voxels(a: sitk.Image | Path, b: sitk.Image | Path) -> bool:
    a = sitk.ReadImage(str(a)) if isinstance(a, Path) else a
    b = sitk.ReadImage(str(b)) if isinstance(b, Path) else b
    return same_geometry(a, b) and np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


# ---------------------------------------------------------------- ACDC

def make_acdc(root: Path, bad_label_in: str | None = None) -> Path:
    db = root / "ACDC" / "database"
    frames = {"patient001": (1, 12), "patient002": (1, 10), "patient101": (1, 14)}
    for pid, (ed, es) in frames.items():
        split = "testing" if pid == "patient101" else "training"
        d = db / split / pid
        d.mkdir(parents=True)
        (d / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n")
        seed = int(pid[-3:])
        write(sitk.JoinSeries([vol(seed)] * 2), d / f"{pid}_4d.nii.gz")
        for f in (ed, es):
            write(vol(seed * 100 + f), d / f"{pid}_frame{f:02d}.nii.gz")
            lab = vol(seed * 100 + f, "label")
            if pid == bad_label_in and f == es:
                arr = sitk.GetArrayFromImage(lab)
                arr[0, 0, 0] = 5
                lab2 = sitk.GetImageFromArray(arr)
                lab2.CopyInformation(lab)
                lab = lab2
            write(lab, d / f"{pid}_frame{f:02d}_gt.nii.gz")
        write(vol(seed + 7), d / f"{pid}_frame05.nii.gz")  # an unlabelled frame: ignored
    return root


def test_acdc(tmp_path):
    src = make_acdc(tmp_path / "src")
    out = convert("acdc", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = json.loads((out / "dataset.json").read_text())
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
    assert meta["case_info"]["patient001_ED"] == {"group": "DCM"}


def test_acdc_bad_label_leaves_nothing(tmp_path):
    src = make_acdc(tmp_path / "src", bad_label_in="patient002")
    with pytest.raises(DicebenchError) as ei:
        convert("acdc", src, tmp_path / "work" / "out")
    assert "patient002_frame10_gt.nii.gz" in str(ei.value) and "[5]" in str(ei.value)
    assert list((tmp_path / "work").iterdir()) == []  # no output, no staging folder


def test_acdc_bad_info_cfg(tmp_path):
    src = make_acdc(tmp_path / "src")
    cfg = src / "ACDC" / "database" / "training" / "patient002" / "Info.cfg"
    cfg.write_text("Group: NOR\n")
    with pytest.raises(DicebenchError, match="Info.cfg: missing or invalid 'ED'"):
        convert("acdc", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- WMH

def make_wmh(root: Path) -> Path:
    cases = [("training/Utrecht/0", 1), ("training/Singapore/50", 2), ("training/GE3T/100", 3),
             ("test/Amsterdam/GE1T5/137", 4)]
    for rel, seed in cases:
        d = root / rel
        geo = dict(spacing=(0.96, 0.96, 3.0), origin=(-120.0, -90.0, 30.0))
        write(vol(seed, **geo), d / "pre" / "FLAIR.nii.gz")
        write(vol(seed + 10, **geo), d / "pre" / "T1.nii.gz")
        write(vol(seed + 20, shape=(5, 11, 8)), d / "orig" / "FLAIR.nii.gz")
        write(vol(seed, "label", values=3, dtype=np.float32, **geo), d / "wmh.nii.gz")  # float, as released
    return root


def test_wmh(tmp_path):
    src = make_wmh(tmp_path / "src")
    out = convert("wmh", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "FLAIR", "1": "T1"}
    assert meta["labels"] == {"background": 0, "WMH": 1, "other_pathology": 2}
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [
        "GE3T_100.nii.gz", "Singapore_50.nii.gz", "Utrecht_0.nii.gz"]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == ["GE1T5_137_0000.nii.gz", "GE1T5_137_0001.nii.gz"]
    assert meta["case_info"]["Singapore_50"] == {"site": "Singapore"}
    assert same_voxels(out / "imagesTr" / "Utrecht_0_0001.nii.gz", src / "training/Utrecht/0/pre/T1.nii.gz")
    lab = sitk.ReadImage(str(out / "labelsTr" / "GE3T_100.nii.gz"))
    ref = sitk.ReadImage(str(src / "training/GE3T/100/wmh.nii.gz"))
    assert lab.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(lab), sitk.GetArrayFromImage(ref).astype(np.uint8))
    assert 2 in np.unique(sitk.GetArrayFromImage(lab))  # other pathology kept as its own class


def test_wmh_flair_only_cli(tmp_path, capsys):
    src = make_wmh(tmp_path / "src")
    rc = main(["convert", "wmh2017", "--src", str(src), "--out", str(tmp_path / "out"), "--flair-only",
               "--max-cases", "2"])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "out"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "FLAIR"} and meta["numTraining"] == 2
    assert find_problems(out) == []
    rc = main(["convert", "wmh2017", "--src", str(src), "--out", str(out)])
    assert rc == 1 and "not empty" in capsys.readouterr().err


# ---------------------------------------------------------------- PROMISE12

def make_promise(root: Path) -> Path:
    for i in range(6):
        part = root / f"TrainingData_Part{i // 3 + 1}"
        geo = dict(spacing=(0.625, 0.625, 3.6), origin=(-80.0 + i, -60.0, 10.0), direction=OBLIQUE)
        write(vol(i, dtype=np.int16, **geo), part / f"Case{i:02d}.mhd")
        write(vol(i, "label", values=2, **geo), part / f"Case{i:02d}_segmentation.mhd")
    write(vol(99, dtype=np.int16), root / "TestData" / "Case30.mhd")  # unlabelled challenge test case
    return root


def test_promise12(tmp_path):
    src = make_promise(tmp_path / "src")
    assert (src / "TrainingData_Part1" / "Case00.raw").is_file()  # true .mhd/.raw pairs
    out = convert("promise12", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = json.loads((out / "dataset.json").read_text())
    # every 5th case in sorted order is held out as test
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["Case04.nii.gz"]
    assert meta["numTraining"] == 5 and "split_note" in meta
    src_img = sitk.ReadImage(str(src / "TrainingData_Part2" / "Case03.mhd"))
    assert same_voxels(out / "imagesTr" / "Case03_0000.nii.gz", src_img)
    assert np.allclose(sitk.ReadImage(str(out / "imagesTr" / "Case03_0000.nii.gz")).GetDirection(), OBLIQUE)
    assert same_voxels(out / "labelsTs" / "Case04.nii.gz", src / "TrainingData_Part2" / "Case04_segmentation.mhd")


# ---------------------------------------------------------------- MSD Task05

def make_msd(root: Path) -> Path:
    task = root / "Task05_Prostate"
    training = []
    for i in (0, 1, 2, 4, 6):
        t2, adc = vol(i, spacing=(0.6, 0.6, 4.0)), vol(i + 50, spacing=(0.6, 0.6, 4.0))
        write(sitk.JoinSeries([t2, adc]), task / "imagesTr" / f"prostate_{i:02d}.nii.gz")
        write(vol(i, "label", values=3, spacing=(0.6, 0.6, 4.0)), task / "labelsTr" / f"prostate_{i:02d}.nii.gz")
        (task / "imagesTr" / f"._prostate_{i:02d}.nii.gz").write_bytes(b"\x00\x05\x16\x07AppleDouble")
        training.append({"image": f"./imagesTr/prostate_{i:02d}.nii.gz", "label": f"./labelsTr/prostate_{i:02d}.nii.gz"})
    write(sitk.JoinSeries([vol(9), vol(10)]), task / "imagesTs" / "prostate_03.nii.gz")
    (task / "dataset.json").write_text(json.dumps({
        "name": "PROSTATE", "modality": {"0": "T2", "1": "ADC"},
        "labels": {"0": "background", "1": "PZ", "2": "TZ"}, "numTraining": 5, "numTest": 1,
        "training": training, "test": ["./imagesTs/prostate_03.nii.gz"]}))
    return root


def test_msd_prostate(tmp_path):
    src = make_msd(tmp_path / "src")
    out = convert("msd_prostate", src, tmp_path / "out")
    assert find_problems(out) == []
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T2", "1": "ADC"}
    assert meta["labels"] == {"background": 0, "PZ": 1, "TZ": 2}
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["prostate_04.nii.gz"]  # 4th of 5 sorted
    assert meta["numTraining"] == 4
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
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tar.parent), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
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
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 4


# ---------------------------------------------------------------- TotalSegmentator

ORGANS = {  # file -> (class index, box z0:z1, y0:y1, x0:x1)
    "liver": (3, (0, 5, 0, 6, 0, 5)),
    "spleen": (4, (0, 3, 6, 9, 5, 8)),
    "stomach": (5, (1, 4, 2, 5, 4, 8)),
    "gallbladder": (6, (2, 3, 1, 3, 1, 3)),
    "pancreas": (7, (3, 5, 4, 6, 2, 7)),
    "aorta": (1, (0, 5, 7, 8, 0, 2)),
    "portal_vein_and_splenic_vein": (2, (2, 4, 3, 4, 0, 8)),
    "kidney_left": (None, (0, 5, 8, 9, 6, 8)),
}


def make_totalseg(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "meta.csv").write_text(
        "image_id;age;gender;institute;study_type;split;manufacturer;scanner_model;kvp;pathology;pathology_location\n"
        "s0000;60;m;I;ct abdomen;train;Siemens;x;120;no;\n"
        "s0001;55;f;I;ct head;val;GE;x;120;no;\n"
        "s0002;70;m;I;ct abdomen-pelvis;test;Philips;x;120;no;\n")
    for sid in ("s0000", "s0001", "s0002"):
        d = root / sid
        ct = vol(int(sid[1:]), dtype=np.int16, spacing=(1.5, 1.5, 1.5), origin=(100.0, 80.0, -300.0),
                 direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
        write(ct, d / "ct.nii.gz")
        for organ, (_, (z0, z1, y0, y1, x0, x1)) in ORGANS.items():
            m = np.zeros(SHAPE, np.uint8)
            if sid != "s0001" or organ == "kidney_left":  # the head scan has no abdominal organ
                m[z0:z1, y0:y1, x0:x1] = 1
            im = sitk.GetImageFromArray(m)
            im.CopyInformation(ct)
            write(im, d / "segmentations" / f"{organ}.nii.gz")
    return root


def expected_totalseg() -> np.ndarray:
    """Independent reference: paint voxel by voxel, later classes of the documented order win."""
    lab = np.zeros(SHAPE, np.uint8)
    order = ["aorta", "portal_vein_and_splenic_vein", "liver", "spleen", "stomach", "gallbladder", "pancreas"]
    for organ in order:
        cls, (z0, z1, y0, y1, x0, x1) = ORGANS[organ]
        for z in range(z0, z1):
            for y in range(y0, y1):
                for x in range(x0, x1):
                    lab[z, y, x] = cls
    return lab


def test_totalsegmentator(tmp_path):
    src = make_totalseg(tmp_path / "Totalsegmentator_dataset_v201")
    out = convert("totalsegmentator", tmp_path, tmp_path / "out")
    assert find_problems(out) == []
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "artery": 1, "portal_vein": 2, "liver": 3, "spleen": 4,
                              "stomach": 5, "gallbladder": 6, "pancreas": 7}
    assert meta["skipped_cases"] == ["s0001"]  # the head scan has none of the seven classes
    assert meta["numTraining"] == 1 and meta["numTest"] == 1
    lab = sitk.ReadImage(str(out / "labelsTs" / "s0002.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(lab), expected_totalseg())
    assert same_voxels(out / "imagesTr" / "s0000_0000.nii.gz", src / "s0000" / "ct.nii.gz")
    assert same_geometry(lab, sitk.ReadImage(str(src / "s0002" / "ct.nii.gz")))


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
