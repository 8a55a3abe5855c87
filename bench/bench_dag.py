"""Dry-run DAG build time of the published grid (config/paper.yaml) at 1x, 4x and 16x its size.

The real datasets of config/paper.yaml are replaced by synthetic phantoms of the same names (the
DAG of a real dataset needs its download rule's inputs, not relevant to the build time); the grid
is scaled by its seeds (5, 20, 80 per cell). Each size is timed as `snakemake --dry-run` in a fresh
directory, Python start-up included, beside the goal and beside linear growth from 1x.

    .venv/bin/python bench/bench_dag.py [--sizes 1 4 16]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOALS = {1: 10.0, 16: 60.0}  # seconds (issue #8)
PHANTOM = {"promise12": "prostate", "acdc": "acdc", "wmh2017": "wmh", "totalsegmentator": "abdomen"}


def paper_config(scale: int) -> dict:
    """config/paper.yaml (a standalone config) with synthetic datasets in place of the real ones."""
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    for name, ds in config["datasets"].items():
        if ds["source"] == "real":
            config["datasets"][name] = {"source": "synthetic", "phantom": PHANTOM[ds["registry_name"]]}
    for exp in config["experiments"].values():
        exp["seeds"] = list(range(len(exp["seeds"]) * scale))
    return config


def dry_run(config: dict) -> tuple[float, int]:
    """(seconds, jobs) of one dry run of the default target."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config" / "config.yaml"
        cfg.parent.mkdir()
        cfg.write_text(yaml.safe_dump(config))
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", tmp,
               "--configfile", str(cfg), "--dry-run", "--quiet", "rules", "--cores", "1"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_dag: snakemake failed:\n{proc.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, flags=re.M)
    return seconds, int(total.group(1)) if total else -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    from dicebench import grid

    print("DAG build (snakemake --dry-run), config/paper.yaml grid, real datasets replaced by synthetic phantoms")
    print(f"{'size':>5} {'cells':>6} {'jobs':>6} {'seconds':>8} {'linear from 1x':>15} {'goal':>6}")
    base = None
    for scale in args.sizes:
        config = paper_config(scale)
        cells = len(grid.all_cells(grid.validate_config(config)))
        seconds, jobs = dry_run(config)
        base = base or (seconds, jobs)
        linear = base[0] * jobs / base[1]
        goal = GOALS.get(scale)
        print(f"{scale:>4}x {cells:>6} {jobs:>6} {seconds:>8.1f} {linear:>15.1f} "
              f"{(f'<={goal:.0f}' if goal else '-'):>6}" + ("" if goal is None or seconds <= goal else "  OVER GOAL"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
