"""Whether a run decided what it set out to decide (`make evidence`'s "Done when", issue 14):
every cell converged, the DSC floors of the well-posed datasets met, enough seeds per cell and
test cases per dataset, and a claims design sensitive enough (median `mdd` of the difference
claims). Read from what the run wrote; nothing is recomputed.

    dicebench evidence-check --configfile config/evidence.yaml [--out figures/evidence/evidence_check.md]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from dicebench import grid
from dicebench.errors import DicebenchError
from dicebench.io import write_text

MIN_SEEDS, MIN_CASES, MAX_MEDIAN_MDD = 3, 20, 2.0  # the evidence run's targets (README)
DIFFERENCE_TESTS = ("greater", "did_greater", "greatest", "similar", "spread_smaller")


def _cell_json(config: dict, cell: grid.Cell) -> dict | None:
    path = Path(config["results"]) / cell.path / "cell.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise DicebenchError(f"{path}: unreadable cell.json ({exc})") from None


def convergence(config: dict) -> pd.DataFrame:
    """Per experiment and dataset: cells configured, trained and converged (trainer's rule)."""
    rows = []
    for cell in grid.all_cells(config):
        record = _cell_json(config, cell)
        rows.append({"experiment": cell.experiment, "dataset": cell.dataset, "trained": record is not None,
                     "converged": bool(record and (record.get("convergence") or {}).get("converged"))})
    table = pd.DataFrame(rows)
    return (table.groupby(["experiment", "dataset"], sort=False)
            .agg(cells=("trained", "size"), trained=("trained", "sum"), converged=("converged", "sum"))
            .reset_index())


def floors(config: dict) -> pd.DataFrame:
    """One row per floor and selected (loss, weighting, lr): mean and SD over seeds of each
    seed's mean test DSC over the cases containing the class (`results.per_case`, as the claims
    take it), seeds and cases, and whether the mean reaches the floor with every seed there."""
    from dicebench.reporting.results import load_cases, per_case

    rows = []
    for floor in config.get("floors", []):
        exp = config["experiments"][floor["experiment"]]
        path = Path(config["results"]) / floor["experiment"] / "cases.csv"
        cases = load_cases([path]) if path.is_file() else load_cases([])
        settings = sorted({(c.loss, c.weighting, c.lr) for c in grid.experiment_cells(floor["experiment"], exp)
                           if c.dataset == floor["dataset"] and c.loss in floor.get("losses", exp["losses"])
                           and c.weighting in floor.get("weightings", [c.weighting])
                           and c.lr in [grid.format_lr(lr) for lr in floor.get("lrs", exp["lrs"])]})
        for loss, weighting, lr in settings:
            values = per_case(cases, floor["class"], present_only=True, dataset=floor["dataset"], loss=loss,
                              weighting=weighting, lr=f"{float(lr):g}")
            seeds = values.groupby("seed")["value"].mean()
            mean = 100 * float(seeds.mean()) if len(seeds) else math.nan
            rows.append({"experiment": floor["experiment"], "dataset": floor["dataset"], "cls": floor["class"],
                         "loss": loss, "weighting": weighting, "lr": lr, "dsc": mean,
                         "sd": 100 * float(seeds.std(ddof=1)) if len(seeds) > 1 else math.nan,
                         "seeds": len(seeds), "of_seeds": len(exp["seeds"]),
                         "cases": int(values.groupby("seed")["case"].nunique().min()) if len(seeds) else 0,
                         "floor": float(floor["min_dsc"]),
                         "met": bool(len(seeds) == len(exp["seeds"]) and mean >= floor["min_dsc"]),
                         "source": floor["source"]})
    return pd.DataFrame(rows)


def replication(config: dict) -> tuple[int, int]:
    """The fewest seeds any experiment trains per setting, and the fewest test cases of a dataset
    (a phantom's `n_test`; a real dataset's `numTest` once converted, 0 before)."""
    seeds = min(len(exp["seeds"]) for exp in config["experiments"].values())
    cases = []
    for name, ds in config["datasets"].items():
        if ds.get("source") == "synthetic":
            cases.append(int(ds["n_test"]))
            continue
        path = Path(config["results"]) / "datasets" / name / "dataset.json"
        cases.append(int(json.loads(path.read_text()).get("numTest", 0)) if path.is_file() else 0)
    return seeds, min(cases, default=0)


def median_mdd(claims_csv: Path) -> tuple[float, int]:
    """Median `mdd` over the difference claims that have one, and how many have one."""
    if not claims_csv.is_file():
        return math.nan, 0
    claims = pd.read_csv(claims_csv)
    mdd = claims.loc[claims["test"].isin(DIFFERENCE_TESTS), "mdd"].dropna()
    return (float(mdd.median()) if len(mdd) else math.nan), int(len(mdd))


def report(config: dict, claims_csv: Path) -> tuple[str, bool]:
    """The Markdown report and whether every target is met."""
    conv = convergence(config)
    floor_table = floors(config)
    seeds, cases = replication(config)
    mdd, n_mdd = median_mdd(claims_csv)
    checks = {
        f"every cell converged ({int(conv.converged.sum())}/{int(conv.cells.sum())})":
            bool((conv.converged == conv.cells).all()),
        f"floors met ({int(floor_table.met.sum()) if len(floor_table) else 0}/{len(floor_table)})":
            bool(len(floor_table) == 0 or floor_table.met.all()),
        f"at least {MIN_SEEDS} seeds per setting ({seeds})": seeds >= MIN_SEEDS,
        f"at least {MIN_CASES} test cases per dataset ({cases})": cases >= MIN_CASES,
        f"median mdd of the difference claims at most {MAX_MEDIAN_MDD:g} DSC points "
        f"({mdd:.2f} over {n_mdd} claims)": bool(mdd <= MAX_MEDIAN_MDD),
    }
    lines = [f"# Evidence check: {config['results']}", ""]
    lines += [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks.items()]
    lines += ["", "## Convergence (trainer's rule, cell.json)", "", "| experiment | dataset | cells | trained | converged |",
              "|---|---|---|---|---|"]
    lines += [f"| {r.experiment} | {r.dataset} | {r.cells} | {r.trained} | {r.converged} |" for r in conv.itertuples()]
    if len(floor_table):
        lines += ["", "## Floors (test DSC, mean over seeds of each cell's mean over cases)", "",
                  "| experiment | dataset | class | loss | weighting | lr | DSC | SD (seeds) | n (seeds x cases) | floor | met | source |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.experiment} | {r.dataset} | {r.cls} | {r.loss} | {r.weighting} | {r.lr} | {r.dsc:.1f} | "
                  f"{r.sd:.1f} | {r.seeds} x {r.cases} | {r.floor:g} | {'yes' if r.met else 'no'} | {r.source} |"
                  for r in floor_table.itertuples()]
    ok = all(checks.values())
    lines += ["", f"**{'Every target met.' if ok else 'Not every target met: the run cannot decide every claim it set out to.'}**"]
    return "\n".join(lines) + "\n", ok


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configfile", required=True, type=Path, help="the run's config file (config/evidence.yaml)")
    p.add_argument("--claims", type=Path, help="the run's claims.csv (default: <figures>/claims.csv)")
    p.add_argument("--out", type=Path, help="also write the report here (Markdown)")


def run(args: argparse.Namespace) -> int:
    import yaml

    from dicebench.workflow import prepare_config

    try:
        config = yaml.safe_load(args.configfile.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DicebenchError(f"{args.configfile}: cannot read the config ({exc})") from None
    config = prepare_config(config, [args.configfile])
    text, _ = report(config, args.claims or Path(config["figures"]) / "claims.csv")
    if args.out:
        write_text(args.out, text)
    print(text, end="")
    return 0
