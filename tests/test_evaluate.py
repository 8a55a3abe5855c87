"""`dicebench evaluate`: per-case rows, the summary, the CLI on real NIfTI files, and its errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dicebench.cli import main
from dicebench.evaluation.evaluate import CASE_COLUMNS, SUMMARY_COLUMNS, evaluate_case, summarise
from dicebench.evaluation.metrics import hd95, hd95_pooled, scan_diagonal

LABELS = {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
SPACING_XYZ = (0.8, 1.3, 4.0)  # SimpleITK order; the arrays are (z, y, x)


def label_maps(seed: int, shape=(6, 14, 16)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.uint8)
    gt[1:4, 2:7, 3:9] = 1
    gt[2:5, 8:12, 5:12] = 2
    gt[1:3, 3:6, 11:15] = 3
    pred = gt.copy()
    flip = rng.random(shape) < 0.08
    pred[flip] = rng.integers(0, 4, int(flip.sum()))
    return pred, gt


def write(arr: np.ndarray, path: Path, spacing=SPACING_XYZ, origin=(0.0, 0.0, 0.0), direction=None) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


@pytest.fixture
def cell(tmp_path):
    """Two cases: prediction and truth written as NIfTI, plus dataset.json."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    arrays = {}
    for i, case in enumerate(["case_a", "case_b"]):
        pred, gt = label_maps(i)
        if case == "case_b":
            pred[pred == 3] = 0  # LV missed entirely
        write(gt, gt_dir / f"{case}.nii.gz")
        write(pred, pred_dir / f"{case}.nii.gz")
        arrays[case] = (pred, gt)
    ds = tmp_path / "dataset.json"
    ds.write_text(json.dumps({"name": "t", "labels": LABELS}))
    return tmp_path, gt_dir, pred_dir, ds, arrays


def run_cli(tmp_path, gt_dir, pred_dir, ds, *extra, out="out") -> int:
    return main(["evaluate", "--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir), "--dataset-json", str(ds),
                 "--cases-out", str(tmp_path / out / "per_case.csv"), "--out", str(tmp_path / out / "metrics.csv"),
                 *extra])


def test_evaluate_case_rows():
    pred, gt = label_maps(0)
    sp = (4.0, 1.3, 0.8)
    rows = evaluate_case(pred, gt, sp, LABELS, case="c")
    assert [r["class"] for r in rows] == ["background", "RV", "MYO", "LV"]
    assert [r["class_index"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        k = r["class_index"]
        p, g = pred == k, gt == k
        assert r["case"] == "c"
        assert r["gt_voxels"] == g.sum() and r["pred_voxels"] == p.sum()
        assert r["dsc"] == pytest.approx(2 * (p & g).sum() / (p.sum() + g.sum()))
        assert r["diagonal_mm"] == pytest.approx(scan_diagonal(gt.shape, sp))
        if k == 0:
            assert math.isnan(r["hd95"]) and math.isnan(r["hd95_pooled"])
        else:
            assert r["hd95"] == pytest.approx(hd95(p, g, sp), rel=1e-12) and r["hd95"] > 0
            assert r["hd95_pooled"] == pytest.approx(hd95_pooled(p, g, sp), rel=1e-12) and r["hd95_pooled"] > 0
    assert set(rows[0]) == set(CASE_COLUMNS)
    assert "case" not in evaluate_case(pred, gt, sp, [0, 1])[0]


def test_evaluate_case_empty_classes():
    gt = np.zeros((3, 5, 6), np.uint8)
    gt[1, 1:3, 1:3] = 1
    pred = np.zeros_like(gt)
    pred[0, 0, 0] = 2  # class 2 predicted where there is none; class 1 missed; class 3 absent from both
    sp = (2.0, 1.0, 0.5)
    rows = {r["class_index"]: r for r in evaluate_case(pred, gt, sp, LABELS)}
    diag = scan_diagonal(gt.shape, sp)
    assert rows[1]["dsc"] == 0.0 and rows[1]["hd95"] == rows[1]["hd95_pooled"] == pytest.approx(diag)
    assert rows[2]["dsc"] == 0.0 and rows[2]["hd95"] == rows[2]["hd95_pooled"] == pytest.approx(diag)
    assert rows[3]["dsc"] == 1.0 and rows[3]["hd95"] == rows[3]["hd95_pooled"] == 0.0
    assert all(r["diagonal_mm"] == pytest.approx(diag) for r in rows.values())


def test_summarise_hand_computed():
    rows = pd.DataFrame(
        [
            ("a", 0, "background", 0.99, float("nan")),
            ("a", 1, "x", 0.8, 2.0),
            ("a", 2, "y", 0.6, 4.0),
            ("b", 0, "background", 0.97, float("nan")),
            ("b", 1, "x", 0.4, 6.0),
            ("b", 2, "y", 1.0, 0.0),
            ("c", 0, "background", 0.98, float("nan")),
            ("c", 1, "x", 0.6, 1.0),
            ("c", 2, "y", 0.2, 9.0),
        ],
        columns=["case", "class_index", "class", "dsc", "hd95"],
    )
    s = summarise(rows)
    assert list(s.columns) == SUMMARY_COLUMNS
    assert s["class"].tolist() == ["background", "x", "y", "all"]
    assert s["class_index"].tolist() == [0, 1, 2, -1]
    assert s["n_cases"].tolist() == [3, 3, 3, 3]
    by = s.set_index("class")
    assert by.loc["x", "dsc_mean"] == pytest.approx(0.6)
    assert by.loc["x", "dsc_std"] == pytest.approx(np.std([0.8, 0.4, 0.6], ddof=1))
    assert by.loc["y", "hd95_mean"] == pytest.approx(13 / 3)
    assert math.isnan(by.loc["background", "hd95_mean"])
    # all: per case mean over object classes (0.7, 0.7, 0.4; 3, 3, 5), then over cases
    assert by.loc["all", "dsc_mean"] == pytest.approx(0.6)
    assert by.loc["all", "dsc_std"] == pytest.approx(np.std([0.7, 0.7, 0.4], ddof=1))
    assert by.loc["all", "hd95_mean"] == pytest.approx(11 / 3)
    assert by.loc["all", "hd95_std"] == pytest.approx(np.std([3.0, 3.0, 5.0], ddof=1))


def test_cli_writes_both_csvs(cell):
    tmp_path, gt_dir, pred_dir, ds, arrays = cell
    assert run_cli(tmp_path, gt_dir, pred_dir, ds) == 0
    per_case = pd.read_csv(tmp_path / "out" / "per_case.csv")
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert list(per_case.columns) == CASE_COLUMNS and len(per_case) == 8
    assert list(metrics.columns) == SUMMARY_COLUMNS and metrics["class"].tolist() == ["background", "RV", "MYO", "LV", "all"]
    sp_zyx = SPACING_XYZ[::-1]  # the array's axis order
    for case, (pred, gt) in arrays.items():
        for k in (1, 2, 3):
            row = per_case[(per_case["case"] == case) & (per_case["class_index"] == k)].iloc[0]
            assert row["hd95"] == pytest.approx(hd95(pred == k, gt == k, sp_zyx), rel=1e-6)  # NIfTI stores spacing as float32
            assert row["hd95_pooled"] == pytest.approx(hd95_pooled(pred == k, gt == k, sp_zyx), rel=1e-6)
            assert row["diagonal_mm"] == pytest.approx(scan_diagonal((6, 14, 16), sp_zyx), rel=1e-6)
            assert row["gt_voxels"] == (gt == k).sum() and row["pred_voxels"] == (pred == k).sum()
    lv_b = per_case[(per_case["case"] == "case_b") & (per_case["class"] == "LV")].iloc[0]
    assert lv_b["dsc"] == 0.0 and lv_b["hd95"] == pytest.approx(scan_diagonal((6, 14, 16), sp_zyx))
    pd.testing.assert_frame_equal(metrics, summarise(per_case), check_dtype=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.csv", "per_case.csv"]  # no temp left


def test_two_threads_give_the_same_csvs(cell):
    tmp_path, gt_dir, pred_dir, ds, arrays = cell
    for i in range(2, 5):  # more cases than threads
        pred, gt = label_maps(10 + i)
        write(gt, gt_dir / f"case_{i}.nii.gz")
        write(pred, pred_dir / f"case_{i}.nii.gz")
    assert run_cli(tmp_path, gt_dir, pred_dir, ds, "--threads", "1", out="one") == 0
    assert run_cli(tmp_path, gt_dir, pred_dir, ds, "--threads", "2", out="two") == 0
    for name in ("per_case.csv", "metrics.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert pd.read_csv(tmp_path / "two" / "per_case.csv")["case"].unique().tolist() == [
        "case_2", "case_3", "case_4", "case_a", "case_b"]


def test_error_in_a_threaded_run_is_one_line(cell, capsys):
    tmp_path, gt_dir, pred_dir, ds, arrays = cell
    pred, _ = arrays["case_b"]
    write(pred, pred_dir / "case_b.nii.gz", spacing=(0.8, 1.3, 5.0))
    assert run_cli(tmp_path, gt_dir, pred_dir, ds, "--threads", "2") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "geometry" in err and str(pred_dir / "case_b.nii.gz") in err
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_spacing_is_read_from_the_image_in_array_order(cell):
    """Swapping x and z spacing in the files changes HD95: the reader does not ignore or mix them up."""
    tmp_path, gt_dir, pred_dir, ds, arrays = cell
    for d in (gt_dir, pred_dir):
        for case, (pred, gt) in arrays.items():
            write(gt if d == gt_dir else pred, d / f"{case}.nii.gz", spacing=SPACING_XYZ[::-1])
    assert run_cli(tmp_path, gt_dir, pred_dir, ds) == 0
    per_case = pd.read_csv(tmp_path / "out" / "per_case.csv")
    pred, gt = arrays["case_a"]
    row = per_case[(per_case["case"] == "case_a") & (per_case["class_index"] == 1)].iloc[0]
    assert row["hd95"] == pytest.approx(hd95(pred == 1, gt == 1, SPACING_XYZ), rel=1e-6)  # NIfTI stores spacing as float32
    assert row["hd95"] != pytest.approx(hd95(pred == 1, gt == 1, SPACING_XYZ[::-1]), rel=1e-6)


def expect_error(capsys, tmp_path, gt_dir, pred_dir, ds, *needles) -> str:
    assert run_cli(tmp_path, gt_dir, pred_dir, ds) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for n in needles:
        assert n in err
    assert not (tmp_path / "out" / "metrics.csv").exists()
    return err


def test_missing_prediction_is_an_error(cell, capsys):
    tmp_path, gt_dir, pred_dir, ds, _ = cell
    (pred_dir / "case_b.nii.gz").unlink()
    expect_error(capsys, tmp_path, gt_dir, pred_dir, ds, str(pred_dir / "case_b.nii.gz"), "missing")


@pytest.mark.parametrize(
    "change",
    [
        {"spacing": (0.8, 1.3, 5.0)},
        {"origin": (0.0, 2.0, 0.0)},
        {"direction": (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)},
        {"shape": (6, 14, 15)},
    ],
)
def test_geometry_mismatch_is_an_error(cell, capsys, change):
    tmp_path, gt_dir, pred_dir, ds, arrays = cell
    pred, _ = arrays["case_a"]
    if "shape" in change:
        pred = pred[:, :, :15].copy()
    write(pred, pred_dir / "case_a.nii.gz", spacing=change.get("spacing", SPACING_XYZ),
          origin=change.get("origin", (0.0, 0.0, 0.0)), direction=change.get("direction"))
    expect_error(capsys, tmp_path, gt_dir, pred_dir, ds, str(pred_dir / "case_a.nii.gz"), "geometry")


def test_unknown_label_and_corrupt_file_are_errors(cell, capsys):
    tmp_path, gt_dir, pred_dir, ds, arrays = cell
    pred, _ = arrays["case_a"]
    bad = pred.copy()
    bad[0, 0, 0] = 7
    write(bad, pred_dir / "case_a.nii.gz")
    expect_error(capsys, tmp_path, gt_dir, pred_dir, ds, str(pred_dir / "case_a.nii.gz"), "7")
    (pred_dir / "case_a.nii.gz").write_bytes(b"\x1f\x8b not really a gzip")
    expect_error(capsys, tmp_path, gt_dir, pred_dir, ds, str(pred_dir / "case_a.nii.gz"))


@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "JSON"),
        (json.dumps({"name": "t"}), "labels"),
        (json.dumps({"labels": {"RV": 1, "LV": 2}}), "background"),
        (json.dumps({"labels": {"background": 0, "RV": "1"}}), "RV"),
    ],
)
def test_bad_dataset_json_is_an_error(cell, capsys, content, needle):
    tmp_path, gt_dir, pred_dir, ds, _ = cell
    ds.write_text(content)
    expect_error(capsys, tmp_path, gt_dir, pred_dir, ds, str(ds), needle)


def test_float_label_maps_with_integer_values_are_accepted(cell):
    tmp_path, gt_dir, pred_dir, ds, arrays = cell
    pred, _ = arrays["case_a"]
    write(pred.astype(np.float32), pred_dir / "case_a.nii.gz")
    assert run_cli(tmp_path, gt_dir, pred_dir, ds) == 0


def test_threads_must_be_positive(cell, capsys):
    tmp_path, gt_dir, pred_dir, ds, _ = cell
    with pytest.raises(SystemExit) as exc:
        run_cli(tmp_path, gt_dir, pred_dir, ds, "--threads", "0")
    assert exc.value.code == 2 and "--threads: must be an integer >= 1" in capsys.readouterr().err
