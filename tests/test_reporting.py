"""Tables beside the published numbers: transcription, layout, statistics, rendering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dicebench.reporting import paper_tables as pt
from dicebench.reporting import tables
from dicebench.reporting.stats import paired_wilcoxon

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "paper" / "published.yaml"
ACDC = ["background", "RV", "MYO", "LV"]
WMH = ["background", "WMH", "other_pathology"]
ABDOMEN = ["background", "artery", "portal_vein", "liver", "spleen", "stomach", "gallbladder", "pancreas"]


def make_cases(spec, n_cases=5, seeds=(0,), rng_seed=0) -> pd.DataFrame:
    """spec: list of (experiment, dataset, network, loss, weighting, lr, classes, dsc_by_class)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for exp, ds, net, loss, w, lr, classes, base in spec:
        for seed in seeds:
            for c in range(n_cases):
                for i, cl in enumerate(classes):
                    d = float(np.clip(base.get(cl, 0.7) + 0.05 * rng.standard_normal(), 0, 1))
                    rows.append({"experiment": exp, "dataset": ds, "network": net, "loss": loss, "weighting": w,
                                 "lr": lr, "seed": seed, "case": f"c{c}", "class_index": i, "class": cl,
                                 "dsc": d, "hd95": float(i + c), "gt_voxels": 1000 if i == 0 else 10 * i,
                                 "pred_voxels": 5})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def published():
    return pt.load_published(PUBLISHED)


# ------------------------------------------------------------- transcription


def test_published_has_every_cell_with_a_source(published):
    k = published[published["paper"] == "kervadec2023"]
    s = published[published["paper"] == "shen2018"]
    assert len(k) == 4 * 7 * 2 and len(s) == 11 * 6
    assert (published["source"].str.len() > 10).all()
    assert published.loc[published["paper"] == "liu2018", "value"].tolist() == [86.42]


def test_kervadec_all_column_is_the_mean_of_its_classes(published):
    """An internal check of the transcription: 'All' = mean over the object classes (+- rounding)."""
    k = published[(published["paper"] == "kervadec2023") & (published["metric"] == "dsc")]
    for (ds, loss), g in k.groupby(["dataset", "row"]):
        classes = g[g["column"] != "all"]["value"]
        assert abs(classes.mean() - g[g["column"] == "all"]["value"].item()) <= 0.1, (ds, loss)


def test_shen_avg_max_min_agree_with_the_class_rows(published):
    s = published[published["paper"] == "shen2018"]
    for (w, lr), g in s.groupby(["weighting", "lr"]):
        cls = g[~g["row"].isin(["AVG", "MAX", "MIN"])]["value"]
        assert len(cls) == 8
        avg = g[g["row"] == "AVG"]
        if (w, lr) == ("simple", "0.01"):  # the paper prints 88.9; its rows give 90.0 (noted in the file)
            assert "90.0" in avg["note"].item() and cls.mean() == pytest.approx(90.0125)
        else:
            assert abs(cls.mean() - avg["value"].item()) <= 0.1, (w, lr)
        assert cls.max() == g[g["row"] == "MAX"]["value"].item()
        assert cls.min() == g[g["row"] == "MIN"]["value"].item()


# ------------------------------------------------------------- statistics


def test_paired_wilcoxon_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.random(12), rng.random(12)
    stat, p, n = paired_wilcoxon(a, b)
    ref = sps.wilcoxon(a, b)
    assert (stat, p, n) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 12)
    assert paired_wilcoxon(a, a) == (0.0, 1.0, 0)


# ------------------------------------------------------------- tables


def test_kervadec_table_layout_values_and_published(published):
    spec = [("kervadec2023", "synth_acdc", "enet2d", l, "none", "0.005", ACDC, {}) for l in pt.KERVADEC_LOSSES]
    spec += [("kervadec2023", "synth_wmh", "enet2d", l, "none", "0.005", WMH,
              {"other_pathology": 0.6 if l == "mime" else 0.02}) for l in pt.KERVADEC_LOSSES]
    cases = make_cases(spec, seeds=(0, 1, 2))
    long = pt.kervadec_table(cases, published, {"synth_wmh": "synthetic stand-in for WMH 2017"})
    assert len(long) == 4 * 7 * 2 and set(long["view"]) == {"all cases"}  # every class in every case
    cell = long[(long["row"] == "mime") & (long["column"] == "WMH other_pathology")]
    dsc, hd = cell[cell["metric"] == "dsc"].iloc[0], cell[cell["metric"] == "hd95"].iloc[0]
    brute = cases[(cases["dataset"] == "synth_wmh") & (cases["loss"] == "mime") & (cases["class"] == "other_pathology")]
    assert dsc["ours"] == pytest.approx(100 * brute["dsc"].mean())
    assert hd["ours"] == pytest.approx(brute["hd95"].mean())
    assert (dsc["published"], hd["published"]) == (63.0, 135.0)
    assert dsc["diff"] == pytest.approx(dsc["ours"] - 63.0)
    per_seed = 100 * brute.groupby("seed")["dsc"].mean()
    half = sps.t.ppf(0.975, 2) * per_seed.std(ddof=1) / np.sqrt(3)
    assert (dsc["ci_lo"], dsc["ci_hi"]) == pytest.approx((per_seed.mean() - half, per_seed.mean() + half))
    assert dsc["std"] == pytest.approx(per_seed.std(ddof=1)) and (dsc["n_seeds"], dsc["n_cases"]) == (3, 5)
    assert dsc["stands_in_for"] == "synthetic stand-in for WMH 2017"
    # 'all' is the per-case mean over the object classes
    allc = long[(long["row"] == "dice") & (long["column"] == "ACDC all") & (long["metric"] == "dsc")].iloc[0]
    sub = cases[(cases["dataset"] == "synth_acdc") & (cases["loss"] == "dice") & (cases["class_index"] > 0)]
    assert allc["ours"] == pytest.approx(100 * sub.groupby("case")["dsc"].mean().mean())
    acdc, wmh = pt.BLOCKS["kervadec2023"](long)
    assert acdc.header == ["loss", "class", "DSC ours", "DSC pub.", "Δ", "HD95 ours", "HD95 pub.", "n"]
    assert [r[:2] for r in wmh.body][-3:] == [["mime", "WMH"], ["mime", "other_pathology"], ["mime", "all"]]
    mime_other = wmh.body[-2]
    assert mime_other[3:5] == ["63.0", f"{dsc['diff']:.1f}"] and mime_other[6] == "135.0" and mime_other[7] == "3×5"


def test_a_class_absent_from_some_cases_shows_both_views(published):
    spec = [("kervadec2023", "synth_wmh", "enet2d", loss, "none", "0.005", WMH, {}) for loss in pt.KERVADEC_LOSSES]
    cases = make_cases(spec, n_cases=6, seeds=(0, 1, 2))
    absent = cases["case"].isin(["c0", "c1"]) & (cases["class"] == "other_pathology")
    cases.loc[absent, ["gt_voxels", "pred_voxels", "dsc"]] = [0, 0, 1.0]
    long = pt.kervadec_table(cases, published, {})
    view = long[(long["row"] == "dice") & (long["column"] == "WMH other_pathology") & (long["metric"] == "dsc")]
    assert list(view["view"]) == ["all cases", "present"] and list(view["n_cases"]) == [6, 4]
    present = cases[~absent & (cases["loss"] == "dice") & (cases["class"] == "other_pathology")]
    assert view["ours"].iloc[1] == pytest.approx(100 * present.groupby("seed")["dsc"].mean().mean())
    block = [b for b in pt.BLOCKS["kervadec2023"](long) if b.title.startswith("synth_wmh")][0]
    assert "DSC, cases with the class" in block.header


def test_shen_table_avg_max_min_and_bold_best(published):
    spec = [("shen2018", "synth_abdomen", "unet3d", "weighted_dice", w, lr, ABDOMEN,
             {"background": 0.99, "liver": 0.95 if w == "uniform" else 0.3})
            for w, lr in pt.SHEN_COLUMNS]
    cases = make_cases(spec, seeds=(0, 1))
    long = pt.shen_table(cases, published, {})
    col = long[long["column"] == "uniform lr=0.001"].set_index("row")
    classes = col.loc[ABDOMEN, "ours"]
    assert col.loc["MAX", "ours"] == pytest.approx(classes.max())
    assert col.loc["MIN", "ours"] == pytest.approx(classes.min())
    assert col.loc["AVG", "ours"] == pytest.approx(classes.mean())  # AVG includes the background
    assert col.loc["AVG", "published"] == 88.3 and col.loc["AVG", "n_seeds"] == 2
    assert np.isfinite(col.loc["liver", "std"])
    slow, fast = pt.BLOCKS["shen2018"](long)
    assert slow.title == "learning rate 0.001" and slow.header[1:4] == ["uniform ours", "pub.", "Δ"]
    rows = [r[0] for r in slow.body]
    liver, liver_bold = slow.body[rows.index("liver")], slow.bold[rows.index("liver")]
    assert sum(liver_bold) == 1 and slow.header[liver_bold.index(True)].startswith("uniform")
    assert "±" in liver[1] and liver[2] == "96.5"  # ours beside the published value
    md = pt.to_markdown([slow, fast])
    assert md.count("**") >= 2 * len(slow.body)


def test_missing_cells_say_not_run(published):
    long = pt.liu_table(pt.load_cases([]), published, {})
    (block,) = pt.BLOCKS["liu2018"](long)
    assert block.body[0][1] == "not run" and block.body[0][4] == "86.42"


def test_one_seed_has_no_interval_and_says_so(published):
    spec = [("liu2018", "synth_prostate", "rdd", "vnet", "none", "0.01", ["background", "prostate"], {})]
    long = pt.liu_table(make_cases(spec), published, {})
    r = long.iloc[0]
    assert r["n_seeds"] == 1 and np.isnan(r["ci_lo"]) and np.isnan(r["std"]) and np.isfinite(r["case_sd"])
    (block,) = pt.BLOCKS["liu2018"](long)
    assert block.body[0][2] == "1 seed: none" and "±" not in block.body[0][1]
    assert "one seed: no spread or interval" in pt.caption_for("liu2018", long)


def test_sudre_table_levels_by_rarest_class(published):
    spec = [("sudre2017", "synth_wmh", "unet2d", l, "none", lr, WMH, {}) for l in ("gdl", "dice")
            for lr in ("0.001", "0.01")]
    long = pt.sudre_table(make_cases(spec), published, {})
    assert set(long["row"]) == {"gdl", "dice"} and len(long) == 4
    # rarest object class: WMH with 10 of 1000 + 10 + 20 voxels per case
    assert long["column"].iloc[0].startswith("synth_wmh: WMH 0.97 %")


def test_wilcoxon_table_pairs_variants_and_matches_scipy():
    spec = [("kervadec2023", "synth_acdc", "enet2d", l, "none", "0.005", ACDC, {}) for l in ("dice", "gdl", "mime")]
    cases = make_cases(spec, n_cases=8)
    w = pt.wilcoxon_table(cases)
    assert len(w) == 3
    row = w[(w["a"] == "dice-none") & (w["b"] == "mime-none")].iloc[0]
    a = pt.case_values(cases, "all", loss="dice").to_numpy()
    b = pt.case_values(cases, "all", loss="mime").to_numpy()
    assert row["p_value"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert row["mean_diff"] == pytest.approx(100 * (a - b).mean())


def test_latex_rendering_escapes():
    block = pt.Block("", ["row", "a_b"])
    block.add(["x%", "1 ± 2 (Δ −3)"], [False, True])
    tex = pt.to_latex([block], "cap & 95 %", "tab:x")
    assert r"a\_b" in tex and r"x\%" in tex and r"\textbf{1 $\pm$ 2 ($\Delta$ $-$3)}" in tex
    assert r"cap \& 95 \%" in tex


def test_collect_cases_reads_cells(tmp_path):
    cell = tmp_path / "e" / "synth_acdc" / "unet2d" / "dice-none" / "lr0.01" / "seed0"
    cell.mkdir(parents=True)
    settings = {"experiment": "e_p16x16", "dataset": "synth_acdc", "network": "unet2d", "loss": "dice",
                "weighting": "none", "lr": 0.01, "seed": 0, "recipe": {"patch_size": [16, 16]}, "sweep_of": "e"}
    (cell / "cell.json").write_text(json.dumps({"settings": settings}))
    pd.DataFrame({"case": ["c0", "c0"], "class_index": [0, 1], "class": ["background", "RV"], "dsc": [0.9, 0.5],
                  "hd95": [0, 3]}).to_csv(cell / "per_case.csv", index=False)
    out = tables.collect_cases("e", [cell / "metrics.csv"])
    assert list(out["lr"]) == ["0.01", "0.01"] and list(out["loss"]) == ["dice", "dice"]
    assert list(out["patch"]) == ["16x16"] * 2 and list(out["sweep_of"]) == ["e"] * 2 and set(out["loss_variant"]) == {"dice"}
    (cell / "cell.json").write_text(json.dumps({"settings": {**settings, "recipe": {}}}))
    with pytest.raises(tables.DicebenchError, match="cell.json|per-case"):
        tables.collect_cases("e", [cell / "metrics.csv"])
    (cell / "cell.json").write_text(json.dumps({"settings": settings}))
    (cell / "per_case.csv").write_text("case,dsc\nc0,1\n")
    with pytest.raises(tables.DicebenchError, match="per_case.csv: missing column"):
        tables.collect_cases("e", [cell / "metrics.csv"])


def test_cli_paper_tables_end_to_end(tmp_path):
    from dicebench.cli import main

    spec = [("kervadec2023", "synth_acdc", "enet2d", l, "none", "0.005", ACDC, {}) for l in pt.KERVADEC_LOSSES]
    make_cases(spec).to_csv(tmp_path / "cases.csv", index=False)
    ds = tmp_path / "synth_acdc"
    ds.mkdir()
    (ds / "dataset.json").write_text(json.dumps({"stands_in_for": "ACDC (cardiac cine-MRI)", "labels": {}}))
    rc = main(["paper-tables", "--paper", "kervadec2023", "--cases", str(tmp_path / "cases.csv"), "--published",
               str(PUBLISHED), "--datasets", str(ds), "--csv", str(tmp_path / "k.csv"), "--md",
               str(tmp_path / "k.md"), "--tex", str(tmp_path / "k.tex")])
    assert rc == 0
    md = (tmp_path / "k.md").read_text()
    assert "synth_acdc is a synthetic stand-in for ACDC (cardiac cine-MRI)" in md
    assert "not run" in md  # no WMH dataset in this run
    assert "cells" in pd.read_csv(tmp_path / "k.csv").columns
    assert main(["paper-tables", "--paper", "kervadec2023", "--published", str(tmp_path / "nope.yaml"),
                 "--csv", "a", "--md", "b", "--tex", "c"]) == 1
