"""The numbers behind the figures (`reporting.analysis`), against hand computation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dicebench.errors import DicebenchError
from dicebench.reporting import analysis

RULE = "converged if the last quarter's best validation DSC is within 0.01 of the best"


def _settings(**over) -> dict:
    s = {"experiment": "exp", "dataset": "synth_acdc", "network": "enet2d", "loss": "dice", "weighting": "none",
         "lr": 0.01, "seed": 0, "recipe": {"patch_size": [32, 32]}}
    return {**s, **over}


def _log_cell(folder: Path, log: dict, settings: dict, convergence: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame(log).to_csv(folder / "log.csv", index=False)
    cell = {"settings": settings, **({"convergence": convergence} if convergence is not None else {})}
    (folder / "cell.json").write_text(json.dumps(cell))
    return folder / "log.csv"


LOG = {"iteration": [10, 20, 30, 40, 50, 60], "train_loss": [0.9, 0.8, 0.6, 0.5, 0.45, 0.44],
       "val_dice": [None, 0.3, None, 0.6, None, 0.55], "lr": 0.01}


# ---------------------------------------------------------------- learning curves


def test_learning_curves_name_each_run_from_cell_json_not_from_its_path(tmp_path):
    # The folder names say dice, lr 0.5, seed 9, dataset 'wrong': cell.json says otherwise.
    misleading = tmp_path / "wrong" / "wrong" / "net" / "dice-none" / "lr0.5" / "seed9"
    conv = {"converged": False, "rule": RULE, "best_val_dice": 0.6, "best_val_dice_last_quarter": 0.55,
            "loss_drop_last_quarter": 0.0222}
    a = _log_cell(misleading, LOG, _settings(loss="gdl", loss_params={"empty_policy": "zero"}, seed=2), conv)
    b = _log_cell(tmp_path / "b", LOG, _settings(dataset="synth_wmh", lr=0.001))
    curves = analysis.learning_curve_data([a, b])
    assert len(curves) == 12 and list(curves["iteration"][:6]) == LOG["iteration"]
    first = curves[curves["cell"] == str(misleading)]
    assert set(first["dataset"]) == {"synth_acdc"} and set(first["loss_variant"]) == {"gdl (zero)"}
    assert set(first["lr"]) == {"0.01"} and set(first["seed"]) == {2} and set(first["patch"]) == {"32x32"}
    assert first["converged"].notna().all() and not first["converged"].any()
    assert first["convergence_rule"].iloc[0] == RULE
    assert first["loss_drop_last_quarter"].iloc[0] == pytest.approx(0.0222)
    second = curves[curves["cell"] == str(b.parent)]
    assert set(second["dataset"]) == {"synth_wmh"} and set(second["lr"]) == {"0.001"}
    assert second["converged"].isna().all() and second["convergence_rule"].isna().all()
    # validation is logged less often than the loss: empty cells stay NaN
    assert first["val_dice"].isna().sum() == 3


def test_run_summary_best_validation_point_by_hand(tmp_path):
    a = _log_cell(tmp_path / "a", LOG, _settings(seed=0), {"converged": True, "rule": RULE})
    b = _log_cell(tmp_path / "b", LOG, _settings(seed=1), {"converged": False, "rule": RULE})
    c = _log_cell(tmp_path / "c", {**LOG, "val_dice": [None] * 6}, _settings(seed=2))
    runs = analysis.run_summary(analysis.learning_curve_data([a, b, c])).set_index("seed")
    assert runs.loc[0, "best_iteration"] == 40 and runs.loc[0, "best_val_dice"] == pytest.approx(0.6)
    assert runs.loc[0, "n_val_points"] == 3 and runs.loc[0, "final_train_loss"] == pytest.approx(0.44)
    assert list(runs["status"]) == ["converged", "not converged", "not recorded"]
    assert np.isnan(runs.loc[2, "best_iteration"]) and runs.loc[2, "n_val_points"] == 0


@pytest.mark.parametrize("damage", ["no_column", "text", "no_cell_json", "bad_convergence"])
def test_a_bad_training_log_is_one_error_naming_the_file(tmp_path, damage):
    log = {k: v for k, v in LOG.items() if not (damage == "no_column" and k == "val_dice")}
    if damage == "text":
        log["train_loss"] = ["x"] * 6
    conv = "yes" if damage == "bad_convergence" else None
    path = _log_cell(tmp_path / "cell", log, _settings(), conv)
    if damage == "no_cell_json":
        (path.parent / "cell.json").unlink()
    with pytest.raises(DicebenchError, match=str(path.parent)):
        analysis.learning_curve_data([path])


# ---------------------------------------------------------------- slices and predictions


def test_pick_slice_is_the_one_with_most_foreground():
    lab = np.zeros((5, 4, 4), np.uint8)
    lab[1, :2, :2] = 1
    lab[3, :, :3] = 2
    assert analysis.pick_slice(lab) == 3


def test_prediction_labels_come_from_cell_json(tmp_path):
    from dicebench.data.synthetic import synthesize
    import shutil

    ds = synthesize("acdc", tmp_path / "synth_acdc", n_train=2, n_test=2, seed=3, shape=(3, 16, 16))
    preds = []
    for i, settings in enumerate([_settings(loss="gdl", loss_params={"empty_policy": "zero"}),
                                  _settings(loss="weighted_dice", weighting="square", seed=1)]):
        cell = tmp_path / "exp" / "a" / "b" / "mime-none" / "lr9" / f"seed{i}"  # misleading path parts
        (cell / "predictions").mkdir(parents=True)
        (cell / "cell.json").write_text(json.dumps({"settings": settings}))
        for f in (ds / "labelsTs").glob("*.nii.gz"):
            shutil.copy(f, cell / "predictions" / f.name)
        preds.append(cell / "predictions")
    q = analysis.qualitative_data(ds, preds, case="synth_acdc_003")
    assert q.case == "synth_acdc_003"
    assert [name for name, _ in q.predictions] == ["gdl (zero), lr 0.01, seed 0",
                                                   "weighted_dice-square, lr 0.01, seed 1"]
    assert np.array_equal(q.predictions[0][1], q.label) and q.z == analysis.pick_slice(q.label)
    with pytest.raises(DicebenchError, match="no test case 'nope'"):
        analysis.qualitative_data(ds, preds, case="nope")
    (preds[1].parent / "cell.json").unlink()
    with pytest.raises(DicebenchError, match=str(preds[1].parent / "cell.json")):
        analysis.qualitative_data(ds, preds)


# ---------------------------------------------------------------- Dice gradient


def test_autograd_dice_gradient_matches_eq2_and_has_two_values_per_class():
    import torch

    from dicebench.losses import dice_gradient_map

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3, 12, 10, generator=g, dtype=torch.float64), dim=0)
    label = torch.randint(0, 3, (12, 10), generator=g)
    onehot = torch.nn.functional.one_hot(label, 3).movedim(-1, 0).double()
    grad = analysis.dice_gradient_autograd(probs, onehot)
    assert torch.allclose(grad, dice_gradient_map(probs[None], onehot[None])[0], atol=1e-12)
    for c in range(3):
        assert grad[c].unique().numel() == 2
        inter, union = (onehot[c] * probs[c]).sum(), (onehot[c] + probs[c]).sum()
        fg = grad[c][onehot[c] > 0][0]
        assert float(fg) == pytest.approx(float(-2 * (union - inter) / union**2))


def test_gradient_values_by_hand():
    import torch

    # one class-1 voxel of four; s = the softmax of two classes
    s1 = torch.tensor([[0.8, 0.1], [0.3, 0.2]], dtype=torch.float64)
    probs = torch.stack([1 - s1, s1])
    y1 = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    onehot = torch.stack([1 - y1, y1])
    grad, table = analysis.gradient_values(probs, onehot, {0: "background", 1: "lesion"})
    assert grad.shape == (2, 2, 2)
    row = table.set_index("class").loc["lesion"]
    inter, union = 0.8, 1 + (0.8 + 0.1 + 0.3 + 0.2)  # I = Σ y s, U = Σ (y + s)
    assert row["grad_where_y1"] == pytest.approx(-2 * (union - inter) / union**2)
    assert row["grad_where_y0"] == pytest.approx(2 * inter / union**2)
    assert row["distinct_values"] == 2 and row["max_abs_autograd_minus_eq2"] < 1e-15
    bg = table.set_index("class").loc["background"]
    inter_b, union_b = 0.9 + 0.7 + 0.8, 3 + (0.2 + 0.9 + 0.7 + 0.8)
    assert bg["grad_where_y1"] == pytest.approx(-2 * (union_b - inter_b) / union_b**2)


def test_only_one_hand_written_dice_gradient_in_the_package():
    """The closed form lives in losses.dice_gradient_map; analysis checks it by autograd through
    the package's own loss, not through a second hand-written Dice."""
    import inspect

    src = inspect.getsource(analysis.dice_gradient_autograd)
    assert "per_class_dice_loss" in src and "union" not in src


# ---------------------------------------------------------------- sub-patching


def test_window_sums_and_empty_share_against_brute_force():
    rng = np.random.default_rng(0)
    lab = (rng.random((3, 9, 7)) < 0.05).astype(np.uint8) * 2
    sums = analysis.window_sums(lab == 2, (1, 4, 3), (1, 2, 1))
    brute = np.array([[[(lab[z, y:y + 4, x:x + 3] == 2).sum() for x in range(0, 5, 1)] for y in range(0, 6, 2)]
                      for z in range(3)])
    assert np.array_equal(sums, brute)
    share = analysis.empty_patch_share([lab], (4, 4), 3)
    b4 = analysis.window_sums(lab == 2, (1, 4, 4), (1, 2, 2))
    assert share[2] == pytest.approx(np.mean(b4 == 0)) and share[1] == 1.0 and share[0] == 0.0


def test_empty_share_of_a_patch_larger_than_the_volume_pads_with_background():
    lab = np.zeros((1, 4, 4), np.uint8)
    lab[0, 0, 0] = 1
    # a 6x6 patch over a 4x4 slice: one window (after padding), which contains the voxel
    assert list(analysis.empty_patch_share([lab], (6, 6), 2)) == [0.0, 0.0]
    # 2x2 windows at stride 1: 9 windows, one contains the voxel
    assert analysis.empty_patch_share([lab], (2, 2), 2)[1] == pytest.approx(8 / 9)


def _points_cell(root: Path, name: str, settings: dict, dsc: dict[str, list[float]], shares: dict) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "cell.json").write_text(json.dumps({"settings": settings, "empty_patch_share": shares}))
    rows = [{"case": f"c{c}", "class_index": k, "class": cls, "dsc": v, "hd95": 1.0}
            for k, (cls, values) in enumerate(dsc.items()) for c, v in enumerate(values)]
    pd.DataFrame(rows).to_csv(d / "per_case.csv", index=False)
    return d / "per_case.csv"


def test_subpatch_table_by_hand(tmp_path):
    dsc = {"background": [1.0, 1.0], "RV": [0.2, 0.6], "LV": [0.4, 0.4]}
    cells = [_points_cell(tmp_path, "a", _settings(seed=0, recipe={"patch_size": [16, 16]}), dsc,
                          {"background": 0.0, "RV": 0.5, "LV": 0.3}),
             _points_cell(tmp_path, "b", _settings(seed=1, recipe={"patch_size": [16, 16]}),
                          {**dsc, "RV": [0.4, 0.8]}, {"background": 0.0, "RV": 0.7, "LV": None}),
             _points_cell(tmp_path, "c", _settings(loss="mime", recipe={"patch_size": [16, 16]}), dsc,
                          {"background": 0.0, "RV": 0.6, "LV": 0.2})]
    points = analysis.subpatch_points(cells)
    p = points.set_index(["variant", "seed", "class"])
    # 'all' = per case the mean over RV and LV, then the mean over cases: ((0.2+0.4)/2 + (0.6+0.4)/2) / 2
    assert p.loc[("dice", 0, "all"), "dsc"] == pytest.approx(0.4)
    assert p.loc[("dice", 0, "all"), "empty_share_trained"] == pytest.approx(0.4)  # mean of RV 0.5, LV 0.3
    assert p.loc[("dice", 1, "all"), "empty_share_trained"] == pytest.approx(0.7)  # LV not recorded
    assert np.isnan(p.loc[("dice", 1, "LV"), "empty_share_trained"])
    scan = pd.DataFrame({"patch": ["8x8", "8x8", "16x16", "16x16"], "voxels": [64, 64, 256, 256],
                         "class_index": [1, 3, 1, 3], "class": ["RV", "LV", "RV", "LV"],
                         "empty_share_scan": [0.9, 0.8, 0.6, 0.4]})
    table = analysis.subpatch_table(scan, points)
    assert list(table.columns) == analysis.SUBPATCH_COLUMNS
    t = table.dropna(subset=["variant"]).set_index(["variant", "class"])
    # RV over the two dice seeds: seed means 0.4 and 0.6
    assert t.loc[("dice", "RV"), "dsc"] == pytest.approx(0.5)
    assert t.loc[("dice", "RV"), "dsc_sd"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert t.loc[("dice", "RV"), "seeds"] == 2 and t.loc[("mime", "RV"), "seeds"] == 1
    assert t.loc[("dice", "RV"), "empty_share_scan"] == pytest.approx(0.6)
    assert table[table["patch"] == "8x8"]["variant"].isna().all()
    assert t.loc[("dice", "LV"), "class_index"] == 3 and np.isnan(t.loc[("dice", "all"), "class_index"])
    drawn = analysis.drawn_empty_share(points).set_index("class")["empty_share_trained"]
    assert drawn["RV"] == pytest.approx((0.5 + 0.7 + 0.6) / 3) and drawn["LV"] == pytest.approx(0.25)


# ---------------------------------------------------------------- learning-rate sensitivity


def _cases(values: dict[tuple[str, str, int], list[float]]) -> pd.DataFrame:
    """(loss, lr, seed) -> per-case WMH DSC; other_pathology is WMH + 0.1, background 1."""
    rows = []
    for (loss, lr, seed), per_case in values.items():
        for c, v in enumerate(per_case):
            for k, (name, dsc) in enumerate([("background", 1.0), ("WMH", v), ("other_pathology", v + 0.1)]):
                rows.append({"experiment": "sudre2017", "dataset": "synth_wmh", "network": "unet2d", "loss": loss,
                             "weighting": "none", "lr": lr, "seed": seed, "case": f"c{c}", "class_index": k,
                             "class": name, "dsc": dsc, "hd95": 1.0, "gt_voxels": [1000, 5, 20][k],
                             "pred_voxels": 1, "loss_variant": "gdl (max)" if loss == "gdl" else loss})
    return pd.DataFrame(rows)


def test_lr_sensitivity_is_the_mean_over_seeds_of_case_means():
    cases = _cases({("gdl", "0.001", 0): [0.2, 0.4, 0.6], ("gdl", "0.001", 1): [0.5, 0.5, 0.8],
                    ("gdl", "0.01", 0): [0.7, 0.7, 0.7], ("dice", "0.01", 0): [0.1, 0.3, 0.5]})
    table = analysis.lr_sensitivity_table(cases)
    assert list(table.columns) == analysis.LR_COLUMNS
    t = table.set_index(["loss_variant", "lr"])
    seed_means = [np.mean([0.2, 0.4, 0.6]) + 0.05, np.mean([0.5, 0.5, 0.8]) + 0.05]  # objects: WMH, WMH + 0.1
    assert t.loc[("gdl (max)", 0.001), "dsc"] == pytest.approx(100 * np.mean(seed_means))
    assert t.loc[("gdl (max)", 0.001), "sd"] == pytest.approx(100 * np.std(seed_means, ddof=1))
    assert t.loc[("gdl (max)", 0.001), "n_seeds"] == 2 and t.loc[("gdl (max)", 0.001), "n_cases"] == 3
    one = t.loc[("gdl (max)", 0.01)]
    assert one["n_seeds"] == 1 and np.isnan(one["sd"]) and one["dsc"] == pytest.approx(75.0)
    assert t.loc[("dice", 0.01), "dsc"] == pytest.approx(100 * (0.3 + 0.05))
    assert set(table["level"]) == {"synth_wmh: WMH 0.49 %"}  # 15 of 3075 voxels


def test_analysis_imports_no_drawing_code():
    """Imports flow one way: figures import analysis, never the reverse."""
    code = ("import sys, dicebench.reporting.analysis; "
            "bad = [m for m in ('matplotlib', 'dicebench.reporting.figures', 'dicebench.reporting.style') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_claims_forest_puts_every_claim_on_its_threshold_scale():
    claims = pd.DataFrame([
        {"id": "K1", "dataset": "d", "paper": "p", "test": "greater", "estimate": 5.0, "ci_lo": 1.0, "ci_hi": 9.0,
         "published": np.nan, "margin": 0.0, "verdict": "reproduced", "n_seeds": 3, "n_cases": 20},
        {"id": "L1", "dataset": "d", "paper": "p", "test": "at_least", "estimate": 80.0, "ci_lo": 78.0,
         "ci_hi": 82.0, "published": 86.42, "margin": 5.0, "verdict": "inconclusive", "n_seeds": 3, "n_cases": 20},
        {"id": "K2", "dataset": "d", "paper": "p", "test": "similar", "estimate": -2.0, "ci_lo": -4.0, "ci_hi": 1.0,
         "published": np.nan, "margin": 5.0, "verdict": "reproduced", "n_seeds": 3, "n_cases": 20},
        {"id": "S1", "dataset": "", "paper": "p", "test": "greater", "estimate": np.nan, "ci_lo": np.nan,
         "ci_hi": np.nan, "published": np.nan, "margin": 0.0, "verdict": "not run", "n_seeds": 0, "n_cases": 0},
    ])
    f = analysis.claims_forest(claims).set_index("label")
    assert list(f.index) == ["K1 d", "L1 d", "K2 d"]  # a row without an estimate is left out
    assert tuple(f.loc["K1 d", ["estimate", "lo", "hi"]]) == (5.0, 1.0, 9.0)
    assert tuple(f.loc["L1 d", ["estimate", "lo", "hi"]]) == pytest.approx((-1.42, -3.42, 0.58))
    assert tuple(f.loc["K2 d", ["estimate", "lo", "hi"]]) == (3.0, 1.0, 5.0)  # margin - |difference|
    assert f.loc["K1 d", "n"] == "3×20"
