"""Tables: every cell's `metrics.csv` of an experiment gathered into one table.

`table.csv` is long-form (one row per cell and class, every number from a run the
workflow made); `table.md` pivots it for reading: one row per (dataset, network, loss,
weighting, lr), one column per class, each entry "DSC / HD95" as mean over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, write_text
from dicebench.reporting.results import CELL_KEYS, cell_table

def collect(experiment: str, metrics_paths: list[Path]) -> pd.DataFrame:
    frames = []
    for path in metrics_paths:
        path = Path(path)
        frames.append(cell_table(path, "metrics"))
    if not frames:
        raise DicebenchError(f"experiment '{experiment}': no metrics to aggregate")
    table = pd.concat(frames, ignore_index=True)
    front = ["experiment", *CELL_KEYS]
    return table[front + [c for c in table.columns if c not in front]]


def _entry(d: float, h: float) -> str:
    """'DSC / HD95'; n/a where a value is not defined (HD95 of the background, see evaluate)."""
    dsc = "n/a" if not np.isfinite(d) else f"{100 * d:.1f}"
    hd = "n/a" if not np.isfinite(h) else f"{h:.1f}"
    return f"{dsc} / {hd}"


def pivot(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table per dataset, with that dataset's classes only: rows (network, loss, weighting,
    lr), one column per class with 'DSC / HD95' (DSC in %, HD95 in mm), mean over seeds."""
    keys = ["network", "loss", "weighting", "lr"]
    out = {}
    for dataset, sub in table.groupby("dataset", sort=False):
        grouped = sub.groupby(keys + ["class_index", "class"], sort=False)[["dsc_mean", "hd95_mean"]].mean()
        grouped = grouped.reset_index()
        seeds = sub.groupby(keys, sort=False)["seed"].nunique().rename("seeds").reset_index()
        grouped["entry"] = [_entry(d, h) for d, h in zip(grouped["dsc_mean"], grouped["hd95_mean"])]
        wide = grouped.pivot_table(index=keys, columns="class", values="entry", aggfunc="first", sort=False)
        order = grouped.drop_duplicates("class").sort_values("class_index", key=lambda s: s.where(s >= 0, 10**6))
        wide = wide[[c for c in order["class"] if c in wide.columns]].reset_index()
        out[dataset] = wide.merge(seeds, on=keys)
    return out


def collect_cases(experiment: str, metrics_paths: list[Path]) -> pd.DataFrame:
    """Every cell's `per_case.csv` (beside its metrics.csv) in one long table with the cell keys.

    The per-case values are what the confidence intervals, Wilcoxon tests and claims use.
    """
    frames = []
    for path in metrics_paths:
        cases = Path(path).parent / "per_case.csv"
        df = cell_table(cases, "per-case metrics")
        missing = {"case", "class_index", "class", "dsc"} - set(df.columns)
        if missing:
            raise DicebenchError(f"{cases}: missing column(s) {', '.join(sorted(missing))}")
        frames.append(df)
    if not frames:
        raise DicebenchError(f"experiment '{experiment}': no per-case metrics to aggregate")
    table = pd.concat(frames, ignore_index=True)
    table["lr"] = table["lr"].map(lambda v: f"{float(v):g}")
    front = ["experiment", *CELL_KEYS]
    return table[front + [c for c in table.columns if c not in front]]


def write_tables(experiment: str, metrics_paths: list[Path], csv_path: Path, md_path: Path,
                 cases_path: Path | None = None, paper: str = "") -> pd.DataFrame:
    table = collect(experiment, metrics_paths)
    if cases_path is not None:
        # `paper`: the paper whose claims these cases feed (the experiment's, or for a generated
        # sub-patching experiment that of the experiment it varies).
        cases = collect_cases(experiment, metrics_paths).assign(paper=paper)
        with atomic_path(cases_path) as tmp:
            cases.to_csv(tmp, index=False)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    md = [f"# {experiment}: mean test DSC (%) / HD95 (mm)", "",
          "Every entry is the mean over the test cases (and over seeds where there are several, `seeds`) of a "
          "cell the workflow trained; `all` is the mean over the object classes. n/a: not defined (the "
          "background has no HD95: its surface is mostly the scan's border). A class absent from a test case "
          "counts there as DSC 100 / HD95 0 when none is predicted (the papers' tables, with the "
          "present-only view, are under figures/tables/).", ""]
    for dataset, wide in pivot(table).items():
        md += [f"## {dataset}", "", wide.to_markdown(index=False), ""]
    write_text(md_path, "\n".join(md))
    return table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True)
    p.add_argument("--metrics", required=True, nargs="+", type=Path, help="the cells' metrics.csv files")
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--md", required=True, type=Path)
    p.add_argument("--cases", type=Path, default=None, help="write every cell's per-case metrics here")
    p.add_argument("--paper", default="", help="the paper the experiment feeds (a cases.csv column)")


def run(args: argparse.Namespace) -> int:
    write_tables(args.experiment, args.metrics, args.csv, args.md, args.cases, args.paper)
    return 0
