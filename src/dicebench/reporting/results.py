"""Reading the workflow's results: cells, per-case metrics, and the per-seed values every
table, claim and figure is computed from.

A result's identity (experiment, dataset, network, loss, weighting, lr, seed, patch) comes
from the cell's `cell.json`, never from positions in its path.

The unit of replication is the training run (the seed); test cases are nested in it. So the
primitive here is `per_seed`: for each seed, the mean over the test cases of a class's metric
(optionally over the cases whose reference contains the class only). Tables and claims build
their intervals from those per-seed means (`dicebench.reporting.stats`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dicebench.errors import DicebenchError
from dicebench.grid import gdl_policy, patch_label

CELL_KEYS = ["dataset", "network", "loss", "weighting", "lr", "seed"]
CASE_COLUMNS = ["experiment", *CELL_KEYS, "case", "class_index", "class", "dsc", "hd95"]


# ---------------------------------------------------------------- cells


def read_cell(csv_path: Path, what: str) -> tuple[pd.DataFrame, dict]:
    """One of a cell's CSV files and the cell's `cell.json` beside it."""
    csv_path = Path(csv_path)
    try:
        cell = json.loads((csv_path.parent / "cell.json").read_text())
        cell["settings"]["recipe"]["patch_size"]
        df = pd.read_csv(csv_path)
    except (OSError, KeyError, TypeError, json.JSONDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise DicebenchError(f"{csv_path}: cannot read the cell's {what} ({type(exc).__name__}: {exc})") from None
    return df, cell


def load_cell(folder: Path) -> dict:
    """A cell folder's `cell.json` alone, for outputs that have no CSV beside it (predictions/)."""
    path = Path(folder) / "cell.json"
    try:
        cell = json.loads(path.read_text())
        cell["settings"]["recipe"]["patch_size"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise DicebenchError(f"{path}: cannot read the cell's identity ({type(exc).__name__}: {exc})") from None
    return cell


def loss_variant(settings: dict) -> str:
    """The loss as the sub-patching sweep tells its lines apart: GDL with its empty-class policy
    ("gdl (zero)"), a class weighting after a dash, any other loss by its name."""
    if settings["loss"] == "gdl":
        return f"gdl ({gdl_policy(settings.get('loss_params'))})"
    weighting = settings.get("weighting", "none")
    return settings["loss"] if weighting == "none" else f"{settings['loss']}-{weighting}"


def cell_identity(cell: dict) -> dict:
    """The columns that name a cell's results, from its cell.json: the grid keys, the training
    patch, the loss variant, the experiment a sub-patching sweep varied (else its own)."""
    settings = cell["settings"]
    return {**{k: settings[k] for k in ("experiment", *CELL_KEYS)},
            "lr": f"{float(settings['lr']):g}",
            "patch": patch_label(settings["recipe"]["patch_size"]),
            "loss_variant": loss_variant(settings),
            "sweep_of": settings.get("sweep_of", settings["experiment"])}


def cell_table(csv_path: Path, what: str) -> pd.DataFrame:
    """One of a cell's CSV files with the cell's identity as columns and its folder as `cell`."""
    df, cell = read_cell(csv_path, what)
    return df.assign(**cell_identity(cell), cell=str(Path(csv_path).parent))


# ---------------------------------------------------------------- per-case tables


def load_cases(paths: list[Path]) -> pd.DataFrame:
    """Experiments' `cases.csv` files in one table (lr kept as its path text, e.g. '0.001')."""
    frames = []
    for p in paths:
        try:
            frames.append(pd.read_csv(p, dtype={"lr": str}))
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DicebenchError(f"{p}: cannot read per-case metrics ({exc})") from None
    if not frames:
        return pd.DataFrame(columns=CASE_COLUMNS)
    cases = pd.concat(frames, ignore_index=True)
    cases["lr"] = cases["lr"].map(lambda v: f"{float(v):g}")
    return cases


def select(cases: pd.DataFrame, **sel) -> pd.DataFrame:
    """Rows whose columns equal the given values (compared as text, so lr '0.01' == 0.01)."""
    sub = cases
    for k, v in sel.items():
        if k not in sub.columns:
            return sub.iloc[:0]
        sub = sub[sub[k].astype(str) == str(v)]
    return sub


def dataset_kind(cases: pd.DataFrame, dataset: str) -> str | None:
    """'acdc' / 'wmh' / 'abdomen' / 'prostate' recognised from the class names, so real and
    synthetic datasets of the same anatomy map onto the same published columns."""
    names = set(cases.loc[cases["dataset"] == dataset, "class"].unique())
    if {"RV", "MYO", "LV"} <= names:
        return "acdc"
    if "WMH" in names:
        return "wmh"
    if {"liver", "spleen", "pancreas"} <= names:
        return "abdomen"
    if "prostate" in names:
        return "prostate"
    return None


def one_run(cases: pd.DataFrame) -> pd.DataFrame:
    """The rows of one run (first seed, loss, lr, ...): what the test set itself contains."""
    if cases.empty:
        return cases
    first = cases.iloc[0]
    keys = [k for k in ("experiment", *CELL_KEYS, "patch", "loss_variant") if k in cases.columns]
    return cases[np.logical_and.reduce([cases[k].astype(str) == str(first[k]) for k in keys])]


def imbalance_level(cases: pd.DataFrame, dataset: str) -> str:
    """The rarest present object class's share of the test voxels (from gt_voxels), e.g. 'WMH 0.31 %'."""
    run = one_run(cases[cases["dataset"] == dataset])
    if "gt_voxels" not in run or run.empty:
        return dataset
    run = run[run["class_index"] >= 0]
    vox = run.groupby(["class_index", "class"])["gt_voxels"].sum()
    total = vox.sum()
    obj = vox[(vox.index.get_level_values(0) > 0) & (vox > 0)]
    if total <= 0 or obj.empty:
        return dataset
    (_, name), n = min(obj.items(), key=lambda kv: kv[1])
    return f"{dataset}: {name} {100 * n / total:.2g} %"


def per_case(cases: pd.DataFrame, cls: str, metric: str = "dsc", present_only: bool = False,
             **sel) -> pd.DataFrame:
    """One value per (seed, case): the class's metric; 'all' = mean over the object classes
    (index > 0), 'AVG' = mean over every class incl. background (Shen et al.). NaN values (a
    convention that leaves a case undefined) are skipped in those means. With `present_only`,
    only the cases whose reference contains `cls` (for 'all': any object class)."""
    sub = select(cases, **sel)
    if "class_index" in sub:
        sub = sub[sub["class_index"] >= 0]
    if present_only and "gt_voxels" in sub.columns:
        if cls in ("all", "AVG"):
            keep = sub[(sub["class_index"] > 0) & (sub["gt_voxels"] > 0)][["seed", "case"]].drop_duplicates()
        else:
            keep = sub[(sub["class"] == cls) & (sub["gt_voxels"] > 0)][["seed", "case"]].drop_duplicates()
        sub = sub.merge(keep, on=["seed", "case"])
    if cls == "all":
        sub = sub[sub["class_index"] > 0]
    elif cls != "AVG":
        sub = sub[sub["class"] == cls]
    if sub.empty:
        return pd.DataFrame(columns=["seed", "case", "value"])
    out = sub.groupby(["seed", "case"])[metric].mean().rename("value").reset_index()
    return out.dropna(subset=["value"])


def per_seed(cases: pd.DataFrame, cls: str, metric: str = "dsc", present_only: bool = False,
             **sel) -> pd.Series:
    """The mean over test cases of each seed's values (`per_case`), indexed by seed."""
    pc = per_case(cases, cls, metric, present_only, **sel)
    if pc.empty:
        return pd.Series(dtype=float, name="value")
    return pc.groupby("seed")["value"].mean().sort_index()


def case_values(cases: pd.DataFrame, cls: str, metric: str = "dsc", **sel) -> pd.Series:
    """Per-case value averaged over seeds, indexed by case (sorted): the Wilcoxon tests and the
    spread over test cases use it."""
    pc = per_case(cases, cls, metric, **sel)
    if pc.empty:
        return pd.Series(dtype=float)
    return pc.groupby("case")["value"].mean().sort_index()


def stands_in_for(dataset_dirs: list[Path]) -> dict[str, str]:
    """dataset name -> 'synthetic stand-in for X' or the real dataset's name, from each dataset.json."""
    out = {}
    for d in dataset_dirs:
        d = Path(d)
        js = d / "dataset.json" if d.is_dir() else d
        try:
            meta = json.loads(js.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DicebenchError(f"{js}: cannot read dataset.json ({exc})") from None
        name = js.parent.name
        out[name] = (f"synthetic stand-in for {meta['stands_in_for']}" if meta.get("stands_in_for")
                     else meta.get("name", "real data"))
    return out
