"""The claims table: the verdict rule and its application to constructed results."""

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


def cases_from(spec, n_cases=6, noise=0.02, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for exp, ds, loss, w, lr, classes, base in spec:
        for c in range(n_cases):
            for i, name in enumerate(classes):
                rows.append({"experiment": exp, "dataset": ds, "network": "n", "loss": loss, "weighting": w,
                             "lr": lr, "seed": 0, "case": f"c{c}", "class_index": i, "class": name,
                             "dsc": float(np.clip(base.get(name, 0.8) + noise * rng.standard_normal(), 0, 1)),
                             "hd95": 1.0})
    return pd.DataFrame(rows)


def kervadec(other_by_loss: dict[str, float], acdc_by_loss: dict[str, float] | None = None, **kw):
    spec = [("kervadec2023", "synth_wmh", l, "none", "0.005", WMH, {"other_pathology": v, "WMH": 0.7})
            for l, v in other_by_loss.items()]
    spec += [("kervadec2023", "synth_acdc", l, "none", "0.005", ACDC, {"RV": v, "MYO": v, "LV": v})
             for l, v in (acdc_by_loss or {}).items()]
    return cases_from(spec, **kw)


def verdict(table: pd.DataFrame, claim_id: str) -> str:
    rows = table[table["id"] == claim_id]
    assert len(rows) == 1
    return rows["verdict"].item()


def test_verdict_rule_greater():
    assert cl.verdict_greater(0.5, 3.0) == cl.REPRODUCED
    assert cl.verdict_greater(-3.0, -0.1) == cl.NOT_REPRODUCED
    assert cl.verdict_greater(-1.0, 1.0) == cl.INCONCLUSIVE
    assert cl.verdict_greater(math.nan, math.nan) == cl.NOT_RUN


def test_verdict_rule_similar_and_at_least():
    assert cl.verdict_similar([(-1, 1), (-4.9, 2)], 5) == cl.REPRODUCED
    assert cl.verdict_similar([(-1, 1), (5.5, 9)], 5) == cl.NOT_REPRODUCED
    assert cl.verdict_similar([(-1, 1), (3, 7)], 5) == cl.INCONCLUSIVE
    assert cl.verdict_similar([], 5) == cl.NOT_RUN
    assert cl.verdict_at_least(70, 82, 86.42, 5) == cl.REPRODUCED
    assert cl.verdict_at_least(60, 80, 86.42, 5) == cl.NOT_REPRODUCED


def test_mime_beats_gdl_on_the_rare_class_is_reproduced_and_its_reverse_is_not():
    good = cl.claims_table(kervadec({"mime": 0.6, "gdl": 0.05, "dice": 0.05}))
    assert verdict(good, "K1") == cl.REPRODUCED and verdict(good, "K4") == cl.REPRODUCED
    row = good[good["id"] == "K1"].iloc[0]
    assert row["estimate"] == pytest.approx(55, abs=3) and row["ci_lo"] > 0
    assert row["dataset"] == "synth_wmh" and "[" in row["ours"]
    bad = cl.claims_table(kervadec({"mime": 0.05, "gdl": 0.6, "dice": 0.6}))
    assert verdict(bad, "K1") == cl.NOT_REPRODUCED
    tie = cl.claims_table(kervadec({"mime": 0.5, "gdl": 0.5, "dice": 0.5}, noise=0.2))
    assert verdict(tie, "K1") == cl.INCONCLUSIVE


def test_estimate_is_the_brute_force_paired_difference():
    cases = kervadec({"mime": 0.6, "gdl": 0.1})
    row = cl.claims_table(cases).set_index("id").loc["K1"]
    sub = cases[cases["class"] == "other_pathology"]
    a = sub[sub["loss"] == "mime"].set_index("case")["dsc"]
    b = sub[sub["loss"] == "gdl"].set_index("case")["dsc"]
    assert row["estimate"] == pytest.approx(100 * (a - b).mean())


def test_similar_on_acdc():
    same = cl.claims_table(kervadec({}, {l: 0.8 for l in ("dice", "vnet", "gdl", "mime")}))
    assert verdict(same, "K2") == cl.REPRODUCED
    apart = cl.claims_table(kervadec({}, {"dice": 0.8, "vnet": 0.8, "gdl": 0.5, "mime": 0.8}))
    assert verdict(apart, "K2") == cl.NOT_REPRODUCED


def test_shen_square_claims():
    base = {"uniform": 0.9, "simple": 0.8}
    spec = [("shen2018", "synth_abdomen", "weighted_dice", w, lr, ABDOMEN,
             {c: (0.3 if (w, lr) == ("square", "0.001") else base.get(w, 0.85)) for c in ABDOMEN})
            for w in ("uniform", "simple", "square") for lr in ("0.001", "0.01")]
    table = cl.claims_table(cases_from(spec))
    for cid in ("S1", "S2", "S3", "S5"):
        assert verdict(table, cid) == cl.REPRODUCED, cid
    assert verdict(table, "S4") == cl.INCONCLUSIVE  # simple is the same at both rates here


def test_missing_cells_are_not_run():
    table = cl.claims_table(kervadec({"mime": 0.6}))
    assert verdict(table, "K1") == cl.NOT_RUN  # no GDL cell
    assert verdict(table, "S1") == cl.NOT_RUN and verdict(table, "L1") == cl.NOT_RUN
    assert set(table["id"]) == {c.id for c in cl.CLAIMS}


def test_claims_are_consistent_with_the_published_numbers():
    """Each 'A > B' claim, fed the published values as a single case, comes out reproduced: the
    claims say what the papers' tables say."""
    pub = pt.load_published(Path(__file__).resolve().parents[1] / "paper" / "published.yaml")
    k = pub[(pub["paper"] == "kervadec2023") & (pub["metric"] == "dsc")]
    rows = []
    for _, r in k.iterrows():
        if r["column"] == "all":
            continue
        kind = r["dataset"]
        classes = ACDC if kind == "acdc" else WMH
        rows.append({"experiment": "kervadec2023", "dataset": f"pub_{kind}", "network": "n", "loss": r["row"],
                     "weighting": "none", "lr": "0.005", "seed": 0, "case": "c0",
                     "class_index": classes.index(r["column"]), "class": r["column"], "dsc": r["value"] / 100})
    s = pub[(pub["paper"] == "shen2018") & pub["row"].isin(ABDOMEN + ["vein"])]
    for _, r in s.iterrows():
        rows.append({"experiment": "shen2018", "dataset": "pub_abdomen", "network": "n", "loss": "weighted_dice",
                     "weighting": r["weighting"], "lr": r["lr"], "seed": 0, "case": "c0",
                     "class_index": ABDOMEN.index(r["row"]), "class": r["row"], "dsc": r["value"] / 100})
    table = cl.claims_table(pd.DataFrame(rows))
    for claim in cl.CLAIMS:
        sweep = any("patch" in g.where for g in claim.groups)  # the papers publish no patch sweep
        if claim.paper in ("kervadec2023", "shen2018") and claim.test in ("greater", "similar") and not sweep:
            assert verdict(table, claim.id) == cl.REPRODUCED, claim.id
        elif sweep:
            assert verdict(table, claim.id) == cl.NOT_RUN, claim.id


def test_cli_writes_markdown_with_the_rule(tmp_path):
    from dicebench.cli import main

    kervadec({"mime": 0.6, "gdl": 0.05}).to_csv(tmp_path / "cases.csv", index=False)
    rc = main(["claims", "--cases", str(tmp_path / "cases.csv"), "--csv", str(tmp_path / "c.csv"),
               "--md", str(tmp_path / "claims.md"), "--tex", str(tmp_path / "claims.tex")])
    assert rc == 0
    md = (tmp_path / "claims.md").read_text()
    assert "Verdict rule" in md and "| K1 |" in md and "reproduced" in md
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


def test_subpatch_claims_use_the_smallest_trained_patch():
    cases = sweep_cases({("dice", "64x64"): 0.8, ("mime", "64x64"): 0.8,
                         ("dice", "32x32"): 0.6, ("mime", "32x32"): 0.55,
                         ("dice", "16x16"): 0.2, ("mime", "16x16"): 0.7,
                         # GDL policy cells at the smallest patch must not leak into the dice/mime groups
                         ("gdl (zero)", "16x16"): 0.0, ("gdl (max)", "16x16"): 0.1})
    table = cl.claims_table(cases).set_index("id")
    assert table.loc["K5", "verdict"] == cl.REPRODUCED
    assert table.loc["K5", "estimate"] == pytest.approx(50, abs=3)  # mime 70 - dice 20 at 16x16
    assert table.loc["K6", "verdict"] == cl.REPRODUCED
    assert table.loc["K6", "estimate"] == pytest.approx(60, abs=3)  # dice 80 at 64x64 - 20 at 16x16
    # the configured-patch claims read the experiment's own cells only: mime = dice at 64x64
    assert table.loc["K4", "verdict"] == cl.NOT_RUN  # no WMH cells here
    reverse = cl.claims_table(sweep_cases({("dice", "64x64"): 0.5, ("dice", "16x16"): 0.8,
                                           ("mime", "16x16"): 0.3})).set_index("id")
    assert reverse.loc["K5", "verdict"] == cl.NOT_REPRODUCED and reverse.loc["K6", "verdict"] == cl.NOT_REPRODUCED


def test_subpatch_claims_are_not_run_without_a_sweep():
    cases = sweep_cases({("dice", "64x64"): 0.8, ("mime", "64x64"): 0.7})
    table = cl.claims_table(cases).set_index("id")
    assert table.loc["K5", "verdict"] == cl.NOT_RUN and table.loc["K6", "verdict"] == cl.NOT_RUN
    legacy = cl.claims_table(kervadec({"mime": 0.6, "dice": 0.1}, {"dice": 0.8, "mime": 0.8})).set_index("id")
    assert legacy.loc["K5", "verdict"] == cl.NOT_RUN  # a cases.csv without the sweep columns
