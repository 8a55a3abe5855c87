"""The claims table: one row per claim the papers make (per dataset, and per learning rate
where a claim is tested at each), the paper's evidence, our estimate with its interval and
its n, and a verdict computed by one written-down rule.

Statistics (dicebench.reporting.stats): every claim is about training runs, so the seed is
the unit of replication. For each group of cells a claim compares, each seed's value is the
mean over the test cases of its DSC (%); a difference is taken per seed (paired by seed) and
the interval is a t-interval over seeds. The table's intervals are Bonferroni-adjusted over
the m claims it decides (each at 1 - alpha/m, and a claim with k comparisons splits its share
k ways), so all of them hold together with probability >= 1 - alpha.

Testability: a claim about a class is evaluated on the test cases whose reference contains
the class (n_cases says how many); if no test case contains it, the claim is not testable.
"all" (mean over the object classes) and "AVG" (over every class, Shen et al.) use every case.

Verdicts, exactly these words:
- ``greater`` (A > B), ``did_greater`` ((A1 - A2) - (B1 - B2) > 0): *reproduced* if the interval
  lies above 0, *not reproduced* if it lies below 0, else *inconclusive*.
- ``greatest`` (A above each of B1..Bk): *reproduced* if every A - Bj interval lies above 0,
  *not reproduced* if one lies below 0, else *inconclusive*.
- ``similar`` (A1..An within +-margin of each other): *reproduced* if every pairwise interval
  lies inside [-margin, margin], *not reproduced* if one lies entirely outside, else *inconclusive*.
- ``at_least`` (A reaches published - margin): *reproduced* if the lower bound reaches it, *not
  reproduced* if the upper bound stays below it, else *inconclusive*.
- ``spread_smaller`` (A's DSC varies less across learning rates than B's): per seed, the range
  (max - min over the learning rates) of each; *reproduced* if B's range - A's range lies above 0,
  *not reproduced* if below, else *inconclusive*.
- *insufficient evidence*: fewer seeds than `min_seeds` (default 3): the estimate is shown, no
  verdict is drawn; *not testable*: the class is absent from every test case; *not run*: a
  cell the claim needs is not in the results.

The verdict is a function of the numbers only; nothing is typed in by hand. Claims marked
`inferred` are our reading of what a paper implies, not a sentence it states.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dicebench.io import atomic_path, json_option, write_text
from dicebench.reporting.results import dataset_kind, load_cases, per_case
from dicebench.reporting.stats import ALPHA, Interval, difference_interval, seed_interval

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
INSUFFICIENT, NOT_TESTABLE, NOT_RUN = "insufficient evidence", "not testable", "not run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, INSUFFICIENT, NOT_TESTABLE, NOT_RUN)
DECISIVE = (REPRODUCED, NOT_REPRODUCED)
COLUMNS = ["id", "paper", "claim", "inferred", "test", "dataset", "estimate", "ci_lo", "ci_hi", "level",
           "n_seeds", "n_cases", "mdd", "verdict", "published", "margin", "evidence", "ours", "cells"]
CLASS_AGGREGATES = ("all", "AVG")


@dataclass(frozen=True)
class Rule:
    """The verdict rule's parameters (config `claims`)."""

    min_seeds: int = 3
    alpha: float = ALPHA

    @classmethod
    def from_dict(cls, values: dict | None) -> "Rule":
        from dicebench.settings import schema_defaults

        return cls(**{**schema_defaults("claims"), **(values or {})})


@dataclass(frozen=True)
class Group:
    """A set of cells and a class: the paper's experiment, the dataset kind (acdc/wmh/abdomen/
    prostate), filters on cases.csv columns.

    Without a `patch` filter the group is the experiment's own cells (its configured patch).
    With `patch` it spans the experiment's sub-patching sweep (cases.csv column `sweep_of`):
    `patch: smallest` picks, per dataset, the smallest training patch the sweep trained,
    `patch: configured` the experiment's own cells. Filter a sweep by `loss_variant` ("mime",
    "gdl (zero)"): GDL cells differ by policy only.
    """

    paper: str
    kind: str
    cls: str
    where: dict = field(default_factory=dict)

    def label(self) -> str:
        skip = {"loss": "weighted_dice"}
        words = {"lr": "lr {}", "patch": "{} patch"}
        sel = " ".join(words.get(k, "{}").format(v) for k, v in self.where.items() if skip.get(k) != v)
        return f"{sel} {self.cls}".strip()


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    text: str
    evidence: str
    test: str  # greater | did_greater | greatest | similar | at_least | spread_smaller
    groups: tuple[Group, ...]
    margin: float = 0.0  # DSC percentage points
    published: float = math.nan
    inferred: bool = False
    per: str | None = None  # a cases.csv column to test the claim at each value of (e.g. "lr")


def _k(kind, cls, **w):
    return Group("kervadec2023", kind, cls, w)


def _s(cls, w, lr):
    return Group("shen2018", "abdomen", cls, {"loss": "weighted_dice", "weighting": w, "lr": lr})


def _u(loss):
    return Group("sudre2017", "wmh", "WMH", {"loss": loss})


CLAIMS: tuple[Claim, ...] = (
    Claim("K1", "kervadec2023", "GDL fails on the rarest WMH class (other pathologies) while Mime holds",
          "Table 1: other pathologies DSC Mime 63.0 vs GDL 0.0", "greater",
          (_k("wmh", "other_pathology", loss="mime"), _k("wmh", "other_pathology", loss="gdl"))),
    Claim("K2", "kervadec2023", "All Dice variants perform similarly on ACDC (within 5 DSC points)",
          "Sec. 4; Table 1: ACDC All 82.1-84.2 for DSC, VNet, GDL, Mime", "similar",
          tuple(_k("acdc", "all", loss=loss) for loss in ("dice", "vnet", "gdl", "mime")), margin=5.0),
    Claim("K3", "kervadec2023", "Dice variants struggle with other pathologies while WMH is segmented",
          "Sec. 4; Table 1: DSC loss WMH 68.6 vs other pathologies 0.5", "greater",
          (_k("wmh", "WMH", loss="dice"), _k("wmh", "other_pathology", loss="dice"))),
    Claim("K4", "kervadec2023", "Mime handles empty patches gracefully: better than the Dice loss on the "
          "often-absent class", "Sec. 4 and Table 1: other pathologies Mime 63.0 vs DSC 0.5", "greater",
          (_k("wmh", "other_pathology", loss="mime"), _k("wmh", "other_pathology", loss="dice"))),
    Claim("K5", "kervadec2023", "Mime can be sub-patched: at the smallest trained patch, where most patches "
          "lack a structure, Mime beats the Dice loss", "Sec. 2 and Conclusion: all Dice variants 'struggle when "
          "a patch is empty'; Mime 'can easily be sub-patched'", "greater",
          (_k("acdc", "all", loss_variant="mime", patch="smallest"),
           _k("acdc", "all", loss_variant="dice", patch="smallest"))),
    Claim("K6", "kervadec2023", "Sub-patching hurts the Dice loss more than Mime: the Dice loss's DSC drop from "
          "the configured to the smallest patch exceeds Mime's", "Sec. 2 and Conclusion: empty patches cause "
          "divisions by zero for the Dice variants, while Mime 'can easily be sub-patched'", "did_greater",
          (_k("acdc", "all", loss_variant="dice", patch="configured"),
           _k("acdc", "all", loss_variant="dice", patch="smallest"),
           _k("acdc", "all", loss_variant="mime", patch="configured"),
           _k("acdc", "all", loss_variant="mime", patch="smallest"))),
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
    Claim("S6", "shen2018", "Simple weighting is best at lr 0.01 (above uniform and square)",
          "Sec. 4: 'the simple model performed best when the learning rate was increased to 0.01'; "
          "Table 1: AVG W_s 88.9 vs W_u 86.4, W_q 78.9", "greatest",
          (_s("AVG", "simple", "0.01"), _s("AVG", "uniform", "0.01"), _s("AVG", "square", "0.01"))),
    Claim("S7", "shen2018", "Uniform weighting is stable across the two learning rates (within 5 DSC points)",
          "Sec. 4: 'As for the uniform weights, it kept a stable accuracy'; Table 1: AVG W_u 88.3 (0.001), "
          "86.4 (0.01); margin ours", "similar",
          (_s("AVG", "uniform", "0.001"), _s("AVG", "uniform", "0.01")), margin=5.0),
    Claim("L1", "liu2018", "rdd + V-Net Dice loss reaches 86.42 % mean DSC on prostate (within 5 points)",
          "Sec. 2.2: 'average DSC value of 86.42% in validation set'", "at_least",
          (Group("liu2018", "prostate", "all", {"network": "rdd", "loss": "vnet"}),), margin=5.0, published=86.42),
    Claim("U1", "sudre2017", "GDL beats the Dice loss on the rare WMH class under imbalance, at each learning rate",
          "Abstract: GDL as 'a robust and accurate deep-learning loss function for unbalanced tasks'", "greater",
          (_u("gdl"), _u("dice")), inferred=True, per="lr"),
    Claim("U2", "sudre2017", "GDL beats weighted cross-entropy on the rare WMH class, at each learning rate",
          "Abstract: GDL proposed over weighted cross-entropy for unbalanced tasks", "greater",
          (_u("gdl"), _u("wce")), inferred=True, per="lr"),
    Claim("U3", "sudre2017", "GDL is less sensitive to the learning rate than the Dice loss (smaller DSC range "
          "across learning rates)", "Abstract: the losses' 'sensitivity to learning rate tuning' studied; GDL "
          "'robust'", "spread_smaller", (_u("gdl"), _u("dice")), inferred=True),
    Claim("U4", "sudre2017", "GDL is less sensitive to the learning rate than weighted cross-entropy",
          "Abstract: as U3", "spread_smaller", (_u("gdl"), _u("wce")), inferred=True),
)


# ---------------------------------------------------------------- selecting cells


def _patch_voxels(label: str) -> int:
    return int(np.prod([int(v) for v in str(label).split("x")]))


def _paper_rows(cases: pd.DataFrame, paper: str, sweep: bool) -> pd.DataFrame:
    """The cases of a paper's experiment; with `sweep`, of its sub-patching sweep too."""
    if "paper" in cases.columns:
        sub = cases[cases["paper"] == paper]
        if not sweep and "sweep_of" in cases.columns:
            sub = sub[sub["experiment"] == sub["sweep_of"]]
        return sub
    if sweep and "sweep_of" in cases.columns:
        return cases[cases["sweep_of"] == paper]
    return cases[cases["experiment"] == paper]


FILTER_COLUMNS = ("experiment", "paper", "dataset", "network", "loss", "weighting", "lr", "patch", "loss_variant",
                  "sweep_of")


def _prepare(cases: pd.DataFrame) -> pd.DataFrame:
    """The filter columns as text once, so every selection is a plain comparison."""
    cols = {c: cases[c].astype(str) for c in FILTER_COLUMNS if c in cases.columns and cases[c].dtype != object}
    return cases.assign(**cols) if cols else cases


def _match(rows: pd.DataFrame, where: dict) -> pd.DataFrame:
    for k, v in where.items():
        rows = rows[rows[k] == str(v)] if k in rows.columns else rows.iloc[:0]
    return rows


def group_rows(cases: pd.DataFrame, g: Group) -> dict[str, pd.DataFrame]:
    """The case rows of the group, per dataset of its kind (real and synthetic versions of one
    anatomy are reported separately)."""
    where = dict(g.where)
    patch = where.pop("patch", None)
    if not len(cases) or (patch and "patch" not in cases.columns):
        return {}
    sub = _paper_rows(cases, g.paper, sweep=patch == "smallest")
    out = {}
    for ds in dict.fromkeys(sub["dataset"]):
        if dataset_kind(sub, ds) != g.kind:
            continue
        rows = sub[sub["dataset"] == ds]
        if patch == "smallest":
            match = _match(rows, where)
            sizes = sorted(set(match["patch"]), key=_patch_voxels)
            configured = set(rows.loc[rows["experiment"] == rows["sweep_of"], "patch"])
            # A sweep needs a patch smaller than the configured one; else the claim was not run.
            if not sizes or sizes[0] in configured:
                continue
            rows = rows[rows["patch"] == sizes[0]]
        rows = _match(rows, where)
        if not rows.empty:
            out[ds] = rows
    return out


def _present_only(cls: str) -> bool:
    return cls not in CLASS_AGGREGATES


def group_per_seed(rows: pd.DataFrame, cls: str) -> tuple[pd.Series, int]:
    """DSC (%) per seed, the mean over the test cases (those containing `cls` for a class),
    and how many test cases that is."""
    pc = per_case(rows, cls, "dsc", present_only=_present_only(cls))
    if pc.empty:
        return pd.Series(dtype=float), 0
    return 100 * pc.groupby("seed")["value"].mean().sort_index(), int(pc["case"].nunique())


def _cells(rows: pd.DataFrame) -> list[str]:
    return sorted(set(rows["cell"].astype(str))) if "cell" in rows.columns else []


# ---------------------------------------------------------------- verdict rules


def _finite(*v: float) -> bool:
    return all(np.isfinite(x) for x in v)


def verdict_greater(lo: float, hi: float) -> str:
    if not _finite(lo, hi):
        return INSUFFICIENT
    return REPRODUCED if lo > 0 else NOT_REPRODUCED if hi < 0 else INCONCLUSIVE


def verdict_greatest(cis: list[tuple[float, float]]) -> str:
    if not cis or any(not _finite(lo, hi) for lo, hi in cis):
        return INSUFFICIENT
    if all(lo > 0 for lo, _ in cis):
        return REPRODUCED
    if any(hi < 0 for _, hi in cis):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def verdict_similar(cis: list[tuple[float, float]], margin: float) -> str:
    if not cis or any(not _finite(lo, hi) for lo, hi in cis):
        return INSUFFICIENT
    if all(-margin <= lo and hi <= margin for lo, hi in cis):
        return REPRODUCED
    if any(lo > margin or hi < -margin for lo, hi in cis):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def verdict_at_least(lo: float, hi: float, published: float, margin: float) -> str:
    if not _finite(lo, hi):
        return INSUFFICIENT
    target = published - margin
    return REPRODUCED if lo >= target else NOT_REPRODUCED if hi < target else INCONCLUSIVE


# ---------------------------------------------------------------- evaluating a claim


@dataclass
class Pending:
    """One row of the table before its interval: the per-seed values it compares."""

    claim: Claim
    dataset: str
    values: list[pd.Series]  # per group, per seed (DSC %); for spread_smaller: per seed the range
    n_cases: int
    cells: list[str]
    label: str = ""
    status: str = ""  # "" = decidable, else the verdict it gets without an interval

    @property
    def comparisons(self) -> int:
        n = len(self.claim.groups)
        return max(1, {"similar": n * (n - 1) // 2, "greatest": n - 1}.get(self.claim.test, 1))

    @property
    def n_seeds(self) -> int:
        if not self.values:
            return 0
        if self.claim.test == "at_least":
            return len(self.values[0])
        common = set.intersection(*(set(v.index) for v in self.values))
        return len(common) if common else min(len(v) for v in self.values)


def _paired(a: pd.Series, b: pd.Series) -> pd.Series:
    common = a.index.intersection(b.index)
    return (a[common] - b[common]).sort_index()


def _lr_range(rows: pd.DataFrame, cls: str) -> pd.Series:
    """Per seed, max - min over the learning rates of the seed's case-mean DSC (%); a seed is
    kept only if it was trained at every learning rate of the group."""
    lrs = sorted(set(rows["lr"]), key=float)
    if len(lrs) < 2:
        return pd.Series(dtype=float)
    table = pd.concat({lr: group_per_seed(rows[rows["lr"] == lr], cls)[0] for lr in lrs}, axis=1).dropna()
    return (table.max(axis=1) - table.min(axis=1)).sort_index()


def pending_rows(claim: Claim, cases: pd.DataFrame) -> list[Pending]:
    """The rows of one claim: one per dataset the claim can be checked on (and per value of
    `claim.per`), or one 'not run' row."""
    selected = [group_rows(cases, g) for g in claim.groups]
    datasets = sorted(set.intersection(*(set(s) for s in selected))) if selected else []
    if not datasets:
        return [Pending(claim, "", [], 0, [], status=NOT_RUN)]
    out = []
    for ds in datasets:
        frames = [s[ds] for s in selected]
        if claim.per:
            values = sorted(set.intersection(*(set(f[claim.per]) for f in frames)), key=_sort_key)
            splits = [(v, [f[f[claim.per] == v] for f in frames]) for v in values]
        else:
            splits = [("", frames)]
        for value, parts in splits:
            out.append(_pending(claim, ds, parts, f"{claim.per} {value}" if claim.per else ""))
    return out


def _sort_key(v: str):
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)


def _pending(claim: Claim, ds: str, frames: list[pd.DataFrame], label: str) -> Pending:
    classes = [g.cls for g in claim.groups]
    seeds_and_counts = [group_per_seed(f, c) for f, c in zip(frames, classes)]
    n_cases = min(n for _, n in seeds_and_counts)
    cells = sorted({c for f in frames for c in _cells(f)})
    if claim.test == "spread_smaller":
        values = [_lr_range(f, c) for f, c in zip(frames, classes)]
    else:
        values = [v for v, _ in seeds_and_counts]
    p = Pending(claim, ds, values, n_cases, cells, label)
    if n_cases == 0:
        p.status = NOT_TESTABLE
    return p


def _estimate(p: Pending, level: float) -> tuple[Interval | None, list[tuple[str, Interval]], str]:
    """The row's interval(s) at `level` per comparison, and its verdict."""
    c, v = p.claim, p.values
    if c.test == "greater":
        i = difference_interval(v[0], v[1], level)
        return i, [("", i)], verdict_greater(i.lo, i.hi)
    if c.test == "did_greater":
        i = difference_interval(_paired(v[0], v[1]), _paired(v[2], v[3]), level)
        return i, [("", i)], verdict_greater(i.lo, i.hi)
    if c.test == "spread_smaller":
        i = difference_interval(v[1], v[0], level)
        return i, [("", i)], verdict_greater(i.lo, i.hi)
    if c.test == "at_least":
        i = seed_interval(v[0].to_numpy(), level)
        return i, [("", i)], verdict_at_least(i.lo, i.hi, c.published, c.margin)
    if c.test == "greatest":
        pairs = [(c.groups[j].label(), difference_interval(v[0], v[j], level)) for j in range(1, len(v))]
        smallest = min(pairs, key=lambda kv: kv[1].estimate if np.isfinite(kv[1].estimate) else np.inf)[1]
        return smallest, pairs, verdict_greatest([(i.lo, i.hi) for _, i in pairs])
    if c.test == "similar":
        pairs = [(f"{c.groups[a].label()} - {c.groups[b].label()}", difference_interval(v[a], v[b], level))
                 for a, b in itertools.combinations(range(len(v)), 2)]
        largest = max(pairs, key=lambda kv: abs(kv[1].estimate) if np.isfinite(kv[1].estimate) else -1)[1]
        return largest, pairs, verdict_similar([(i.lo, i.hi) for _, i in pairs], c.margin)
    raise ValueError(f"unknown claim test '{c.test}'")


def _ours(p: Pending, main: Interval | None, pairs: list[tuple[str, Interval]]) -> str:
    c = p.claim
    if main is None or not np.isfinite(main.estimate):
        return "cells not in the results" if p.status == NOT_RUN else "no value"

    def ci(i: Interval) -> str:
        return f"{i.estimate:+.1f} [{i.lo:+.1f}, {i.hi:+.1f}]" if _finite(i.lo, i.hi) else f"{i.estimate:+.1f}"

    g = c.groups
    if c.test == "greater":
        return f"{g[0].label()} - {g[1].label()}: {ci(main)}"
    if c.test == "did_greater":
        return f"({g[0].label()} - {g[1].label()}) - ({g[2].label()} - {g[3].label()}): {ci(main)}"
    if c.test == "spread_smaller":
        return f"lr range of {g[1].label()} - lr range of {g[0].label()}: {ci(main)}"
    if c.test == "at_least":
        return f"{main.estimate:.1f}" + (f" [{main.lo:.1f}, {main.hi:.1f}]" if _finite(main.lo, main.hi) else "") + \
            f" vs published {c.published:g} - {c.margin:g}"
    if c.test == "greatest":
        return f"{g[0].label()} minus: " + "; ".join(f"{name} {ci(i)}" for name, i in pairs)
    return "; ".join(f"{name} {ci(i)}" for name, i in pairs) + f" (margin ±{c.margin:g})"


def claims_table(cases: pd.DataFrame, claims: tuple[Claim, ...] = CLAIMS, rule: Rule | None = None) -> pd.DataFrame:
    """Every claim's rows with Bonferroni-adjusted intervals and verdicts."""
    rule = rule or Rule()
    cases = _prepare(cases)
    pending = [p for c in claims for p in pending_rows(c, cases)]
    for p in pending:
        if not p.status and p.n_seeds < rule.min_seeds:
            p.status = INSUFFICIENT
    decided = [p for p in pending if not p.status]
    m = max(1, len(decided))
    rows = []
    for p in pending:
        c = p.claim
        level = 1 - rule.alpha / (m * p.comparisons)
        main, pairs, verdict = (None, [], p.status) if p.status == NOT_RUN else _estimate(p, level)
        if p.status:
            verdict = p.status
        name = c.id if not p.label else f"{c.id} ({p.label})"
        rows.append({
            "id": name, "paper": c.paper, "claim": c.text, "inferred": c.inferred, "test": c.test,
            "dataset": p.dataset, "estimate": main.estimate if main else math.nan,
            "ci_lo": main.lo if main else math.nan, "ci_hi": main.hi if main else math.nan,
            "level": level, "n_seeds": p.n_seeds, "n_cases": p.n_cases,
            "mdd": main.mdd if main else math.nan, "verdict": verdict,
            "published": c.published, "margin": c.margin, "evidence": c.evidence,
            "ours": _ours(p, main, pairs), "cells": ";".join(p.cells),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def rule_text(rule: Rule, m: int) -> str:
    return (f"Verdict rule: per claim, each seed's DSC is the mean over its test cases (for a class: the cases "
            f"whose reference contains it); differences are paired by seed and the interval is a t-interval "
            f"over seeds, Bonferroni-adjusted over the {m} claims decided here (family-wise error "
            f"{rule.alpha:g}: level 1 - {rule.alpha:g}/{m} per claim, split further over a claim's comparisons). "
            f"'A > B': reproduced if the interval lies above 0, not reproduced if below 0, else inconclusive; "
            f"'similar': reproduced if every pairwise interval lies within ±margin, not reproduced if one lies "
            f"outside it; 'at least': reproduced if the lower bound reaches the published value less the margin, "
            f"not reproduced if the upper bound stays below it. Fewer than {rule.min_seeds} seeds: insufficient "
            f"evidence (estimate shown); class absent from every test case: not testable; cells missing: not run. "
            f"mdd: the smallest true difference the claim's design detects with 80 % power at its level.")


SYNTHETIC_NOTE = ("Datasets named synth_* are synthetic phantoms: a verdict on them is evidence about the pipeline "
                  "and the mechanism the phantom was built to hold, not about the real dataset.")


def _fmt(v, digits: int = 1) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _n(r) -> str:
    return f"{int(r['n_seeds'])} × {int(r['n_cases'])}"


def _decided(table: pd.DataFrame) -> int:
    return int((~table["verdict"].isin([INSUFFICIENT, NOT_TESTABLE, NOT_RUN])).sum())


def to_markdown(table: pd.DataFrame, rule: Rule) -> str:
    cols = ["id", "paper", "claim", "inferred", "evidence", "dataset", "ours", "n (seeds × cases)", "mdd", "verdict"]
    lines = ["# Claims of the four papers and our verdicts", "", rule_text(rule, _decided(table)), "",
             SYNTHETIC_NOTE, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        vals = {**r.to_dict(), "n (seeds × cases)": _n(r), "mdd": _fmt(r["mdd"]),
                "inferred": "inferred" if r["inferred"] else "stated"}
        lines.append("| " + " | ".join(str(vals[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, rule: Rule) -> str:
    from dicebench.reporting.paper_tables import latex_escape

    lines = [r"\begin{table}[htbp]", r"\centering", r"\small",
             r"\begin{tabularx}{\textwidth}{lXlXrl}", r"\toprule",
             r"Id & Claim & Data & Ours (DSC points, interval) & $n$ & Verdict \\", r"\midrule"]
    for _, r in table.iterrows():
        claim = r["claim"] + (" (inferred)" if r["inferred"] else "")
        cells = [r["id"], claim, r["dataset"], r["ours"], _n(r), r["verdict"]]
        lines.append(" & ".join(latex_escape(str(c)) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabularx}",
              rf"\caption{{Claims and verdicts ($n$: seeds $\times$ test cases). "
              rf"{latex_escape(rule_text(rule, _decided(table)))} {latex_escape(SYNTHETIC_NOTE)}}}",
              r"\label{tab:claims}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", nargs="*", type=Path, default=[], help="experiments' cases.csv files")
    p.add_argument("--rule", default="{}", help="JSON: the config's `claims` section (min_seeds, alpha)")
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--md", required=True, type=Path)
    p.add_argument("--tex", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    rule = Rule.from_dict(json_option(args.rule, "--rule"))
    table = claims_table(load_cases(args.cases), rule=rule)
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(args.md, to_markdown(table, rule))
    write_text(args.tex, to_latex(table, rule))
    return 0
