"""class_stats: counts from labelsTr only, checked against a brute-force count, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dicebench.errors import DicebenchError
from dicebench.preprocessing.class_stats import compute_class_stats, load_class_stats

LABELS = {"background": 0, "organ": 1, "lesion": 2}


def _write_nifti(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))


def make_dataset(root: Path, train: dict[str, np.ndarray], test: dict[str, np.ndarray] | None = None,
                 labels: dict = LABELS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    meta = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": len(train), "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    for case, lab in train.items():
        _write_nifti(root / "imagesTr" / f"{case}_0000.nii.gz", lab.astype(np.float32))
        _write_nifti(root / "labelsTr" / f"{case}.nii.gz", lab)
    for case, lab in (test or {}).items():
        _write_nifti(root / "imagesTs" / f"{case}_0000.nii.gz", lab.astype(np.float32))
        _write_nifti(root / "labelsTs" / f"{case}.nii.gz", lab)
    return root


@pytest.fixture
def cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.choice(3, size=(6, 5, 4), p=[0.7, 0.25, 0.05]).astype(np.uint8)
    b = np.zeros((3, 4, 5), dtype=np.uint8)
    b[1, 1:3, 2:4] = 1  # class 2 absent in this case
    return {"case_001": a, "case_000": b}


def test_counts_match_brute_force_and_ignore_test_split(tmp_path, cases):
    test = {"case_100": np.full((4, 4, 4), 2, dtype=np.uint8)}  # would change class 2's count if read
    root = make_dataset(tmp_path / "Dataset001", cases, test)
    stats = compute_class_stats(root)
    assert stats["cases"] == ["case_000", "case_001"]
    assert stats["labels"] == LABELS and stats["num_classes"] == 3
    expected = [[int((cases[c] == k).sum()) for k in range(3)] for c in stats["cases"]]
    assert stats["voxels_per_case"] == expected
    assert stats["voxels_per_class"] == [sum(col) for col in zip(*expected)]
    assert stats["total_voxels"] == sum(v.size for v in cases.values())
    assert stats["presence"] == [[True, True, False], [True, True, True]]
    assert stats["dataset_json"].endswith("dataset.json")


def test_cli_writes_json_that_loads(tmp_path, cases):
    root = make_dataset(tmp_path / "ds", cases)
    out = tmp_path / "out" / "class_stats.json"
    proc = subprocess.run([sys.executable, "-m", "dicebench", "class-stats", "--dataset", str(root), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert load_class_stats(out) == compute_class_stats(root)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_label_out_of_range_names_the_file(tmp_path, cases):
    cases["case_001"][0, 0, 0] = 5
    root = make_dataset(tmp_path / "ds", cases)
    with pytest.raises(DicebenchError, match=r"case_001\.nii\.gz.*\[0, 5\].*3 classes"):
        compute_class_stats(root)


def test_cli_error_is_one_line(tmp_path, cases):
    cases["case_000"][0, 0, 0] = 7
    root = make_dataset(tmp_path / "ds", cases)
    proc = subprocess.run([sys.executable, "-m", "dicebench", "class-stats", "--dataset", str(root),
                           "--out", str(tmp_path / "o.json")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "case_000.nii.gz" in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_bad_dataset_json_and_missing_folder(tmp_path, cases):
    with pytest.raises(DicebenchError, match="dataset.json: file not found"):
        compute_class_stats(tmp_path)
    root = make_dataset(tmp_path / "ds", cases, labels={"background": 0, "organ": 2})
    with pytest.raises(DicebenchError, match="not 0..1"):
        compute_class_stats(root)
    root = make_dataset(tmp_path / "ds2", cases)
    meta = json.loads((root / "dataset.json").read_text())
    meta["numTraining"] = 5
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DicebenchError, match="numTraining is 5"):
        compute_class_stats(root)


def test_load_rejects_inconsistent_file(tmp_path, cases):
    stats = compute_class_stats(make_dataset(tmp_path / "ds", cases))
    stats["voxels_per_class"][0] += 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(stats))
    with pytest.raises(DicebenchError, match="bad.json: inconsistent"):
        load_class_stats(bad)
    (tmp_path / "trunc.json").write_text("{")
    with pytest.raises(DicebenchError, match="trunc.json: not valid JSON"):
        load_class_stats(tmp_path / "trunc.json")
