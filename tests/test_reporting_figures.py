"""Figures and the paper build on tiny inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dicebench.cli import main
from dicebench.reporting import figures, paper

REPO = Path(__file__).resolve().parents[1]


def test_pick_slice_is_the_one_with_most_foreground():
    lab = np.zeros((5, 4, 4), np.uint8)
    lab[1, :2, :2] = 1
    lab[3, :, :3] = 2
    assert figures.pick_slice(lab) == 3


def _cell(root: Path, variant: str) -> Path:
    d = root / "exp" / "ds" / "net" / variant / "lr0.01" / "seed0"
    d.mkdir(parents=True)
    return d


def test_learning_curves_png_and_pdf(tmp_path):
    logs = []
    for variant in ("weighted_dice-uniform", "weighted_dice-square"):
        d = _cell(tmp_path, variant)
        pd.DataFrame({"iteration": [1, 2, 3], "train_loss": [0.9, 0.7, 0.5], "val_dice": [0.1, 0.3, 0.5],
                      "lr": 0.01, "elapsed_s": [1, 2, 3]}).to_csv(d / "log.csv", index=False)
        (d / "cell.json").write_text(json.dumps({"settings": {"dataset": "ds", "network": "net"}}))
        logs.append(d / "log.csv")
    out = [tmp_path / "lc.png", tmp_path / "lc.pdf"]
    assert main(["figures", "learning-curves", "--logs", *map(str, logs), "--out", *map(str, out)]) == 0
    assert out[0].read_bytes()[:4] == b"\x89PNG" and out[1].read_bytes()[:4] == b"%PDF"


def test_qualitative_figure_from_a_phantom(tmp_path):
    ds = tmp_path / "synth_acdc"
    assert main(["synthesize", "--kind", "acdc", "--name", "synth_acdc", "--out", str(ds), "--n-train", "2",
                 "--n-test", "1", "--seed", "3", "--shape", "3", "24", "24"]) == 0
    preds = []
    for variant in ("dice-none", "mime-none"):
        p = _cell(tmp_path, variant) / "predictions"
        p.mkdir()
        for f in (ds / "labelsTs").glob("*.nii.gz"):
            shutil.copy(f, p / f.name)
        preds.append(p)
    out = [tmp_path / "q.png"]
    assert main(["figures", "qualitative", "--dataset-dir", str(ds), "--predictions", *map(str, preds),
                 "--out", *map(str, out)]) == 0
    assert out[0].stat().st_size > 1000
    assert main(["figures", "qualitative", "--dataset-dir", str(tmp_path / "nope"), "--predictions",
                 str(preds[0]), "--out", str(tmp_path / "x.png")]) == 1


def test_methods_come_from_the_config():
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    tex = paper.methods_tex(config)
    for name, exp in config["experiments"].items():
        assert name in tex and f"{exp['recipe']['iterations']} iterations" in tex


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk not installed (apt: latexmk texlive-latex-*)")
def test_paper_builds_with_tables_and_figures(tmp_path):
    table = tmp_path / "tables" / "t.tex"
    table.parent.mkdir()
    table.write_text("\\begin{table}[h]\\centering\\begin{tabular}{ll}\\toprule a & b\\\\\\bottomrule"
                     "\\end{tabular}\\caption{x}\\label{tab:claims}\\end{table}\n")
    fig = tmp_path / "qualitative" / "e" / "ds.png"
    fig.parent.mkdir(parents=True)
    import matplotlib.pyplot as plt

    plt.figure(figsize=(1, 1))
    plt.savefig(fig)
    plt.close("all")
    out = tmp_path / "paper.pdf"
    assert main(["paper", "--config", str(REPO / "config" / "config.yaml"), "--tex", str(REPO / "paper" / "paper.tex"),
                 "--tables", str(table), "--figures", str(fig), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"%PDF"


def test_autograd_dice_gradient_matches_eq2_and_has_two_values_per_class():
    import torch

    from dicebench.losses import dice_gradient_map

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3, 12, 10, generator=g, dtype=torch.float64), dim=0)
    label = torch.randint(0, 3, (12, 10), generator=g)
    onehot = torch.nn.functional.one_hot(label, 3).movedim(-1, 0).double()
    grad = figures.dice_gradient_autograd(probs, onehot)
    assert torch.allclose(grad, dice_gradient_map(probs[None], onehot[None])[0], atol=1e-12)
    for c in range(3):
        assert grad[c].unique().numel() == 2
        inter, union = (onehot[c] * probs[c]).sum(), (onehot[c] + probs[c]).sum()
        fg = grad[c][onehot[c] > 0][0]
        assert float(fg) == pytest.approx(float(-2 * (union - inter) / union**2))


def test_window_sums_and_empty_share_against_brute_force():
    rng = np.random.default_rng(0)
    lab = (rng.random((3, 9, 7)) < 0.05).astype(np.uint8) * 2
    sums = figures.window_sums(lab == 2, (1, 4, 3), (1, 2, 1))
    brute = np.array([[[(lab[z, y:y + 4, x:x + 3] == 2).sum() for x in range(0, 5, 1)] for y in range(0, 6, 2)]
                      for z in range(3)])
    assert np.array_equal(sums, brute)
    share = figures.empty_patch_share([lab], (4, 4), 3)
    b4 = figures.window_sums(lab == 2, (1, 4, 4), (1, 2, 2))
    assert share[2] == pytest.approx(np.mean(b4 == 0)) and share[1] == 1.0 and share[0] == 0.0


def test_lr_sensitivity_table_is_the_mean_over_cases(tmp_path):
    rows = []
    for lr, base in (("0.001", 0.2), ("0.01", 0.6)):
        for c in range(3):
            for k, name in enumerate(["background", "WMH", "other_pathology"]):
                rows.append({"experiment": "sudre2017", "dataset": "synth_wmh", "network": "unet2d", "loss": "gdl",
                             "weighting": "none", "lr": lr, "seed": 0, "case": f"c{c}", "class_index": k,
                             "class": name, "dsc": base + 0.1 * c + 0.05 * k, "hd95": 1.0,
                             "gt_voxels": [1000, 5, 20][k], "pred_voxels": 1})
    pd.DataFrame(rows).to_csv(tmp_path / "cases.csv", index=False)
    table = figures.lr_sensitivity(tmp_path / "cases.csv", [tmp_path / "s.png"])
    got = table.set_index("lr")["dsc"]
    assert got[0.001] == pytest.approx(100 * (0.2 + 0.1 + 0.075)) and got[0.01] == pytest.approx(100 * 0.775)
    assert table["level"].iloc[0] == "synth_wmh: WMH 0.49 %"  # 15 of 3075 voxels


def _sweep_cell(root: Path, exp: str, loss: str, patch: list[int], dsc: float, policy: str | None = None,
                empty: float = 0.5) -> Path:
    d = root / exp / "synth_acdc" / "enet2d" / f"{loss}-none" / "lr0.005" / "seed0"
    d.mkdir(parents=True)
    settings = {"experiment": exp, "dataset": "synth_acdc", "network": "enet2d", "loss": loss, "weighting": "none",
                "loss_params": {"empty_policy": policy} if policy else {}, "lr": 0.005, "seed": 0,
                "recipe": {"patch_size": patch}}
    (d / "cell.json").write_text(json.dumps({"settings": settings, "empty_patch_share": {
        "background": 0.0, "RV": empty, "MYO": empty / 2, "LV": empty}}))
    rows = [{"case": f"c{c}", "class_index": k, "class": name, "dsc": 1.0 if k == 0 else dsc + 0.1 * c * (k == 1),
             "hd95": 1.0} for c in range(2) for k, name in enumerate(["background", "RV", "MYO", "LV"])]
    pd.DataFrame(rows).to_csv(d / "per_case.csv", index=False)
    return d / "per_case.csv"


def test_subpatch_sweep_plots_trained_cells_against_patch_size(tmp_path):
    ds = tmp_path / "synth_acdc"
    assert main(["synthesize", "--kind", "acdc", "--name", "synth_acdc", "--out", str(ds), "--n-train", "2",
                 "--n-test", "1", "--seed", "3", "--shape", "4", "32", "32"]) == 0
    cells = [_sweep_cell(tmp_path, "k", "dice", [32, 32], 0.8, empty=0.0),
             _sweep_cell(tmp_path, "k", "mime", [32, 32], 0.7, empty=0.0),
             _sweep_cell(tmp_path, "k", "gdl", [32, 32], 0.6),
             _sweep_cell(tmp_path, "k_p16x16", "dice", [16, 16], 0.2, empty=0.6),
             _sweep_cell(tmp_path, "k_p16x16", "mime", [16, 16], 0.6, empty=0.6),
             _sweep_cell(tmp_path, "k_p16x16_gdl_zero", "gdl", [16, 16], 0.5, policy="zero", empty=0.6)]
    out, table_csv = [tmp_path / "s.png", tmp_path / "s.pdf"], tmp_path / "s.csv"
    assert main(["figures", "subpatch", "--experiment", "k", "--dataset", "synth_acdc", "--data-dir", str(ds),
                 "--patches", "8x8", "16x16", "32x32", "--configured", "32x32", "--per-case", *map(str, cells),
                 "--table", str(table_csv), "--out", *map(str, out)]) == 0
    assert out[0].read_bytes()[:4] == b"\x89PNG" and out[1].read_bytes()[:4] == b"%PDF"
    table = pd.read_csv(table_csv)
    trained = table.dropna(subset=["variant"]).set_index(["patch", "variant", "class"])
    # 'all' is the mean over the object classes per case, then over cases: RV gets +0.1 on case 1
    assert trained.loc[("16x16", "dice", "all"), "dsc"] == pytest.approx(0.2 + 0.05 / 3)
    assert trained.loc[("16x16", "dice", "RV"), "dsc"] == pytest.approx(0.25)
    assert trained.loc[("16x16", "gdl (zero)", "LV"), "dsc"] == pytest.approx(0.5)
    assert trained.loc[("32x32", "gdl (max)", "MYO"), "empty_share_trained"] == pytest.approx(0.25)
    assert set(trained.index.get_level_values("variant")) == {"dice", "mime", "gdl (max)", "gdl (zero)"}
    # The label scan covers every patch size asked, trained or not; smaller patches are emptier.
    scan = table.drop_duplicates(["patch", "class"]).set_index(["patch", "class"])["empty_share_scan"]
    for cls in ("RV", "MYO", "LV"):
        assert scan[("8x8", cls)] >= scan[("16x16", cls)] >= scan[("32x32", cls)]
    assert table.loc[table["patch"] == "8x8", "dsc"].isna().all()
    assert main(["figures", "subpatch", "--data-dir", str(ds), "--patches", "big", "--out", str(out[0])]) == 1
