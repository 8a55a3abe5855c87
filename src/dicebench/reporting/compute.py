"""What each cell cost: wall time, CPU-seconds (GPU-seconds on a GPU), peak memory and
iterations, read from what the trainer records (`cell.json`) and from Snakemake's benchmark
files of the cell's train, infer and evaluate jobs (`<results>/benchmarks/<rule>/<cell>.tsv`).

`figures/tables/compute.csv` has one row per cell; the Markdown and LaTeX renderings sum them
per experiment (the paper's appendix), so a reader sees what a rerun of a table will take.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from dicebench.errors import DicebenchError
from dicebench.grid import CELL_PATTERN
from dicebench.io import atomic_path, write_text

STEPS = ("train", "infer", "evaluate")
COLUMNS = ["experiment", "dataset", "network", "loss", "weighting", "lr", "seed", "cell", "iterations", "converged",
           "train_wall_s", "train_cpu_s", "train_gpu_s", "peak_rss_mb", "peak_cuda_mb", "infer_wall_s", "infer_cpu_s",
           "evaluate_wall_s", "evaluate_cpu_s"]


def _benchmark(path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a Snakemake benchmark file (the last repeat), NaN if absent."""
    try:
        table = pd.read_csv(path, sep="\t")
        return float(table["s"].iloc[-1]), float(table["cpu_time"].iloc[-1])
    except (OSError, KeyError, IndexError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return (np.nan, np.nan)


def cell_costs(cell_jsons: list[Path], results: Path | None = None) -> pd.DataFrame:
    """One row per cell from its cell.json and its jobs' benchmark files (under `results`,
    by default the results folder the cell folder lies in)."""
    rows = []
    for path in cell_jsons:
        path = Path(path)
        try:
            cell = json.loads(path.read_text())
            s = cell["settings"]
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise DicebenchError(f"{path}: cannot read the cell's cell.json ({exc})") from None
        name = CELL_PATTERN.format(experiment=s["experiment"], dataset=s["dataset"], network=s["network"],
                                   loss=s["loss"], weighting=s.get("weighting", "none"), lr=f"{float(s['lr']):g}",
                                   seed=s["seed"])
        root = Path(results) if results is not None else path.parents[len(CELL_PATTERN.split("/"))]
        bench = {step: _benchmark(root / "benchmarks" / step / f"{name}.tsv") for step in STEPS}
        peak = cell.get("peak_memory_mb") or {}
        rows.append({
            **{k: s.get(k) for k in ("experiment", "dataset", "network", "loss", "weighting", "seed")},
            "lr": f"{float(s['lr']):g}", "cell": str(path.parent),
            "iterations": cell.get("iterations", s.get("recipe", {}).get("iterations")),
            "converged": (cell.get("convergence") or {}).get("converged"),
            "train_wall_s": cell.get("wall_time_s", bench["train"][0]),
            "train_cpu_s": cell.get("cpu_time_s", bench["train"][1]),
            "train_gpu_s": cell.get("gpu_time_s"), "peak_rss_mb": peak.get("rss"), "peak_cuda_mb": peak.get("cuda"),
            "infer_wall_s": bench["infer"][0], "infer_cpu_s": bench["infer"][1],
            "evaluate_wall_s": bench["evaluate"][0], "evaluate_cpu_s": bench["evaluate"][1],
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def per_experiment(costs: pd.DataFrame) -> pd.DataFrame:
    """Cells, converged cells, iterations and the summed costs of each experiment."""
    if costs.empty:
        return pd.DataFrame(columns=["experiment", "cells", "converged", "iterations", "train wall (min)",
                                     "CPU (min)", "GPU (min)", "peak RSS (MB)"])
    g = costs.groupby("experiment", sort=False)
    cpu = costs[["train_cpu_s", "infer_cpu_s", "evaluate_cpu_s"]].sum(axis=1, min_count=1)
    return pd.DataFrame({
        "cells": g.size(),
        "converged": g["converged"].apply(lambda v: int((v == True).sum())),  # noqa: E712 (None = not recorded)
        "iterations": g["iterations"].max(),
        "train wall (min)": g["train_wall_s"].sum() / 60,
        "CPU (min)": cpu.groupby(costs["experiment"], sort=False).sum() / 60,
        "GPU (min)": g["train_gpu_s"].sum(min_count=1) / 60,
        "peak RSS (MB)": g["peak_rss_mb"].max(),
    }).reset_index()


def _fmt(v) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return "–" if v is None or not np.isfinite(v) else f"{v:.1f}"


CAPTION = ("Compute per experiment: cells trained (converged by the trainer's rule), iterations per cell, "
           "training wall time, CPU time of every cell's train, infer and evaluate jobs (Snakemake's benchmark "
           "files), GPU time (training on a GPU), the largest peak memory of a training job. One row per cell "
           "in compute.csv.")


def write(costs: pd.DataFrame, csv: Path, md: Path, tex: Path) -> None:
    from dicebench.reporting.paper_tables import Block, to_latex, to_markdown

    with atomic_path(csv) as tmp:
        costs.to_csv(tmp, index=False)
    summary = per_experiment(costs)
    block = Block("", list(summary.columns))
    for _, r in summary.iterrows():
        block.add([str(r["experiment"])] + [_fmt(r[c]) for c in summary.columns[1:]])
    write_text(md, f"# Compute\n\n{CAPTION}\n\n" + to_markdown([block]))
    write_text(tex, to_latex([block], CAPTION, "tab:compute"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cells", nargs="+", type=Path, required=True, help="every cell's cell.json")
    p.add_argument("--results", type=Path, default=None,
                   help="the results folder (benchmarks/ under it); default: the one the cells lie in")
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--md", required=True, type=Path)
    p.add_argument("--tex", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    write(cell_costs(args.cells, args.results), args.csv, args.md, args.tex)
    return 0
