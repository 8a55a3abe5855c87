"""The dataset validator: each kind of bad input gives one line naming the file and the problem."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dicebench.cli import main
from dicebench.data.check import check_dataset, find_problems
from dicebench.data.layout import case_paths, write_dataset_json
from dicebench.errors import DicebenchError

SHAPE = (6, 8, 10)  # z, y, x


def _img(arr: np.ndarray, spacing=(1.0, 1.2, 2.5), origin=(3.0, -4.0, 5.0)) -> sitk.Image:
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing(spacing)
    im.SetOrigin(origin)
    return im


def make_dataset(root: Path, n_tr: int = 2, n_ts: int = 1, channels: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for split, n, off in (("Tr", n_tr, 0), ("Ts", n_ts, n_tr)):
        for i in range(n):
            imgs, lab = case_paths(root, f"c{off + i:02d}", split, channels)
            for p in imgs:
                p.parent.mkdir(parents=True, exist_ok=True)
                sitk.WriteImage(_img(rng.normal(100, 10, SHAPE).astype(np.float32)), str(p))
            lab.parent.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(_img(rng.integers(0, 3, SHAPE).astype(np.uint8)), str(lab))
    write_dataset_json(root, "toy", {str(c): f"MR{c}" for c in range(channels)},
                       {"background": 0, "a": 1, "b": 2}, n_tr, numTest=n_ts)
    return root


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture
def ds(tmp_path) -> Path:
    return make_dataset(tmp_path / "ds")


def test_valid_dataset_and_synthetic_phantom_pass(ds, tmp_path):
    assert find_problems(ds) == []
    check_dataset(ds)
    from dicebench.data.synthetic import synthesize

    synth = synthesize("acdc", tmp_path / "synth", n_train=2, n_test=1, seed=1, shape=(6, 24, 24))
    assert find_problems(synth) == []


def _truncate(ds):
    p = ds / "imagesTr" / "c00_0000.nii.gz"
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) // 2])
    return p, "unreadable or truncated"


def _garbage(ds):
    p = ds / "labelsTr" / "c01.nii.gz"
    p.write_bytes(b"this is not a nifti file")
    return p, "unreadable or truncated"


def _uncompressed_truncated(ds):
    p = ds / "imagesTs" / "c02_0001.nii.gz"
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[: 352 + 100]))  # header intact, voxel data cut short
    return p, "unreadable or truncated"


def _sheared(ds):
    """A readable file whose direction cosines ITK refuses: told apart from a damaged one."""
    import nibabel as nib

    p = ds / "imagesTr" / "c00_0000.nii.gz"
    affine = np.array([[1.0, 0.0, 0.05, 0.0], [0.0, 1.2, 0.0, 0.0], [0.0, 0.03, 2.5, 0.0], [0, 0, 0, 1.0]])
    img = nib.Nifti1Image(np.ones(SHAPE[::-1], np.float32), affine)
    img.set_sform(affine, code=1)
    img.set_qform(None, code=0)
    nib.save(img, str(p))
    return p, "unsupported geometry: direction cosines are not orthonormal"


def _shape(ds):
    p = ds / "labelsTr" / "c00.nii.gz"
    sitk.WriteImage(_img(np.zeros((6, 8, 9), np.uint8)), str(p))
    return p, "shape"


def _geometry(ds):
    p = ds / "labelsTr" / "c01.nii.gz"
    sitk.WriteImage(_img(np.zeros(SHAPE, np.uint8), spacing=(1.0, 1.2, 3.0)), str(p))
    return p, "geometry"


def _channel_geometry(ds):
    p = ds / "imagesTr" / "c01_0001.nii.gz"
    sitk.WriteImage(_img(np.ones(SHAPE, np.float32), origin=(0.0, 0.0, 0.0)), str(p))
    return p, "geometry"


def _outside_classes(ds):
    p = ds / "labelsTs" / "c02.nii.gz"
    arr = np.zeros(SHAPE, np.uint8)
    arr[0, 0, 0] = 7
    sitk.WriteImage(_img(arr), str(p))
    return p, "label values [7] outside the classes"


def _non_integer(ds):
    p = ds / "labelsTr" / "c00.nii.gz"
    arr = np.zeros(SHAPE, np.float32)
    arr[1, 1, 1] = 0.5
    sitk.WriteImage(_img(arr), str(p))
    return p, "non-integer label"


def _nan(ds):
    p = ds / "imagesTr" / "c01_0000.nii.gz"
    arr = np.ones(SHAPE, np.float32)
    arr[2, 3, 4] = np.nan
    arr[0, 0, 0] = np.inf
    sitk.WriteImage(_img(arr), str(p))
    return p, "2 NaN or Inf intensities"


def _four_d(ds):
    p = ds / "imagesTr" / "c00_0001.nii.gz"
    vol = _img(np.ones(SHAPE, np.float32))
    sitk.WriteImage(sitk.JoinSeries([vol, vol]), str(p))
    return p, "4D image where 3D is expected"


def _missing_label(ds):
    p = ds / "labelsTr" / "c01.nii.gz"
    p.unlink()
    return p, "missing label"


def _missing_image(ds):
    p = ds / "imagesTs" / "c02_0001.nii.gz"
    p.unlink()
    return p, "missing image"


def _orphan_label(ds):
    src = ds / "labelsTr" / "c00.nii.gz"
    p = ds / "labelsTr" / "c09.nii.gz"
    p.write_bytes(src.read_bytes())
    return ds / "imagesTr" / "c09_0000.nii.gz", "missing image"


def _json_invalid(ds):
    p = ds / "dataset.json"
    p.write_text("{not json")
    return p, "invalid JSON"


def _json_missing_key(ds):
    p = ds / "dataset.json"
    meta = json.loads(p.read_text())
    del meta["labels"]
    p.write_text(json.dumps(meta))
    return p, "missing key(s) labels"


def _json_bad_background(ds):
    p = ds / "dataset.json"
    meta = json.loads(p.read_text())
    meta["labels"] = {"background": 1, "a": 2}
    p.write_text(json.dumps(meta))
    return p, "'background' to 0"


def _json_count(ds):
    p = ds / "dataset.json"
    meta = json.loads(p.read_text())
    meta["numTraining"] = 5
    p.write_text(json.dumps(meta))
    return p, "numTraining is 5 but imagesTr has 2"


def _json_channels(ds):
    p = ds / "dataset.json"
    meta = json.loads(p.read_text())
    meta["channel_names"] = {"0": "MR0"}
    p.write_text(json.dumps(meta))
    return ds / "imagesTr" / "c00_0001.nii.gz", "channel 1 but dataset.json has 1 channel", 3


def _json_missing(ds):
    p = ds / "dataset.json"
    p.unlink()
    return p, "missing dataset.json"


def _cases_disagree(ds):
    """A converter's "cases" list that misses a case on disk or names one that is not there."""
    p = ds / "dataset.json"
    meta = json.loads(p.read_text())
    meta["cases"] = {"c00": {"split": "Tr", "patient": "p0", "source": "x"},
                     "c02": {"split": "Tr", "patient": "p2", "source": "y"}}  # c02 is a test case
    p.write_text(json.dumps(meta))
    return p, "cases['c02'] is listed in split 'Tr' but not found", 2  # and c01 is unlisted


def _stray_file(ds):
    p = ds / "imagesTr" / "c00.nii.gz"
    p.write_bytes((ds / "imagesTr" / "c00_0000.nii.gz").read_bytes())
    return p, "CASE_XXXX"


CORRUPTIONS = [_truncate, _garbage, _uncompressed_truncated, _sheared, _shape, _geometry, _channel_geometry,
               _outside_classes, _non_integer, _nan, _four_d, _missing_label, _missing_image,
               _orphan_label, _json_invalid, _json_missing_key, _json_bad_background, _json_count,
               _json_channels, _json_missing, _cases_disagree, _stray_file]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.strip("_"))
def test_each_problem_is_named(ds, corrupt, capsys):
    path, expected, *n = corrupt(ds)
    before = _tree(ds)
    probs = find_problems(ds)
    assert len(probs) == (n[0] if n else 1), probs
    assert probs[0].startswith(str(path)) and expected in probs[0], probs[0]
    with pytest.raises(DicebenchError) as ei:
        check_dataset(ds)
    assert str(ei.value) == probs[0]
    rc = main(["check", str(ds)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.strip().splitlines() == [f"dicebench check: error: {q}" for q in probs]
    assert "Traceback" not in err
    assert _tree(ds) == before  # the validator writes nothing


def test_all_problems_listed_and_first_only(ds, capsys):
    _nan(ds)
    _missing_label(ds)
    _outside_classes(ds)
    probs = find_problems(ds)
    assert len(probs) == 3
    rc = main(["check", "--first", str(ds)])
    assert rc == 1 and len(capsys.readouterr().err.strip().splitlines()) == 1
    rc = main(["check", str(ds)])
    assert rc == 1 and len(capsys.readouterr().err.strip().splitlines()) == 3


def test_cli_ok_and_missing_folder(ds, tmp_path, capsys):
    assert main(["check", str(ds)]) == 0
    assert capsys.readouterr().out.strip() == f"{ds}: ok"
    assert main(["check", str(tmp_path / "nope")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err


def test_hidden_temporaries_are_ignored(ds):
    (ds / "imagesTr" / ".c00_0000.nii.gz.abc.tmp.nii.gz").write_bytes(b"partial")
    assert find_problems(ds) == []
