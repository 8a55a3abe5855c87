"""Every claim (and every paper table's numbers) recomputed under the common conventions for
empty masks and HD95, to show which verdicts depend on a convention.

Evaluation stores, per case and class, DSC and HD95 under our convention plus what is needed
to recompute the others: the voxel counts of reference and prediction, MedPy's pooled HD95
(`hd95_pooled`) and the scan diagonal. The conventions:

| name | both empty: DSC | reference empty, prediction not: DSC | one empty: HD95 | HD95 |
|---|---|---|---|---|
| dicebench (Kervadec & de Bruijne 2023, Sec. 3) | 1 | 0 | scan diagonal (both empty: 0) | max of directed P95 |
| nnunet (nnU-Net v2 `compute_metrics`) | NaN, left out of means | 0 | not computed (NaN) | – |
| metrics_reloaded (MetricsReloaded `BinaryPairwiseMeasures`) | 1 | 0 | undefined (NaN; both empty: 0) | max of directed P95 |
| monai_ignore_empty (MONAI `DiceMetric(ignore_empty=True)`, `compute_hausdorff_distance`) | NaN | NaN | NaN | max of directed P95 |
| medpy_hd95 (ours for DSC, MedPy's `hd95`) | 1 | 0 | scan diagonal (both empty: 0) | pooled P95 of both directions |

NaN values are left out of every mean (a case then counts for the classes it has). The
claims' class-specific comparisons already use only the cases containing the class, so a
convention changes them only through "all"/"AVG" means; the table says which verdicts flip.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from dicebench.io import atomic_path, json_option, write_text
from dicebench.reporting.claims import CLAIMS, Rule, claims_table
from dicebench.reporting.results import load_cases

CONVENTIONS = {
    "dicebench": "both empty: DSC 1, HD95 0; one empty: HD95 = scan diagonal (ours, after Kervadec & de Bruijne)",
    "nnunet": "both empty: DSC NaN, left out of the mean (nnU-Net v2); no HD95",
    "metrics_reloaded": "both empty: DSC 1, HD95 0; one empty: HD95 undefined (MetricsReloaded)",
    "monai_ignore_empty": "empty reference: DSC NaN (MONAI DiceMetric ignore_empty=True); one empty: HD95 NaN",
    "medpy_hd95": "DSC as ours; HD95 = MedPy's pooled 95th percentile of both directions",
}


def apply_convention(cases: pd.DataFrame, name: str) -> pd.DataFrame:
    """The per-case table with `dsc` and `hd95` recomputed under convention `name`."""
    if name not in CONVENTIONS:
        raise ValueError(f"unknown convention '{name}'")
    out = cases.copy()
    if name == "dicebench" or "gt_voxels" not in out.columns:
        return out
    gt, pred = out["gt_voxels"] > 0, out["pred_voxels"] > 0
    both_empty, one_empty = ~gt & ~pred, gt ^ pred
    obj = out["class_index"] > 0
    if name == "nnunet":
        out.loc[both_empty, "dsc"] = np.nan
        out.loc[obj, "hd95"] = np.nan
    elif name == "metrics_reloaded":
        out.loc[obj & one_empty, "hd95"] = np.nan
    elif name == "monai_ignore_empty":
        out.loc[~gt, "dsc"] = np.nan
        out.loc[obj & (one_empty | both_empty), "hd95"] = np.nan
    elif name == "medpy_hd95" and "hd95_pooled" in out.columns:
        out.loc[obj, "hd95"] = out.loc[obj, "hd95_pooled"]
    return out


def conventions_table(cases: pd.DataFrame, rule: Rule | None = None) -> pd.DataFrame:
    """One row per claim row: its estimate and verdict under each convention, and whether
    the verdict flips."""
    frames = {}
    for name in CONVENTIONS:
        t = claims_table(apply_convention(cases, name), CLAIMS, rule)
        frames[name] = t.set_index(["id", "dataset"])
    base = frames["dicebench"]
    out = base[["paper", "claim"]].copy()
    for name, t in frames.items():
        out[f"{name}_estimate"] = t["estimate"].reindex(base.index)
        out[f"{name}_verdict"] = t["verdict"].reindex(base.index)
    verdicts = out[[f"{n}_verdict" for n in CONVENTIONS]]
    out["flips"] = verdicts.nunique(axis=1) > 1
    return out.reset_index()


def paper_tables_under_conventions(cases: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Every paper table's entries recomputed under each convention (long form, one row per
    entry and convention), with the change from ours."""
    from dicebench.reporting.paper_tables import BUILDERS

    if "paper" not in cases.columns:
        return pd.DataFrame()
    main = cases[cases["experiment"] == cases.get("sweep_of", cases["experiment"])]
    frames = []
    for paper, builder in BUILDERS.items():
        own = main[main["paper"] == paper]
        if own.empty:
            continue
        keys = ["paper", "dataset", "row", "column", "metric", "view"]
        base = None
        for name in CONVENTIONS:
            long = builder(apply_convention(own, name), published, {})
            long = long[[*keys, "ours", "n_cases"]].assign(convention=name)
            # A convention can add or drop entries (a present-only view exists only where a
            # class is absent from some case): the change is taken entry by entry, by key.
            base = long.set_index(keys)["ours"] if base is None else base
            change = long.set_index(keys)["ours"] - base.reindex(pd.MultiIndex.from_frame(long[keys]))
            frames.append(long.assign(change=change.to_numpy()))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def to_markdown(table: pd.DataFrame, tables: pd.DataFrame | None = None) -> str:
    names = list(CONVENTIONS)
    lines = ["# Claims under the metric conventions for empty masks and HD95", "",
             "Each column recomputes every claim with one convention (verdict, estimate in DSC points); "
             "**flips** marks the claims whose verdict depends on the convention.", ""]
    lines += [f"- `{n}`: {d}" for n, d in CONVENTIONS.items()]
    lines += ["", "| id | dataset | " + " | ".join(names) + " | flips |", "|" + "---|" * (len(names) + 3)]
    for _, r in table.iterrows():
        cells = [f"{r[f'{n}_verdict']} ({_fmt(r[f'{n}_estimate'])})" for n in names]
        lines.append(f"| {r['id']} | {r['dataset']} | " + " | ".join(cells) + f" | {'**yes**' if r['flips'] else 'no'} |")
    if tables is not None and not tables.empty:
        moved = tables[tables["change"].abs() > 0.05]
        lines += ["", "## The papers' tables under each convention", "",
                  f"{len(tables[tables['convention'] == 'dicebench'])} table entries recomputed under each convention "
                  f"(conventions_tables.csv); {moved[['paper', 'dataset', 'row', 'column', 'metric', 'view']].drop_duplicates().shape[0]} "
                  "of them change by more than 0.05:", ""]
        if not moved.empty:
            lines += ["| paper | dataset | row | column | metric | convention | ours | change |", "|" + "---|" * 8]
            for _, r in moved.iterrows():
                lines.append(f"| {r['paper']} | {r['dataset']} | {r['row']} | {r['column']} | {r['metric']} | "
                             f"{r['convention']} | {_fmt(r['ours'])} | {_fmt(r['change'])} |")
    return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:+.1f}"


def to_latex(table: pd.DataFrame) -> str:
    from dicebench.reporting.paper_tables import latex_escape

    names = list(CONVENTIONS)
    short = {"dicebench": "ours", "nnunet": "nnU-Net", "metrics_reloaded": "Metrics Reloaded",
             "monai_ignore_empty": "MONAI ignore\\_empty", "medpy_hd95": "MedPy HD95"}
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", r"\begin{tabular}{ll" + "l" * len(names) + "l}",
             r"\toprule", "Id & Data & " + " & ".join(short[n] for n in names) + r" & Flips \\", r"\midrule"]
    for _, r in table.iterrows():
        cells = [latex_escape(str(r[f"{n}_verdict"])) for n in names]
        lines.append(f"{latex_escape(r['id'])} & {latex_escape(r['dataset'])} & " + " & ".join(cells)
                     + (r" & \textbf{yes}" if r["flips"] else " & no") + r" \\")
    caption = ("Verdicts of every claim recomputed under the common conventions for empty masks and HD95: "
               + "; ".join(f"{short[n].replace(chr(92), '')}: {d}" for n, d in CONVENTIONS.items()) + ".")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{latex_escape(caption)}}}", r"\label{tab:conventions}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", nargs="*", type=Path, default=[], help="experiments' cases.csv files")
    p.add_argument("--rule", default="{}", help="JSON: the config's `claims` section")
    p.add_argument("--published", type=Path, default=None, help="paper/published.yaml (for the papers' tables)")
    p.add_argument("--tables-csv", type=Path, default=None, help="write the papers' tables under each convention")
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--md", required=True, type=Path)
    p.add_argument("--tex", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    from dicebench.reporting.paper_tables import load_published

    cases = load_cases(args.cases)
    table = conventions_table(cases, Rule.from_dict(json_option(args.rule, "--rule")))
    tables = paper_tables_under_conventions(cases, load_published(args.published)) if args.published else None
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)
    if args.tables_csv is not None:
        with atomic_path(args.tables_csv) as tmp:
            (tables if tables is not None else pd.DataFrame()).to_csv(tmp, index=False)
    write_text(args.md, to_markdown(table, tables))
    write_text(args.tex, to_latex(table))
    return 0
