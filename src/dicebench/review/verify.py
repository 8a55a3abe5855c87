"""`dicebench verify`: rerun cells of a results bundle and compare them with the bundle.

    dicebench verify --bundle results/bundle.tar.gz --cell results/<experiment>/.../seed0
    dicebench verify --bundle results/bundle.tar.gz --claim K5 [--seed 1] [--workdir DIR]

1. Every file of the bundle is checked against its SHA256SUMS (an altered file stops here).
2. The bundle's config is rerun in a scratch folder, never in the user's results or the bundle:
   `--workdir` (default `results/verify/<bundle name>/`) gets `verify-config.yaml` (the bundle's
   resolved config with `results: results` and `figures: figures`) and Snakemake runs the
   repository's Snakefile there on each cell's `metrics.csv` with `--forcerun=train`, so the
   data are made (or converted) and preprocessed again, and the cell is retrained, inferred and
   evaluated. `--seed N` reruns the same cells with another seed. Reusing a workdir reuses its
   data and retrains the cells.
3. Each new `per_case.csv` is compared with the bundle's:

   - **identical**: byte for byte. Expected when the seed, the device kind and the package
     versions are those of the bundle's cell (training is deterministic on the CPU).
   - **agrees within seed spread**: the case-mean DSC (per case the mean over object classes,
     then over cases: the tables' 'all') differs from the bundle's by at most 1.96·√2·σ, σ the
     standard deviation over seeds the bundle records for the cell's group of seeds (same
     experiment, dataset, network, loss, weighting and lr), pooled over the experiment's groups
     on that dataset when the cell's own group has one seed. The difference of two runs that
     differ by seed has standard deviation √2·σ; 1.96 makes the band a 95 % one.
   - **differs**: beyond that band, other test cases, or no seed spread in the bundle to judge
     by (every cell has one seed): then agreement cannot be shown.

   The one-line reason says which of seed, device kind and packages differ (and the code's
   commit and platform), the two DSCs, their difference and the band.

The verdicts go to stdout, one line per cell, and to `<workdir>/verify.csv` (or `--out`).
Exit status: 0 when every cell is identical or agrees, 3 when one differs, 1 on an error.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from dicebench import grid
from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, read_json, write_text
from dicebench.review.bundle import (INFO, REPO, SEED_KEYS, case_mean_dsc, read_info, read_per_case, unpack)

IDENTICAL, AGREES, DIFFERS = "identical", "agrees within seed spread", "differs"
Z = 1.96
CONFIG_NAME = "verify-config.yaml"
PER_CELL_COLUMNS = ["cell", "rerun", "verdict", "reason", "bundle_dsc", "rerun_dsc", "delta", "seed_spread",
                    "tolerance", "differing"]


@dataclass
class Verdict:
    cell: str  # the bundle's cell, results/<cell path>
    rerun: str  # the rerun's cell folder
    verdict: str
    reason: str
    bundle_dsc: float = math.nan
    rerun_dsc: float = math.nan
    delta: float = math.nan
    seed_spread: float = math.nan
    tolerance: float = math.nan
    differing: list[str] = field(default_factory=list)  # which of seed, device, packages, code, platform


# ---------------------------------------------------------------------------- which cells


def _cell_key(text: str) -> str:
    """`results/kervadec2023/synth_acdc/enet2d/dice-none/lr0.005/seed0` (any results prefix, a
    trailing file name or slash) -> `kervadec2023/synth_acdc/enet2d/dice-none/lr0.005/seed0`."""
    parts = [p for p in text.strip().replace("\\", "/").split("/") if p]
    if parts and "." in parts[-1] and not parts[-1].startswith("lr"):
        parts = parts[:-1]  # a file of the cell
    return "/".join(parts[-6:])


def select_cells(folder: Path, info: dict, cells: list[str], claim: str | None) -> list[dict]:
    """The bundle's cells named by `--cell`, or those the claim's row(s) used (claims.csv, column
    `cells`, folders separated by ';')."""
    by_key = {_cell_key(c["path"]): c for c in info["cells"]}
    wanted = [_cell_key(c) for c in cells]
    if claim is not None:
        path = Path(folder) / "figures" / "claims.csv"
        try:
            table = pd.read_csv(path, dtype=str)
        except FileNotFoundError:
            raise DicebenchError(f"{path}: the bundle has no claims table") from None
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DicebenchError(f"{path}: unreadable ({exc})") from None
        if "cells" not in table.columns or "id" not in table.columns:
            raise DicebenchError(f"{path}: no 'id' and 'cells' columns (made by a dicebench without cell tracing)")
        rows = table[table["id"] == claim]
        if rows.empty:
            raise DicebenchError(f"{path}: no claim '{claim}' (claims: {', '.join(dict.fromkeys(table['id']))})")
        for text in rows["cells"].dropna():
            wanted += [_cell_key(c) for c in text.split(";") if c.strip()]
        if not wanted:
            raise DicebenchError(f"{path}: claim '{claim}' used no cells (verdict 'not run'?)")
    if not wanted:
        raise DicebenchError("name a cell (--cell) or a claim (--claim)")
    unknown = [w for w in wanted if w not in by_key]
    if unknown:
        raise DicebenchError(f"{Path(folder) / INFO}: no cell results/{unknown[0]} in the bundle")
    return [by_key[w] for w in dict.fromkeys(wanted)]


# ---------------------------------------------------------------------------- the rerun


def rerun_config(folder: Path, info: dict, seed: int | None, cells: list[dict]) -> dict:
    """The bundle's resolved config, writing into the scratch folder; with `seed`, the cells'
    experiments (or the experiment a sweep varies) get that seed."""
    import yaml

    config = yaml.safe_load((Path(folder) / info["config"]).read_text())
    config["results"], config["figures"] = "results", "figures"
    if seed is not None:
        for c in cells:
            settings = read_json(Path(folder) / c["path"] / "cell.json")["settings"]
            base = settings.get(grid.SWEEP_KEY, settings["experiment"])
            config["experiments"][base]["seeds"] = [seed]
    return config


def rerun_path(cell: dict, seed: int | None) -> str:
    key = _cell_key(cell["path"])
    if seed is None:
        return f"results/{key}"
    return f"results/{key.rsplit('/', 1)[0]}/seed{seed}"


def run_snakemake(workdir: Path, targets: list[str], cores: int, repo: Path = REPO,
                  extra: list[str] | None = None) -> None:
    log = workdir / "snakemake.log"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / CONFIG_NAME), "--cores", str(cores), "--forcerun=train",
           *(extra or []), *targets]
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    with open(log, "w") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        hint = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "")
        raise DicebenchError(f"the rerun failed (snakemake exit {proc.returncode}; log {log}): {hint.strip()[:300]}")


# ---------------------------------------------------------------------------- the comparison


def device_kind(device: str | None) -> str:
    """'cuda:1 (NVIDIA H200)' -> 'cuda (NVIDIA H200)': which GPU index does not matter."""
    if not device:
        return "unknown"
    kind, _, rest = device.partition(" ")
    return (kind.split(":")[0] + (f" {rest}" if rest else "")).strip()


def conditions(old: dict, new: dict) -> tuple[list[str], str]:
    """Which of the things that make a rerun bit-identical differ between the bundle's cell.json
    (`old`) and the rerun's (`new`), and a short text: 'seed 1 (bundle: 0)', 'same device cpu'."""
    pk_a, pk_b = old.get("packages") or {}, new.get("packages") or {}
    changed = [k for k in sorted(set(pk_a) | set(pk_b)) if pk_a.get(k) != pk_b.get(k)]
    values = {
        "seed": (old["settings"]["seed"], new["settings"]["seed"]),
        "device": (device_kind(old.get("device")), device_kind(new.get("device"))),
        "packages": (", ".join(f"{k} {pk_a.get(k)}" for k in changed), ", ".join(f"{k} {pk_b.get(k)}" for k in changed)),
        "code": ((old.get("git_commit") or "unknown")[:12], (new.get("git_commit") or "unknown")[:12]),
        "platform": (old.get("platform") or "unknown", new.get("platform") or "unknown"),
    }
    differing = [n for n, (a, b) in values.items() if a != b]
    texts = [f"{n} {values[n][1]} (bundle: {values[n][0]})" for n in differing]
    same = [n for n in ("seed", "device", "packages") if n not in differing]
    if same:
        shown = {"seed": f"seed {values['seed'][0]}", "device": f"device {values['device'][0]}",
                 "packages": "packages"}
        texts.insert(0, "same " + ", ".join(shown[n] for n in same))
    return differing, "; ".join(texts)


def spread_for(info: dict, cell: dict) -> tuple[float | None, str]:
    """The bundle's between-seed standard deviation for the cell's group, else pooled over the
    groups of its experiment and dataset; None when the bundle has none."""
    groups = info.get("seed_spread", [])
    key = tuple(str(cell[k]) for k in SEED_KEYS)
    own = next((g for g in groups if tuple(str(g[k]) for k in SEED_KEYS) == key), None)
    if own is not None:
        return own["std"], f"σ {own['std']:.4f} over seeds {', '.join(map(str, own['seeds']))}"
    near = [g for g in groups if g["experiment"] == cell["experiment"] and g["dataset"] == cell["dataset"]]
    dof = sum(len(g["seeds"]) - 1 for g in near)
    if dof:
        pooled = math.sqrt(sum((len(g["seeds"]) - 1) * g["std"] ** 2 for g in near) / dof)
        return pooled, f"σ {pooled:.4f} pooled over {len(near)} seed groups of {cell['experiment']} on {cell['dataset']}"
    return None, "the bundle records no between-seed spread (one seed per cell)"


def compare(bundle_dir: Path, info: dict, cell: dict, rerun_dir: Path) -> Verdict:
    old_dir = Path(bundle_dir) / cell["path"]
    rerun_dir = Path(rerun_dir)
    old_info, new_info = read_json(old_dir / "cell.json"), read_json(rerun_dir / "cell.json")
    differing, cond = conditions(old_info, new_info)
    old_bytes = (old_dir / "per_case.csv").read_bytes()
    new_path = rerun_dir / "per_case.csv"
    if not new_path.is_file():
        raise DicebenchError(f"{new_path}: the rerun wrote no per-case metrics")
    base = {"cell": cell["path"], "rerun": str(rerun_dir), "differing": differing}
    old, new = read_per_case(old_dir / "per_case.csv"), read_per_case(new_path)
    a, b = case_mean_dsc(old), case_mean_dsc(new)
    numbers = {"bundle_dsc": a, "rerun_dsc": b, "delta": b - a}
    if new_path.read_bytes() == old_bytes:
        return Verdict(**base, **numbers, verdict=IDENTICAL, reason=f"per_case.csv byte-identical; {cond}")
    if set(old["case"]) != set(new["case"]):
        only = sorted(set(old["case"]) ^ set(new["case"]))
        return Verdict(**base, **numbers, verdict=DIFFERS,
                       reason=f"the test cases differ ({', '.join(only[:3])} in one run only); {cond}")
    sigma, spread_text = spread_for(info, cell)
    dsc = f"case-mean DSC {b:.4f} vs {a:.4f} (Δ {b - a:+.4f})"
    expected = "" if {"seed", "device", "packages"} & set(differing) else \
        "not deterministic here (same seed, device and packages, yet per_case.csv differs); "
    if sigma is None:
        return Verdict(**base, **numbers, verdict=DIFFERS,
                       reason=f"{expected}{cond}; {dsc}; {spread_text}, so agreement cannot be shown")
    tol = Z * math.sqrt(2) * sigma
    agrees = abs(b - a) <= tol
    return Verdict(**base, **numbers, seed_spread=sigma, tolerance=tol, verdict=AGREES if agrees else DIFFERS,
                   reason=f"{expected}{cond}; {dsc} {'within' if agrees else 'beyond'} "
                          f"1.96·√2·σ = {tol:.4f} ({spread_text})")


# ---------------------------------------------------------------------------- the whole check


def default_workdir(bundle: Path) -> Path:
    name = Path(bundle).name
    return Path("results") / "verify" / (name[: -len(".tar.gz")] if name.endswith(".tar.gz") else name)


def verify(bundle: Path, cells: list[str] = (), claim: str | None = None, seed: int | None = None,
           workdir: Path | None = None, cores: int = 2, repo: Path = REPO,
           snakemake_args: list[str] | None = None) -> list[Verdict]:
    import yaml

    if not Path(bundle).exists():
        raise DicebenchError(f"{bundle}: file not found")
    workdir = Path(workdir or default_workdir(bundle)).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    folder = unpack(bundle, workdir / ".verify" / "bundle")
    info = read_info(folder)
    chosen = select_cells(folder, info, list(cells), claim)
    write_text(workdir / CONFIG_NAME, yaml.safe_dump(rerun_config(folder, info, seed, chosen), sort_keys=False))
    reruns = [rerun_path(c, seed) for c in chosen]
    run_snakemake(workdir, [f"{r}/metrics.csv" for r in reruns], cores, repo, snakemake_args)
    return [compare(folder, info, c, workdir / r) for c, r in zip(chosen, reruns)]


def write_verdicts(verdicts: list[Verdict], path: Path) -> None:
    table = pd.DataFrame([{**asdict(v), "differing": ";".join(v.differing)} for v in verdicts],
                         columns=PER_CELL_COLUMNS)
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", required=True, type=Path, help="a bundle (.tar.gz, or its unpacked folder)")
    p.add_argument("--cell", nargs="+", default=[], help="cell folder(s) of the bundle (results/<experiment>/...)")
    p.add_argument("--claim", default=None, help="a claim id of the bundle's figures/claims.csv: all its cells")
    p.add_argument("--seed", type=int, default=None, help="rerun with this seed instead of the cell's")
    p.add_argument("--workdir", type=Path, default=None,
                   help="scratch folder of the rerun (default: results/verify/<bundle name>)")
    p.add_argument("--cores", type=int, default=2, help="Snakemake --cores of the rerun")
    p.add_argument("--out", type=Path, default=None, help="the verdicts as CSV (default: <workdir>/verify.csv)")


def run(args: argparse.Namespace) -> int:
    if not args.cell and args.claim is None:
        raise DicebenchError("name a cell (--cell) or a claim (--claim)")
    verdicts = verify(args.bundle, args.cell, args.claim, args.seed, args.workdir, args.cores)
    out = args.out or Path(args.workdir or default_workdir(args.bundle)) / "verify.csv"
    write_verdicts(verdicts, out)
    for v in verdicts:
        print(f"{v.cell}: {v.verdict} ({v.reason})")
    return 3 if any(v.verdict == DIFFERS for v in verdicts) else 0
