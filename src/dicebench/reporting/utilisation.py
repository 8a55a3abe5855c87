"""How well a run used the machine's cores: the CPU time of every job it ran (Snakemake's
benchmark files written since the run started) over its wall time times the cores.

    dicebench utilisation --benchmarks results/evidence/benchmarks --since EPOCH --cores 2

`make evidence` prints it at the end of the run (README, "What the evidence run shows").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from dicebench.errors import DicebenchError


def job_cpu_seconds(benchmarks: Path, since: float) -> tuple[float, int]:
    """Summed `cpu_time` of the benchmark files modified at or after `since`, and their count."""
    total, jobs = 0.0, 0
    for path in Path(benchmarks).rglob("*.tsv"):
        if path.stat().st_mtime < since:
            continue
        try:
            total += float(pd.read_csv(path, sep="\t")["cpu_time"].iloc[-1])
        except (KeyError, IndexError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DicebenchError(f"{path}: not a Snakemake benchmark file ({exc})") from None
        jobs += 1
    return total, jobs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmarks", required=True, type=Path, help="the run's benchmarks/ folder")
    p.add_argument("--since", required=True, type=float, help="the run's start (seconds since the epoch)")
    p.add_argument("--until", type=float, default=None, help="the run's end (default: now)")
    p.add_argument("--cores", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    wall = (args.until or time.time()) - args.since
    cpu, jobs = job_cpu_seconds(args.benchmarks, args.since)
    share = cpu / (wall * args.cores) if wall > 0 else float("nan")
    print(f"{jobs} jobs, wall {wall / 60:.1f} min, job CPU time {cpu / 60:.1f} min: "
          f"core utilisation {100 * share:.0f} % of {args.cores} cores")
    return 0
