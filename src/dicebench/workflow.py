"""The workflow's decisions, where tests reach them: which config runs, which outputs exist,
which cells each figure and table reads. The .smk files call these and hold rules only.

A user's config describes their run alone: `snakemake --configfile mine.yaml` runs exactly the
experiments of mine.yaml, with every key it leaves out taking its default from the schema. The
default run's config (config/config.yaml) is read only when no config file is given.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from dicebench import grid
from dicebench.errors import DicebenchError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def default_config_file() -> Path:
    """config/config.yaml of the working directory (Snakemake's --directory) if it has one, as
    Snakemake's `configfile:` would read it; else the checkout's."""
    local = Path("config") / "config.yaml"
    return local if local.is_file() else DEFAULT_CONFIG


def prepare_config(config: dict, configfiles: list) -> dict:
    """Validate the run's config in place. Without a config file, the default run's config is
    the base and `--config` values go over it."""
    if not configfiles:
        import yaml

        given = dict(config)
        config.clear()
        config.update(_merge(yaml.safe_load(default_config_file().read_text()), given))
    return grid.validate_config(config)


# ---------------------------------------------------------------- experiments and papers


def paper_of(config: dict, experiment: str) -> str | None:
    """The paper an experiment feeds: its `paper` key, else its name when that is a paper's.
    Experiments a sub-patching sweep generated feed none (they feed the sweep figure and claims)."""
    exp = config["experiments"][experiment]
    if grid.SWEEP_KEY in exp:
        return None
    return exp.get("paper") or (experiment if experiment in grid.PAPERS else None)


def claims_paper(config: dict, experiment: str) -> str:
    """The paper whose claims an experiment's cases feed: its own, or for an experiment a
    sub-patching sweep generated, that of the experiment it varies ("" for none)."""
    parent = config["experiments"][experiment].get(grid.SWEEP_KEY, experiment)
    return paper_of(config, parent) or ""


def experiments_for_paper(config: dict, paper: str) -> list[str]:
    return [e for e in config["experiments"] if paper_of(config, e) == paper]


def papers(config: dict) -> list[str]:
    """The papers with at least one experiment in this run."""
    return [p for p in grid.PAPERS if experiments_for_paper(config, p)]


def cells_of(config: dict, experiment: str, dataset: str | None = None) -> list[grid.Cell]:
    return [c for c in grid.experiment_cells(experiment, config["experiments"][experiment])
            if dataset is None or c.dataset == dataset]


def cell_dir(config: dict, cell: grid.Cell) -> str:
    return f"{config['results']}/{cell.path}"


# ---------------------------------------------------------------- figures


def qualitative_cells(config: dict, experiment: str, dataset: str) -> list[grid.Cell]:
    """Every variant of the experiment on this dataset at its first seed: one prediction panel each."""
    first_seed = int(config["experiments"][experiment]["seeds"][0])
    return [c for c in cells_of(config, experiment, dataset) if c.seed == first_seed]


def gradient_cell(config: dict, experiment: str, dataset: str) -> grid.Cell:
    """The first Dice-loss cell of the experiment on this dataset (first network, lr and seed)."""
    return next(c for c in cells_of(config, experiment, dataset) if c.loss == "dice")


def sweep_cells(config: dict, experiment: str, dataset: str) -> list[grid.Cell]:
    """The trained points of an experiment's sub-patching sweep on a dataset: its own cells and
    those of the experiments its `subpatch` section generated."""
    return [c for name in grid.sweep_members(config, experiment) for c in cells_of(config, name, dataset)]


def scan_patch_sizes(config: dict, experiment: str) -> list[str]:
    """Patch sizes whose empty share the sweep figure reads from the training labels: the
    experiment's patch scaled by 1/4, 1/2, 1 and 2 (each side at least 4) and the sweep's sizes."""
    exp = config["experiments"][experiment]
    patch = exp["recipe"]["patch_size"]
    sizes = [[max(4, int(p * f)) for p in patch] for f in (0.25, 0.5, 1, 2)]
    sizes += [list(p) for p in exp.get("subpatch", {}).get("patch_sizes", [])]
    return list(dict.fromkeys(grid.patch_label(s) for s in sizes))


def figure_sets(config: dict) -> dict[str, list[tuple[str, str]]]:
    """Which (experiment, dataset) pairs get which figure; learning curves and lr sensitivity
    are per experiment (dataset "")."""
    main = grid.main_experiments(config)
    exps = config["experiments"]
    pairs = [(e, ds) for e in main for ds in exps[e]["datasets"]]
    return {
        "learning_curves": [(e, "") for e in main],
        "qualitative": pairs,
        "gradient_map": [(e, ds) for e, ds in pairs if "dice" in exps[e]["losses"]],
        "subpatch": [(e, ds) for e, ds in pairs if {"gdl", "mime"} & set(exps[e]["losses"])],
        "lr_sensitivity": [(e, "") for e in main if paper_of(config, e) == "sudre2017" and len(exps[e]["lrs"]) > 1],
    }


def figure_paths(config: dict, kind: str, ext: str = "pdf") -> list[str]:
    """The figure files of one kind (see figure_sets), as the report rules name them."""
    fig = config["figures"]
    pattern = {
        "learning_curves": "{fig}/{e}_learning_curves.{ext}",
        "qualitative": "{fig}/qualitative/{e}/{ds}.{ext}",
        "gradient_map": "{fig}/gradient_map/{e}/{ds}.{ext}",
        "subpatch": "{fig}/subpatch/{e}/{ds}.{ext}",
        "lr_sensitivity": "{fig}/lr_sensitivity/{e}.{ext}",
    }[kind]
    return [pattern.format(fig=fig, e=e, ds=ds, ext=ext) for e, ds in figure_sets(config)[kind]]


def viewer_pages(config: dict) -> list[str]:
    """One page per experiment and dataset to step through the test cases' predictions."""
    return [f"{config['figures']}/viewer/{e}/{ds}.html" for e, ds in figure_sets(config)["qualitative"]]


def paper_figures(config: dict) -> list[str]:
    return [p for kind in figure_sets(config) for p in figure_paths(config, kind)]


# ---------------------------------------------------------------- targets


def targets(config: dict) -> list[str]:
    """Everything `snakemake` builds by default: every experiment's table, the papers' tables,
    the claims and conventions tables, every figure, and last the paper."""
    res, fig = config["results"], config["figures"]
    out = [f"{res}/{e}/table.md" for e in config["experiments"]]
    out += [f"{fig}/tables/{p}.md" for p in papers(config)]
    out += [f"{fig}/tables/wilcoxon.md", f"{fig}/claims.md", f"{fig}/tables/conventions.md"]
    out += [p for kind in figure_sets(config) for p in figure_paths(config, kind, "png")]
    out += viewer_pages(config) + [config["paper_pdf"]]
    return out


# ---------------------------------------------------------------- stale cells


def stale_cells(config: dict) -> list[tuple[grid.Cell, list[str]]]:
    """Cells whose results no longer match what made them, with the reasons: the training or
    inference code changed since (cell.json / predictions/inference.json record its version),
    or a model is missing while its metrics remain (a failed rerun)."""
    from dicebench.provenance import step_code_version

    current = {step: step_code_version(step) for step in ("train", "infer")}
    out = []
    for cell in grid.all_cells(config):
        folder = Path(cell_dir(config, cell))
        if not folder.exists():
            continue
        reasons = []
        has_metrics = (folder / "metrics.csv").exists()
        for name in ("model.pt", "cell.json"):
            if has_metrics and not (folder / name).exists():
                reasons.append(f"{name} missing while metrics.csv exists")
        recorded = _read(folder / "cell.json").get("code_version")
        if recorded and recorded != current["train"]:
            reasons.append(f"training code changed ({recorded} -> {current['train']})")
        inferred = _read(folder / "predictions" / "inference.json").get("code_version")
        if inferred and inferred != current["infer"]:
            reasons.append(f"inference code changed ({inferred} -> {current['infer']})")
        if reasons:
            out.append((cell, reasons))
    return out


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def rerun_commands(config: dict, stale: list[tuple[grid.Cell, list[str]]], configfile: Path | None,
                   cores: int) -> list[list[str]]:
    """Snakemake commands that bring the stale cells back: retrain those whose training code
    changed or whose model is missing, re-infer those whose inference code alone changed."""
    retrain = [c for c, reasons in stale if any(not r.startswith("inference") for r in reasons)]
    reinfer = [c for c, reasons in stale if c not in retrain]
    base = [sys.executable, "-m", "snakemake", "--cores", str(cores)]
    if configfile:
        base += ["--configfile", str(configfile)]
    return [base + [f"--forcerun={rule}", *(f"{cell_dir(config, c)}/metrics.csv" for c in cells)]
            for rule, cells in (("train", retrain), ("infer", reinfer)) if cells]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configfile", type=Path, default=None, help="the run's config (default: config/config.yaml)")
    p.add_argument("--rerun", action="store_true",
                   help="rerun the stale cells (snakemake --forcerun=train|infer on their metrics.csv)")
    p.add_argument("--cores", type=int, default=2, help="with --rerun: snakemake --cores")


def run(args: argparse.Namespace) -> int:
    import yaml

    path = args.configfile
    config = yaml.safe_load(Path(path).read_text()) if path else {}
    prepare_config(config, [path] if path else [])
    stale = stale_cells(config)
    for cell, reasons in stale:
        print(f"{cell_dir(config, cell)}: {'; '.join(reasons)}")
    if not stale:
        print("no stale cells")
        return 0
    commands = rerun_commands(config, stale, path, args.cores)
    if not args.rerun:
        print(f"{len(stale)} stale cell(s); to rerun them (from {REPO}):")
        for cmd in commands:
            print("  " + shlex.join(cmd))
        return 0
    for cmd in commands:
        proc = subprocess.run(cmd, cwd=REPO)
        if proc.returncode:
            raise DicebenchError(f"snakemake exited with status {proc.returncode} while rerunning the stale cells")
    return 0
