"""The claims table: each verdict rule at its boundaries, and the rule applied to constructed
results (several seeds, several test cases)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dicebench.reporting import claims as cl
from dicebench.reporting import paper_tables as pt

WMH = ["background", "WMH", "other_pathology"]
ACDC = ["background", "RV", "MYO", "LV"]
ABDOMEN = ["background", "artery", "portal_vein", "liver", "spleen", "stomach", "gallbladder", "pancreas"]


def cases_from(spec, n_cases=6, n_seeds=4, noise=0.02, run_sd=0.01, seed=0, absent=()) -> pd.DataFrame:
    """spec: (experiment, dataset, loss, weighting, lr, classes, {class: mean DSC}); one run effect
    per (cell, seed), one noise draw per case and class."""
    rng = np.random.default_rng(seed)
    rows = []
    for exp, ds, loss, w, lr, classes, base in spec:
        for s in range(n_seeds):
            run = run_sd * rng.standard_normal()
            for c in range(n_cases):
                for i, name in enumerate(classes):
                    dsc = float(np.clip(base.get(name, 0.8) + run + noise * rng.standard_normal(), 0, 1))
                    rows.append({"experiment": exp, "dataset": ds, "network": "n", "loss": loss, "weighting": w,
                                 "lr": lr, "seed": s, "case": f"c{c}", "class_index": i, "class": name,
                                 "dsc": dsc, "hd95": 1.0, "gt_voxels": 0 if name in absent else 50,
                                 "pred_voxels": 50, "cell": f"{exp}/{ds}/n/{loss}-{w}/lr{lr}/seed{s}"})
    return pd.DataFrame(rows)


def kervadec(other_by_loss: dict[str, float], acdc_by_loss: dict[str, float] | None = None, **kw):
    spec = [("kervadec2023", "synth_wmh", loss, "none", "0.005", WMH, {"other_pathology": v, "WMH": 0.7})
            for loss, v in other_by_loss.items()]
    spec += [("kervadec2023", "synth_acdc", loss, "none", "0.005", ACDC, {"RV": v, "MYO": v, "LV": v})
             for loss, v in (acdc_by_loss or {}).items()]
    return cases_from(spec, **kw)


def row(table: pd.DataFrame, claim_id: str) -> pd.Series:
    rows = table[table["id"] == claim_id]
    assert len(rows) == 1, claim_id
    return rows.iloc[0]


def verdict(table: pd.DataFrame, claim_id: str) -> str:
    return row(table, claim_id)["verdict"]


@pytest.mark.parametrize("lo,hi,expected", [
    (0.01, 3.0, cl.REPRODUCED), (0.0, 3.0, cl.INCONCLUSIVE), (-3.0, -0.01, cl.NOT_REPRODUCED),
    (-3.0, 0.0, cl.INCONCLUSIVE), (-1.0, 1.0, cl.INCONCLUSIVE), (math.nan, math.nan, cl.INSUFFICIENT)])
def test_verdict_greater_at_its_boundaries(lo, hi, expected):
    assert cl.verdict_greater(lo, hi) == expected


@pytest.mark.parametrize("cis,expected", [
    ([(-1, 1), (-5, 5)], cl.REPRODUCED),  # touching the margin is inside
    ([(-1, 1), (-5.01, 2)], cl.INCONCLUSIVE),
    ([(-1, 1), (5.01, 9)], cl.NOT_REPRODUCED),
    ([(-9, -5.01)], cl.NOT_REPRODUCED),
    ([(-1, 1), (3, 7)], cl.INCONCLUSIVE),
    ([], cl.INSUFFICIENT), ([(math.nan, 1)], cl.INSUFFICIENT)])
def test_verdict_similar_at_its_boundaries(cis, expected):
    assert cl.verdict_similar(cis, 5) == expected


@pytest.mark.parametrize("lo,hi,expected", [
    (81.42, 90, cl.REPRODUCED), (81.41, 90, cl.INCONCLUSIVE), (70, 81.41, cl.NOT_REPRODUCED),
    (70, 81.42, cl.INCONCLUSIVE), (60, 95, cl.INCONCLUSIVE)])
def test_verdict_at_least_at_its_boundaries(lo, hi, expected):
    """Reproduced needs the *lower* bound to reach published - margin: a wide interval is not
    evidence (the old rule asked only the upper bound)."""
    assert cl.verdict_at_least(lo, hi, 86.42, 5) == expected


@pytest.mark.parametrize("cis,expected", [
    ([(0.1, 3), (0.2, 9)], cl.REPRODUCED), ([(0.1, 3), (0.0, 9)], cl.INCONCLUSIVE),
    ([(0.1, 3), (-4, -0.1)], cl.NOT_REPRODUCED)])
def test_verdict_greatest(cis, expected):
    assert cl.verdict_greatest(cis) == expected


def test_mime_beats_gdl_on_the_rare_class_is_reproduced_and_its_reverse_is_not():
    good = cl.claims_table(kervadec({"mime": 0.6, "gdl": 0.05, "dice": 0.05}))
    assert verdict(good, "K1") == cl.REPRODUCED and verdict(good, "K4") == cl.REPRODUCED
    r = row(good, "K1")
    assert r["estimate"] == pytest.approx(55, abs=3) and r["ci_lo"] > 0
    assert r["dataset"] == "synth_wmh" and "[" in r["ours"] and (r["n_seeds"], r["n_cases"]) == (4, 6)
    assert r["cells"].count(";") == 7  # 2 losses x 4 seeds
    bad = cl.claims_table(kervadec({"mime": 0.05, "gdl": 0.6, "dice": 0.6}))
    assert verdict(bad, "K1") == cl.NOT_REPRODUCED
    tie = cl.claims_table(kervadec({"mime": 0.5, "gdl": 0.5, "dice": 0.5}, noise=0.2))
    assert verdict(tie, "K1") == cl.INCONCLUSIVE


def test_estimate_and_interval_are_the_paired_t_over_seeds_of_case_means():
    from scipy import stats as sps

    cases = kervadec({"mime": 0.6, "gdl": 0.1})
    table = cl.claims_table(cases)
    r = row(table, "K1")
    sub = cases[cases["class"] == "other_pathology"]
    a = sub[sub["loss"] == "mime"].groupby("seed")["dsc"].mean()
    b = sub[sub["loss"] == "gdl"].groupby("seed")["dsc"].mean()
    d = 100 * (a - b)
    half = sps.t.ppf(1 - (1 - r["level"]) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert r["estimate"] == pytest.approx(d.mean())
    assert (r["ci_lo"], r["ci_hi"]) == pytest.approx((d.mean() - half, d.mean() + half))


def test_one_seed_is_insufficient_evidence_with_its_estimate_shown():
    table = cl.claims_table(kervadec({"mime": 0.6, "gdl": 0.05}, n_seeds=1))
    r = row(table, "K1")
    assert r["verdict"] == cl.INSUFFICIENT and r["estimate"] == pytest.approx(55, abs=3) and r["n_seeds"] == 1
    two = cl.claims_table(kervadec({"mime": 0.6, "gdl": 0.05}, n_seeds=2))
    assert verdict(two, "K1") == cl.INSUFFICIENT  # below min_seeds = 3
    relaxed = cl.claims_table(kervadec({"mime": 0.6, "gdl": 0.05}, n_seeds=2), rule=cl.Rule(min_seeds=2))
    assert verdict(relaxed, "K1") == cl.REPRODUCED


def test_class_claims_use_the_cases_that_contain_the_class():
    cases = kervadec({"mime": 0.6, "gdl": 0.05})
    # other_pathology absent from cases c0..c2 (gt 0): predicting nothing there scores 1.0 by our
    # convention; the claim must not count those cases.
    absent = cases["case"].isin(["c0", "c1", "c2"]) & (cases["class"] == "other_pathology")
    cases.loc[absent, ["gt_voxels", "dsc"]] = [0, 1.0]
    r = row(cl.claims_table(cases), "K1")
    assert r["n_cases"] == 3 and r["estimate"] == pytest.approx(55, abs=3)
    none = cases.assign(gt_voxels=np.where(cases["class"] == "other_pathology", 0, cases["gt_voxels"]))
    assert verdict(cl.claims_table(none), "K1") == cl.NOT_TESTABLE


def test_similar_on_acdc():
    same = cl.claims_table(kervadec({}, {loss: 0.8 for loss in ("dice", "vnet", "gdl", "mime")}, n_seeds=6))
    assert verdict(same, "K2") == cl.REPRODUCED
    apart = cl.claims_table(kervadec({}, {"dice": 0.8, "vnet": 0.8, "gdl": 0.5, "mime": 0.8}))
    assert verdict(apart, "K2") == cl.NOT_REPRODUCED


def shen(avg: dict[tuple[str, str], float], **kw) -> pd.DataFrame:
    spec = [("shen2018", "synth_abdomen", "weighted_dice", w, lr, ABDOMEN, {c: v for c in ABDOMEN})
            for (w, lr), v in avg.items()]
    return cases_from(spec, **kw)


def test_shen_claims():
    table = cl.claims_table(shen({("uniform", "0.001"): 0.9, ("simple", "0.001"): 0.8, ("square", "0.001"): 0.3,
                                  ("uniform", "0.01"): 0.9, ("simple", "0.01"): 0.8, ("square", "0.01"): 0.85},
                                 n_seeds=8))
    for cid in ("S1", "S2", "S3", "S5"):
        assert verdict(table, cid) == cl.REPRODUCED, cid
    assert verdict(table, "S4") == cl.INCONCLUSIVE  # simple is the same at both rates here
    assert verdict(table, "S6") == cl.NOT_REPRODUCED  # simple is below uniform at 0.01
    assert verdict(table, "S7") == cl.REPRODUCED  # uniform 0.9 at both rates
    best = cl.claims_table(shen({("uniform", "0.01"): 0.8, ("simple", "0.01"): 0.9, ("square", "0.01"): 0.7}))
    assert verdict(best, "S6") == cl.REPRODUCED
    assert row(best, "S6")["estimate"] == pytest.approx(10, abs=2)  # the smallest margin: simple - uniform


def sudre(wmh: dict[tuple[str, str], float], **kw) -> pd.DataFrame:
    spec = [("sudre2017", "synth_wmh_rare", loss, "none", lr, WMH, {"WMH": v}) for (loss, lr), v in wmh.items()]
    return cases_from(spec, **kw)


def test_sudre_claims_are_tested_at_each_learning_rate_and_on_the_lr_spread():
    table = cl.claims_table(sudre({("gdl", "0.001"): 0.6, ("gdl", "0.01"): 0.6, ("dice", "0.001"): 0.6,
                                   ("dice", "0.01"): 0.2, ("wce", "0.001"): 0.3, ("wce", "0.01"): 0.3}))
    assert verdict(table, "U1 (lr 0.001)") == cl.INCONCLUSIVE  # gdl = dice at 0.001
    assert verdict(table, "U1 (lr 0.01)") == cl.REPRODUCED
    assert verdict(table, "U2 (lr 0.001)") == cl.REPRODUCED and verdict(table, "U2 (lr 0.01)") == cl.REPRODUCED
    assert verdict(table, "U3") == cl.REPRODUCED  # dice's lr range 40 points, gdl's none
    assert row(table, "U3")["estimate"] == pytest.approx(40, abs=3)
    assert verdict(table, "U4") == cl.INCONCLUSIVE  # neither varies
    assert bool(row(table, "U3")["inferred"]) and bool(row(table, "U1 (lr 0.01)")["inferred"])


def test_missing_cells_are_not_run():
    table = cl.claims_table(kervadec({"mime": 0.6}))
    assert verdict(table, "K1") == cl.NOT_RUN  # no GDL cell
    assert verdict(table, "S1") == cl.NOT_RUN and verdict(table, "L1") == cl.NOT_RUN
    assert {i.split(" ")[0] for i in table["id"]} == {c.id for c in cl.CLAIMS}


def test_claims_point_the_same_way_as_the_published_numbers():
    """Each 'A > B' claim, fed the published values (one case, one seed), has a positive
    estimate: the claims say what the papers' tables say."""
    pub = pt.load_published(Path(__file__).resolve().parents[1] / "paper" / "published.yaml")
    k = pub[(pub["paper"] == "kervadec2023") & (pub["metric"] == "dsc")]
    rows = []
    for _, r in k.iterrows():
        if r["column"] == "all":
            continue
        classes = ACDC if r["dataset"] == "acdc" else WMH
        rows.append({"experiment": "kervadec2023", "dataset": f"pub_{r['dataset']}", "network": "n",
                     "loss": r["row"], "weighting": "none", "lr": "0.005", "seed": 0, "case": "c0",
                     "class_index": classes.index(r["column"]), "class": r["column"], "dsc": r["value"] / 100})
    s = pub[(pub["paper"] == "shen2018") & pub["row"].isin(ABDOMEN + ["vein"])]
    for _, r in s.iterrows():
        name = "portal_vein" if r["row"] == "vein" else r["row"]
        rows.append({"experiment": "shen2018", "dataset": "pub_abdomen", "network": "n", "loss": "weighted_dice",
                     "weighting": r["weighting"], "lr": r["lr"], "seed": 0, "case": "c0",
                     "class_index": ABDOMEN.index(name), "class": name, "dsc": r["value"] / 100})
    table = cl.claims_table(pd.DataFrame(rows)).set_index("id")
    for claim in cl.CLAIMS:
        if claim.paper not in ("kervadec2023", "shen2018") or any("patch" in g.where for g in claim.groups):
            continue
        est = table.loc[claim.id, "estimate"]
        if claim.test in ("greater", "greatest"):
            assert est > 0, claim.id
        elif claim.test == "similar":
            assert abs(est) <= claim.margin, claim.id
        assert table.loc[claim.id, "verdict"] == cl.INSUFFICIENT  # one seed decides nothing


def test_cli_writes_the_table_with_n_and_the_rule(tmp_path):
    from dicebench.cli import main

    kervadec({"mime": 0.6, "gdl": 0.05}).to_csv(tmp_path / "cases.csv", index=False)
    rc = main(["claims", "--cases", str(tmp_path / "cases.csv"), "--rule", '{"min_seeds": 3}',
               "--csv", str(tmp_path / "c.csv"), "--md", str(tmp_path / "claims.md"),
               "--tex", str(tmp_path / "claims.tex")])
    assert rc == 0
    md = (tmp_path / "claims.md").read_text()
    assert "Verdict rule" in md and "Bonferroni" in md and "| K1 |" in md and "| 4 × 6 |" in md
    csv = pd.read_csv(tmp_path / "c.csv")
    assert {"id", "paper", "claim", "inferred", "test", "dataset", "estimate", "ci_lo", "ci_hi", "n_seeds",
            "n_cases", "verdict", "mdd", "cells"} <= set(csv.columns)
    assert set(csv["verdict"]) <= set(cl.VERDICTS)
    assert r"\begin{tabularx}" in (tmp_path / "claims.tex").read_text()


def sweep_cases(dsc: dict[tuple[str, str], float], noise=0.02) -> pd.DataFrame:
    """ACDC cases of kervadec2023 and its sub-patching sweep: {(loss_variant, patch): DSC}."""
    frames = []
    for (variant, patch), v in dsc.items():
        loss = variant.split(" ")[0]
        exp = "kervadec2023" if patch == "64x64" else f"kervadec2023_p{patch}"
        if variant.startswith("gdl (") and variant != "gdl (max)":
            exp = f"kervadec2023_p{patch}_gdl_{variant[5:-1]}"
        df = cases_from([(exp, "synth_acdc", loss, "none", "0.005", ACDC, {"RV": v, "MYO": v, "LV": v})],
                        noise=noise, seed=len(frames))
        frames.append(df.assign(patch=patch, loss_variant=variant, sweep_of="kervadec2023"))
    return pd.concat(frames, ignore_index=True)


def test_subpatch_claims_use_the_smallest_trained_patch_and_k6_is_a_difference_in_differences():
    cases = sweep_cases({("dice", "64x64"): 0.8, ("mime", "64x64"): 0.8,
                         ("dice", "32x32"): 0.6, ("mime", "32x32"): 0.55,
                         ("dice", "16x16"): 0.2, ("mime", "16x16"): 0.7,
                         # GDL policy cells at the smallest patch must not leak into the dice/mime groups
                         ("gdl (zero)", "16x16"): 0.0, ("gdl (max)", "16x16"): 0.1})
    table = cl.claims_table(cases).set_index("id")
    assert table.loc["K5", "verdict"] == cl.REPRODUCED
    assert table.loc["K5", "estimate"] == pytest.approx(50, abs=3)  # mime 70 - dice 20 at 16x16
    assert table.loc["K6", "verdict"] == cl.REPRODUCED
    assert table.loc["K6", "estimate"] == pytest.approx(50, abs=3)  # dice drops 60, mime 10
    assert table.loc["K4", "verdict"] == cl.NOT_RUN  # no WMH cells here
    # A small patch hurting both losses alike is no evidence that it hurts the Dice loss more.
    alike = cl.claims_table(sweep_cases({("dice", "64x64"): 0.8, ("mime", "64x64"): 0.8,
                                         ("dice", "16x16"): 0.4, ("mime", "16x16"): 0.4})).set_index("id")
    assert alike.loc["K6", "verdict"] == cl.INCONCLUSIVE and abs(alike.loc["K6", "estimate"]) < 3
    reverse = cl.claims_table(sweep_cases({("dice", "64x64"): 0.5, ("dice", "16x16"): 0.8,
                                           ("mime", "64x64"): 0.5, ("mime", "16x16"): 0.3})).set_index("id")
    assert reverse.loc["K5", "verdict"] == cl.NOT_REPRODUCED and reverse.loc["K6", "verdict"] == cl.NOT_REPRODUCED


def test_subpatch_claims_are_not_run_without_a_sweep():
    cases = sweep_cases({("dice", "64x64"): 0.8, ("mime", "64x64"): 0.7})
    table = cl.claims_table(cases).set_index("id")
    assert table.loc["K5", "verdict"] == cl.NOT_RUN and table.loc["K6", "verdict"] == cl.NOT_RUN
    legacy = cl.claims_table(kervadec({"mime": 0.6, "dice": 0.1}, {"dice": 0.8, "mime": 0.8})).set_index("id")
    assert legacy.loc["K5", "verdict"] == cl.NOT_RUN  # a cases.csv without the sweep columns
