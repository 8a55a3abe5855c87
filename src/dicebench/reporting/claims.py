"""The claims table: one row per claim the papers make, the paper's evidence, our result with
its 95 % confidence interval, and a verdict computed by one written-down rule.

Verdict rule (also stated in the paper, Sec. "Claims"). Every claim is a statement about a
difference of DSC (percentage points) between two groups of our cells, or about our value
against a published one:

- ``greater`` (A > B): we compute the mean case-wise difference A - B and its 95 % percentile
  bootstrap CI (paired over test cases when A and B were evaluated on the same cases, else
  unpaired). *reproduced* if the CI lies entirely above 0; *not reproduced* if it lies entirely
  below 0; *inconclusive* if it contains 0.
- ``similar`` (A1..An within +-margin of each other): for every pair the CI of the difference.
  *reproduced* if every CI lies inside [-margin, +margin]; *not reproduced* if some CI lies
  entirely outside it; *inconclusive* otherwise.
- ``at_least`` (A reaches the published value): *reproduced* if the CI's upper bound reaches
  published - margin; *not reproduced* if the CI lies entirely below it. (We reach or not.)
- *not run* if any cell the claim needs is absent from the results (e.g. a learning rate
  not in the config).

The verdict is a function of the numbers only; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dicebench.io import write_text
from dicebench.reporting.paper_tables import latex_escape
from dicebench.reporting.results import case_values, dataset_kind, load_cases
from dicebench.reporting.stats import bootstrap_ci, bootstrap_diff_ci

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN = "reproduced", "not reproduced", "inconclusive", "not run"


@dataclass(frozen=True)
class Group:
    """A set of cells and a class: experiment, dataset kind (acdc/wmh/abdomen/prostate), filters.

    Without a `patch` filter the group is the experiment's own cells (its configured patch).
    With `patch` it spans the experiment's sub-patching sweep (the experiments its `subpatch`
    section generated, cases.csv column `sweep_of`): `patch: smallest` picks, per dataset, the
    smallest training patch the sweep trained, `patch: configured` the experiment's own cells.
    Filter a sweep by `loss_variant` ("mime", "gdl (zero)"): GDL cells differ by policy only.
    """

    experiment: str
    kind: str
    cls: str
    where: dict = field(default_factory=dict)

    def label(self) -> str:
        skip = {"loss": "weighted_dice"}
        words = {"lr": "lr {}", "patch": "{} patch"}
        sel = " ".join(words.get(k, "{}").format(v) for k, v in self.where.items() if skip.get(k) != v)
        return f"{sel} {self.cls}"


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    text: str
    evidence: str
    test: str  # greater | similar | at_least
    groups: tuple[Group, ...]
    margin: float = 0.0  # DSC percentage points
    published: float = math.nan


def _k(kind, cls, **w):
    return Group("kervadec2023", kind, cls, w)


def _s(cls, w, lr):
    return Group("shen2018", "abdomen", cls, {"loss": "weighted_dice", "weighting": w, "lr": lr})


CLAIMS: tuple[Claim, ...] = (
    Claim("K1", "kervadec2023", "GDL fails on the rarest WMH class (other pathologies) while Mime holds",
          "Table 1: other pathologies DSC Mime 63.0 vs GDL 0.0", "greater",
          (_k("wmh", "other_pathology", loss="mime"), _k("wmh", "other_pathology", loss="gdl"))),
    Claim("K2", "kervadec2023", "All Dice variants perform similarly on ACDC (within 5 DSC points)",
          "Table 1: ACDC All 82.1-84.2 for DSC, VNet, GDL, Mime", "similar",
          tuple(_k("acdc", "all", loss=l) for l in ("dice", "vnet", "gdl", "mime")), margin=5.0),
    Claim("K3", "kervadec2023", "Dice variants struggle with other pathologies while WMH is segmented",
          "Table 1: DSC loss WMH 68.6 vs other pathologies 0.5", "greater",
          (_k("wmh", "WMH", loss="dice"), _k("wmh", "other_pathology", loss="dice"))),
    Claim("K4", "kervadec2023", "Mime handles empty patches gracefully: better than the Dice loss on the "
          "often-absent class", "Sec. 4 and Table 1: other pathologies Mime 63.0 vs DSC 0.5", "greater",
          (_k("wmh", "other_pathology", loss="mime"), _k("wmh", "other_pathology", loss="dice"))),
    Claim("K5", "kervadec2023", "Mime can be sub-patched: at the smallest trained patch, where most patches "
          "lack a structure, Mime beats the Dice loss", "Sec. 2 and Conclusion: all Dice variants 'struggle when "
          "a patch is empty'; Mime 'can easily be sub-patched'", "greater",
          (_k("acdc", "all", loss_variant="mime", patch="smallest"),
           _k("acdc", "all", loss_variant="dice", patch="smallest"))),
    Claim("K6", "kervadec2023", "Sub-patching hurts the Dice loss: lower DSC at the smallest trained patch than at "
          "the configured one", "Sec. 2: smaller patches make empty foregrounds, hence divisions by zero and "
          "instabilities", "greater",
          (_k("acdc", "all", loss_variant="dice", patch="configured"),
           _k("acdc", "all", loss_variant="dice", patch="smallest"))),
    Claim("S1", "shen2018", "Square weighting at lr 0.001 is worst (below uniform)",
          "Table 1: AVG W_q 44.0 vs W_u 88.3 at lr 0.001", "greater",
          (_s("AVG", "uniform", "0.001"), _s("AVG", "square", "0.001"))),
    Claim("S2", "shen2018", "Square weighting at lr 0.001 is worst (below simple)",
          "Table 1: AVG W_q 44.0 vs W_s 74.2 at lr 0.001", "greater",
          (_s("AVG", "simple", "0.001"), _s("AVG", "square", "0.001"))),
    Claim("S3", "shen2018", "Square weighting improves at lr 0.01", "Table 1: AVG W_q 78.9 (0.01) vs 44.0 (0.001)",
          "greater", (_s("AVG", "square", "0.01"), _s("AVG", "square", "0.001"))),
    Claim("S4", "shen2018", "Simple weighting improves at lr 0.01", "Table 1: AVG W_s 88.9 (0.01) vs 74.2 (0.001)",
          "greater", (_s("AVG", "simple", "0.01"), _s("AVG", "simple", "0.001"))),
    Claim("S5", "shen2018", "Uniform weighting is best at lr 0.001 (above simple)",
          "Table 1: AVG W_u 88.3 vs W_s 74.2 at lr 0.001", "greater",
          (_s("AVG", "uniform", "0.001"), _s("AVG", "simple", "0.001"))),
    Claim("L1", "liu2018", "rdd + V-Net Dice loss reaches 86.42 % mean DSC on prostate (within 5 points)",
          "Sec. 3: 'average DSC value of 86.42% in validation set'", "at_least",
          (Group("liu2018", "prostate", "all", {"network": "rdd", "loss": "vnet"}),), margin=5.0, published=86.42),
    Claim("U1", "sudre2017", "GDL beats the Dice loss on the rare WMH class under imbalance",
          "Abstract: GDL as 'a robust and accurate deep-learning loss function for unbalanced tasks'", "greater",
          (Group("sudre2017", "wmh", "WMH", {"loss": "gdl"}), Group("sudre2017", "wmh", "WMH", {"loss": "dice"}))),
    Claim("U2", "sudre2017", "GDL beats weighted cross-entropy on the rare WMH class",
          "Abstract: GDL proposed over weighted cross-entropy for unbalanced tasks", "greater",
          (Group("sudre2017", "wmh", "WMH", {"loss": "gdl"}), Group("sudre2017", "wmh", "WMH", {"loss": "wce"}))),
)


def _patch_voxels(label: str) -> int:
    return int(np.prod([int(v) for v in str(label).split("x")]))


def group_values(cases: pd.DataFrame, g: Group) -> dict[str, pd.Series]:
    """Per-case DSC (%) of the group, one series per dataset of that kind (real and synthetic
    versions of one anatomy are reported separately)."""
    where = dict(g.where)
    patch = where.pop("patch", None)
    if not len(cases) or any(k not in cases.columns for k in where):
        return {}
    if patch in (None, "configured") or "sweep_of" not in cases.columns:
        sub = cases[cases["experiment"] == g.experiment]
    else:
        sub = cases[cases["sweep_of"] == g.experiment]
    out = {}
    for ds in dict.fromkeys(sub["dataset"]):
        if dataset_kind(sub, ds) != g.kind:
            continue
        rows = sub[sub["dataset"] == ds]
        if patch == "smallest":
            match = rows
            for k, v in where.items():
                match = match[match[k].astype(str) == str(v)] if k in match.columns else match.iloc[:0]
            sizes = sorted(set(match["patch"].astype(str)), key=_patch_voxels)
            # A sweep needs a patch smaller than the configured one; else the claim was not run.
            configured = set(rows.loc[rows["experiment"] == g.experiment, "patch"].astype(str))
            if not sizes or sizes[0] in configured:
                continue
            rows = rows[rows["patch"].astype(str) == sizes[0]]
        v = case_values(rows, g.cls, "dsc", dataset=ds, **where)
        if not v.empty:
            out[ds] = 100 * v
    return out


def verdict_greater(lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return NOT_RUN
    return REPRODUCED if lo > 0 else NOT_REPRODUCED if hi < 0 else INCONCLUSIVE


def verdict_similar(cis: list[tuple[float, float]], margin: float) -> str:
    if not cis or any(not (np.isfinite(lo) and np.isfinite(hi)) for lo, hi in cis):
        return NOT_RUN
    if all(-margin <= lo and hi <= margin for lo, hi in cis):
        return REPRODUCED
    if any(lo > margin or hi < -margin for lo, hi in cis):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def verdict_at_least(lo: float, hi: float, published: float, margin: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return NOT_RUN
    return REPRODUCED if hi >= published - margin else NOT_REPRODUCED


def _diff(a: pd.Series, b: pd.Series) -> tuple[float, float, float]:
    paired = a.index.equals(b.index)
    return bootstrap_diff_ci(a.to_numpy(), b.to_numpy(), paired=paired)


def evaluate_claim(claim: Claim, cases: pd.DataFrame) -> list[dict]:
    """One row per dataset the claim could be checked on (or one 'not run' row)."""
    values = [group_values(cases, g) for g in claim.groups]
    datasets = sorted(set.intersection(*(set(v) for v in values))) if values else []
    base = {"id": claim.id, "paper": claim.paper, "claim": claim.text, "evidence": claim.evidence,
            "test": claim.test}
    if not datasets:
        return [{**base, "dataset": "", "ours": "cells not in the results", "estimate": math.nan,
                 "ci_lo": math.nan, "ci_hi": math.nan, "verdict": NOT_RUN}]
    rows = []
    for ds in datasets:
        series = [v[ds] for v in values]
        if claim.test == "greater":
            est, lo, hi = _diff(series[0], series[1])
            verdict = verdict_greater(lo, hi)
            ours = (f"{claim.groups[0].label()} - {claim.groups[1].label()}: "
                    f"{est:+.1f} [{lo:+.1f}, {hi:+.1f}]")
        elif claim.test == "similar":
            diffs = [(_diff(a, b), i, j) for (i, a), (j, b) in itertools.combinations(enumerate(series), 2)]
            verdict = verdict_similar([(lo, hi) for (_, lo, hi), _, _ in diffs], claim.margin)
            (est, lo, hi), i, j = max(diffs, key=lambda d: abs(d[0][0]))
            ours = (f"largest difference {claim.groups[i].where.get('loss', i)} - "
                    f"{claim.groups[j].where.get('loss', j)}: {est:+.1f} [{lo:+.1f}, {hi:+.1f}] "
                    f"(margin ±{claim.margin:g})")
        elif claim.test == "at_least":
            est = float(series[0].mean())
            lo, hi = bootstrap_ci(series[0].to_numpy())
            verdict = verdict_at_least(lo, hi, claim.published, claim.margin)
            ours = f"{est:.1f} [{lo:.1f}, {hi:.1f}] vs published {claim.published:g} (margin {claim.margin:g})"
        else:  # pragma: no cover - the claims above use only these tests
            raise ValueError(claim.test)
        rows.append({**base, "dataset": ds, "ours": ours, "estimate": est, "ci_lo": lo, "ci_hi": hi,
                     "verdict": verdict})
    return rows


def claims_table(cases: pd.DataFrame, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    return pd.DataFrame([r for c in claims for r in evaluate_claim(c, cases)])


RULE = ("Verdict rule: for 'A > B' claims, reproduced if the 95 % bootstrap CI of the mean case-wise DSC "
        "difference A - B lies above 0, not reproduced if it lies below 0, inconclusive if it contains 0; "
        "for 'similar' claims, reproduced if every pairwise CI lies within ±margin, not reproduced if one lies "
        "outside it, else inconclusive; for a published value, reproduced if the CI reaches it less the margin; "
        "not run if a needed cell is absent.")


def to_markdown(table: pd.DataFrame) -> str:
    cols = ["id", "paper", "claim", "evidence", "dataset", "ours", "verdict"]
    lines = ["# Claims of the four papers and our verdicts", "", RULE, "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(str(r[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    lines = [r"\begin{table}[htbp]", r"\centering", r"\scriptsize",
             r"\begin{tabularx}{\textwidth}{lXXlXl}", r"\toprule",
             r"Id & Claim & Paper's evidence & Data & Ours (DSC points, 95\,\% CI) & Verdict \\", r"\midrule"]
    for _, r in table.iterrows():
        lines.append(" & ".join(latex_escape(str(r[c])) for c in
                                ("id", "claim", "evidence", "dataset", "ours", "verdict")) + r" \\")
    lines += [r"\bottomrule", r"\end{tabularx}", rf"\caption{{Claims and verdicts. {latex_escape(RULE)}}}",
              r"\label{tab:claims}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", nargs="*", type=Path, default=[], help="experiments' cases.csv files")
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--md", required=True, type=Path)
    p.add_argument("--tex", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    table = claims_table(load_cases(args.cases))
    from dicebench.io import atomic_path

    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(args.md, to_markdown(table))
    write_text(args.tex, to_latex(table))
    return 0
