"""Figures and the paper build on tiny inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dicebench.cli import main
from dicebench.reporting import analysis, figures, paper

REPO = Path(__file__).resolve().parents[1]


CONVERGED = {"converged": True, "rule": "the last quarter's best validation DSC is within 0.01 of the best",
             "best_val_dice": 0.5, "best_val_dice_last_quarter": 0.5, "loss_drop_last_quarter": 0.01}


def _cell(root: Path, variant: str, settings: dict | None = None, convergence: dict | None = None) -> Path:
    """A cell folder with its cell.json; the path follows the workflow's layout, but the
    figures read the identity from cell.json."""
    loss, weighting = variant.split("-")
    d = root / "exp" / "ds" / "net" / variant / "lr0.01" / "seed0"
    d.mkdir(parents=True)
    settings = {"experiment": "exp", "dataset": "ds", "network": "net", "loss": loss, "weighting": weighting,
                "lr": 0.01, "seed": 0, "recipe": {"patch_size": [32, 32]}, **(settings or {})}
    (d / "cell.json").write_text(json.dumps({"settings": settings,
                                             **({"convergence": convergence} if convergence else {})}))
    return d


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn in a test, kept open instead of written."""
    figs = []
    monkeypatch.setattr(figures, "save", lambda fig, outs: figs.append(fig))
    yield figs
    import matplotlib.pyplot as plt

    for f in figs:
        plt.close(f)


def _log(d: Path, val: list, loss=(0.9, 0.7, 0.5, 0.45)) -> Path:
    pd.DataFrame({"iteration": [10, 20, 30, 40], "train_loss": list(loss), "val_dice": val, "lr": 0.01,
                  "elapsed_s": [1, 2, 3, 4]}).to_csv(d / "log.csv", index=False)
    return d / "log.csv"


def test_learning_curves_png_and_pdf(tmp_path):
    logs = []
    for variant in ("weighted_dice-uniform", "weighted_dice-square"):
        logs.append(_log(_cell(tmp_path, variant), [None, 0.3, None, 0.5]))
    out = [tmp_path / "lc.png", tmp_path / "lc.pdf"]
    assert main(["figures", "learning-curves", "--logs", *map(str, logs), "--out", *map(str, out)]) == 0
    assert out[0].read_bytes()[:4] == b"\x89PNG" and out[1].read_bytes()[:4] == b"%PDF"
    (logs[0].parent / "cell.json").write_text("{}")
    assert main(["figures", "learning-curves", "--logs", *map(str, logs), "--out", str(out[0])]) == 1
    with pytest.raises(SystemExit):  # each figure takes only its own arguments
        main(["figures", "learning-curves", "--logs", str(logs[1]), "--cases", "x.csv", "--out", str(out[0])])


def test_learning_curves_one_panel_per_dataset_lr_and_loss_with_every_seed(tmp_path, drawn):
    from dicebench.reporting import style

    logs = []
    for ds in ("ds_a", "ds_b"):
        for variant in ("dice-none", "mime-none"):
            for seed, conv in ((0, CONVERGED), (1, {**CONVERGED, "converged": False}), (2, None)):
                d = _cell(tmp_path / ds / str(seed), variant, {"dataset": ds, "seed": seed}, conv)
                logs.append(_log(d, [None, 0.3 + 0.1 * seed, None, 0.2]))
    curves = analysis.learning_curve_data(logs)
    figures.learning_curves(curves, analysis.run_summary(curves), [tmp_path / "x.png"])
    (fig,) = drawn
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 4  # (ds_a, ds_b) x (dice, mime), lr 0.01
    titles = sorted(ax.get_title() for ax in titled)
    assert titles[0].startswith("dice: ds_a, lr 0.01")
    assert "converged: seed 0; not converged: seed 1; not recorded: seed 2" in titles[0]
    dice_a = next(ax for ax in titled if ax.get_title().startswith("dice: ds_a"))
    twin = next(ax for ax in fig.axes if ax is not dice_a and ax.bbox.bounds == dice_a.bbox.bounds)
    val_lines = [ln for ln in twin.get_lines() if ln.get_marker() != style.BEST_MARKER]
    assert len(val_lines) == 3  # every seed
    styles = {ln.get_marker(): ln.get_linestyle() for ln in val_lines}
    assert styles == {"o": "-", "s": "--", "D": "-"}  # seed 1 did not converge: dashed
    assert {ln.get_color() for ln in val_lines} == {style.loss_colour("dice")}
    stars = [ln for ln in twin.get_lines() if ln.get_marker() == style.BEST_MARKER]
    best = sorted((float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in stars)
    assert best == [(20.0, pytest.approx(0.3)), (20.0, pytest.approx(0.4)), (20.0, pytest.approx(0.5))]
    key = {t.get_text() for lg in fig.legends for t in lg.get_texts()}
    assert {"seed 0", "seed 1", "seed 2", "dashed: not converged", "best validation DSC"} <= key
    assert any("Convergence rule: " + CONVERGED["rule"] in t.get_text() for t in fig.texts)


def test_qualitative_figure_from_a_phantom(tmp_path, drawn):
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
    (fig,) = drawn
    assert [ax.get_title() for ax in fig.axes] == ["image", "ground truth", "dice, lr 0.01", "mime, lr 0.01"]
    assert main(["figures", "qualitative", "--dataset-dir", str(tmp_path / "nope"), "--predictions",
                 str(preds[0]), "--out", str(tmp_path / "x.png")]) == 1


def test_qualitative_figure_is_written(tmp_path):
    ds = tmp_path / "synth_acdc"
    assert main(["synthesize", "--kind", "acdc", "--name", "synth_acdc", "--out", str(ds), "--n-train", "2",
                 "--n-test", "1", "--seed", "3", "--shape", "3", "24", "24"]) == 0
    p = _cell(tmp_path, "dice-none") / "predictions"
    shutil.copytree(ds / "labelsTs", p)
    out = [tmp_path / "q.png", tmp_path / "q.pdf"]
    assert main(["figures", "qualitative", "--dataset-dir", str(ds), "--predictions", str(p),
                 "--out", *map(str, out)]) == 0
    assert out[0].stat().st_size > 1000 and out[1].read_bytes()[:4] == b"%PDF"


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


def test_gradient_map_cli_on_a_tiny_model(tmp_path, capsys, drawn):
    import torch

    from dicebench.networks import get_network

    ds = tmp_path / "synth_acdc"
    assert main(["synthesize", "--kind", "acdc", "--name", "synth_acdc", "--out", str(ds), "--n-train", "2",
                 "--n-test", "1", "--seed", "3", "--shape", "2", "32", "32"]) == 0
    torch.manual_seed(0)
    meta = {"network": "unet2d", "network_params": {"width": 4}, "in_channels": 1, "num_classes": 4,
            "patch_size": [32, 32], "dims": 2, "labels": {"background": 0, "RV": 1, "MYO": 2, "LV": 3}}
    torch.save({"state_dict": get_network("unet2d", 1, 4, width=4).state_dict(), "meta": json.dumps(meta)},
               tmp_path / "model.pt")
    capsys.readouterr()
    assert main(["figures", "gradient-map", "--model", str(tmp_path / "model.pt"), "--data-dir", str(ds),
                 "--out", str(tmp_path / "g.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["background", "RV", "MYO", "LV"]
    for ln in lines:  # eq. (2): two values per class, autograd equal to the closed form
        assert "(2 distinct values)" in ln and float(ln.rsplit("= ", 1)[1]) < 1e-12
    (fig,) = drawn
    assert [ax.get_title().split("\n")[0] for ax in fig.axes][1:] == ["background", "RV", "MYO", "LV"]


def test_lr_sensitivity_cli_writes_the_seed_aware_table(tmp_path, drawn):
    from dicebench.reporting import style

    rows = []
    for loss, lr, seed, base in (("gdl", "0.001", 0, 0.2), ("gdl", "0.001", 1, 0.4), ("gdl", "0.01", 0, 0.6),
                                 ("dice", "0.01", 0, 0.5)):
        for c in range(3):
            for k, name in enumerate(["background", "WMH", "other_pathology"]):
                rows.append({"experiment": "sudre2017", "dataset": "synth_wmh", "network": "unet2d", "loss": loss,
                             "weighting": "none", "lr": lr, "seed": seed, "case": f"c{c}", "class_index": k,
                             "class": name, "dsc": base + 0.1 * c + 0.05 * k, "hd95": 1.0,
                             "gt_voxels": [1000, 5, 20][k], "pred_voxels": 1,
                             "loss_variant": "gdl (max)" if loss == "gdl" else loss})
    pd.DataFrame(rows).to_csv(tmp_path / "cases.csv", index=False)
    assert main(["figures", "lr-sensitivity", "--cases", str(tmp_path / "cases.csv"), "--table",
                 str(tmp_path / "t.csv"), "--out", str(tmp_path / "s.png")]) == 0
    table = pd.read_csv(tmp_path / "t.csv").set_index(["loss_variant", "lr"])
    assert table.loc[("gdl (max)", 0.001), "dsc"] == pytest.approx(100 * (0.3 + 0.1 + 0.075))
    assert table.loc[("gdl (max)", 0.001), "n_seeds"] == 2 and np.isnan(table.loc[("gdl (max)", 0.01), "sd"])
    assert table.loc[("gdl (max)", 0.01), "dsc"] == pytest.approx(100 * 0.775)
    assert table.loc[("dice", 0.01), "dsc"] == pytest.approx(100 * (0.5 + 0.1 + 0.075))
    assert set(table["level"]) == {"synth_wmh: WMH 0.49 %"}  # 15 of 3075 voxels
    (fig,) = drawn
    colours = {c.get_label(): c.lines[0].get_color() for c in fig.axes[0].containers}
    assert colours == {"gdl (max)": style.loss_colour("gdl (max)"), "dice": style.loss_colour("dice")}
    assert "1-2 seeds per point" in fig._suptitle.get_text()
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"gdl (max)", "dice"}


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


def test_every_loss_variant_has_its_own_fixed_colour():
    from dicebench.losses import LOSSES
    from dicebench.losses.dice import WEIGHTINGS
    from dicebench.losses.gdl import EMPTY_POLICIES
    from dicebench.reporting import style
    from dicebench.reporting.results import loss_variant

    variants = ([name for name in LOSSES if name not in ("gdl", "weighted_dice")]
                + [f"gdl ({p})" for p in EMPTY_POLICIES] + [f"weighted_dice-{w}" for w in WEIGHTINGS])
    colours = [style.loss_colour(v) for v in variants]
    assert style.UNKNOWN_COLOUR not in colours and len(set(colours)) == len(variants)
    # the names as the results name them
    assert style.loss_colour(loss_variant({"loss": "gdl"})) == style.LOSS_COLOURS["gdl (max)"]
    square = loss_variant({"loss": "weighted_dice", "weighting": "square"})
    assert style.loss_colour(square) == style.LOSS_COLOURS["weighted_dice-square"]
    assert style.loss_colour("wce-other") == style.LOSS_COLOURS["wce"]
    assert style.loss_colour("a_new_loss") == style.UNKNOWN_COLOUR


def test_subpatch_lines_take_the_loss_colours_and_the_class_colours(drawn):
    from dicebench.reporting import style

    scan = pd.DataFrame({"patch": ["8x8", "16x16", "8x8", "16x16"], "voxels": [64, 256, 64, 256],
                         "class_index": [3, 3, 1, 1], "class": ["LV", "LV", "RV", "RV"],  # ACDC: MYO absent here
                         "empty_share_scan": [0.5, 0.2, 0.6, 0.3]})
    points = pd.DataFrame({"patch": "16x16", "voxels": 256, "variant": ["gdl (zero)", "mime", "gdl (zero)"],
                           "seed": 0, "class": ["all", "all", "RV"], "dsc": [0.5, 0.6, 0.4], "n_cases": 2,
                           "empty_share_trained": [0.25, 0.25, 0.3]})
    table = analysis.subpatch_table(scan, points)
    figures.subpatch(table, analysis.drawn_empty_share(points), [Path("unused.png")])
    (fig,) = drawn
    left, right = fig.axes[:2]
    assert {c.get_label(): c.lines[0].get_color() for c in right.containers} == {
        "gdl (zero)": style.loss_colour("gdl (zero)"), "mime": style.loss_colour("mime")}
    lines = {ln.get_label(): ln.get_color() for ln in left.get_lines() if ln.get_label().endswith("(labels)")}
    assert lines == {"RV (labels)": style.class_colour(1), "LV (labels)": style.class_colour(3)}  # as in overlays
