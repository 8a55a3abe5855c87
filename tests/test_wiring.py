"""Results wired to known answers, through the CLI the workflow's rules call.

- Perfect predictions (a cell's `predictions/` are copies of the test labels) must read
  DSC = 100 % and HD95 = 0 mm in every output between them and the paper: the cell's
  `per_case.csv` and `metrics.csv` (`dicebench evaluate`), the experiment's `table.csv`,
  `table.md` and `cases.csv` (`dicebench aggregate`; `cases.csv` is what the claims read), and
  the paper's table (`dicebench paper-tables`). One test case lacks a class altogether: by the
  convention of `dicebench.evaluation.metrics` ("nothing to find, nothing found") its DSC is 1
  and its HD95 0, so the means stay at 100 / 0.
- `model_best.pt` holds the weights of the best `val_dice` row of `log.csv`, and the workflow's
  `inference.checkpoint: best` predicts with that file (`last`: with `model.pt`).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dicebench import grid
from dicebench.cli import main

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "kervadec2023"  # an experiment with a paper table whose columns are the acdc classes
OBJECTS = ["RV", "MYO", "LV"]
CONFIG = {
    "experiments": {
        EXPERIMENT: {
            "datasets": ["synth_acdc"], "preprocessing": "mri", "networks": ["enet2d"],
            "network_params": {"enet2d": {"width": 4}}, "losses": ["dice", "gdl"],
            "loss_params": {"gdl": {"empty_policy": "zero"}}, "lrs": [0.01], "seeds": [0],
            "recipe": {"optimizer": "adam", "iterations": 2, "batch_size": 2, "patch_size": [32, 32]},
        },
    },
}


def _cli(*argv: str) -> None:
    rc = main([str(a) for a in argv])
    assert rc == 0, f"dicebench {argv[0]} exited with {rc}"


@pytest.fixture(scope="module")
def perfect(tmp_path_factory) -> dict:
    """Two cells of one experiment whose predictions are the test labels, run through
    evaluate, aggregate and paper-tables as the workflow's rules do."""
    from dicebench.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("wiring")
    results = root / "results"
    # one test case of 3 (synth_acdc_003) has no RV (absent_fraction: round(3 * 0.34) = 1), the others every class
    dataset = synthesize("acdc", results / "datasets" / "synth_acdc", n_train=2, n_test=3, seed=2,
                         shape=(6, 40, 40), knobs={"absent_fraction": {"RV": 0.34}})
    cells = list(grid.experiment_cells(EXPERIMENT, CONFIG["experiments"][EXPERIMENT]))
    assert [c.loss for c in cells] == ["dice", "gdl"]
    metrics = []
    for cell in cells:
        folder = results / cell.path
        shutil.copytree(dataset / "labelsTs", folder / "predictions")
        settings = grid.cell_settings(CONFIG, cell)
        (folder / "cell.json").write_text(json.dumps({"settings": settings}))  # as train_cell records it
        _cli("evaluate", "--pred-dir", folder / "predictions", "--gt-dir", dataset / "labelsTs",
             "--dataset-json", dataset / "dataset.json", "--cases-out", folder / "per_case.csv",
             "--out", folder / "metrics.csv")
        metrics.append(folder / "metrics.csv")
    exp = results / EXPERIMENT
    _cli("aggregate", "--experiment", EXPERIMENT, "--metrics", *metrics, "--csv", exp / "table.csv",
         "--md", exp / "table.md", "--cases", exp / "cases.csv")
    tables = root / "figures" / "tables"
    _cli("paper-tables", "--paper", EXPERIMENT, "--cases", exp / "cases.csv", "--published",
         REPO / "paper" / "published.yaml", "--datasets", dataset, "--csv", tables / f"{EXPERIMENT}.csv",
         "--md", tables / f"{EXPERIMENT}.md", "--tex", tables / f"{EXPERIMENT}.tex")
    return {"dataset": dataset, "cells": [results / c.path for c in cells], "experiment": exp, "tables": tables}


def test_evaluate_reads_perfect_predictions_as_dsc_1_and_hd95_0(perfect):
    for folder in perfect["cells"]:
        per_case = pd.read_csv(folder / "per_case.csv")
        assert sorted(per_case["case"].unique()) == ["synth_acdc_002", "synth_acdc_003", "synth_acdc_004"]
        objects = per_case[per_case["class_index"] > 0]
        assert len(objects) == 3 * len(OBJECTS)
        assert (objects["dsc"] == 1.0).all() and (objects["hd95"] == 0.0).all()
        assert (per_case["gt_voxels"] == per_case["pred_voxels"]).all()
        # the convention for a class absent from a case, predicted absent: DSC 1, HD95 0
        absent = objects[objects["gt_voxels"] == 0]
        assert absent[["case", "class"]].values.tolist() == [["synth_acdc_003", "RV"]]
        background = per_case[per_case["class_index"] == 0]
        assert (background["dsc"] == 1.0).all() and background["hd95"].isna().all()

        summary = pd.read_csv(folder / "metrics.csv").set_index("class")
        for cls in [*OBJECTS, "all"]:
            assert summary.loc[cls, "n_cases"] == 3
            assert summary.loc[cls, "dsc_mean"] == 1.0 and summary.loc[cls, "hd95_mean"] == 0.0, cls
            assert summary.loc[cls, "dsc_std"] == 0.0 and summary.loc[cls, "hd95_std"] == 0.0, cls


def test_experiment_table_reads_100_and_0(perfect):
    table = pd.read_csv(perfect["experiment"] / "table.csv")
    assert sorted(table["loss"].unique()) == ["dice", "gdl"]
    assert set(table["experiment"]) == {EXPERIMENT} and set(table["dataset"]) == {"synth_acdc"}
    objects = table[table["class"].isin([*OBJECTS, "all"])]
    assert len(objects) == 2 * 4
    assert (objects["dsc_mean"] == 1.0).all() and (objects["hd95_mean"] == 0.0).all()
    md = (perfect["experiment"] / "table.md").read_text()
    assert "## synth_acdc" in md  # one table per dataset, with its own classes
    lines = [line for line in md.splitlines() if line.startswith("|")]
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    assert columns[:4] == ["network", "loss", "weighting", "lr"] and columns[-1] == "seeds"
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert len(rows) == 2
    for row in rows:
        entry = dict(zip(columns, row))
        for cls in [*OBJECTS, "all"]:
            assert entry[cls] == "100.0 / 0.0", (entry["loss"], cls)


def test_claims_input_reads_dsc_1_and_hd95_0(perfect):
    """results/<experiment>/cases.csv: the per-case values the paper tables and the claims read."""
    cases = pd.read_csv(perfect["experiment"] / "cases.csv", dtype={"lr": str})
    objects = cases[cases["class_index"] > 0]
    assert len(objects) == 2 * 3 * len(OBJECTS)  # cells x test cases x classes
    assert (objects["dsc"] == 1.0).all() and (objects["hd95"] == 0.0).all()
    assert set(cases["lr"]) == {"0.01"} and set(cases["seed"]) == {0}
    assert set(zip(cases["loss"], cases["loss_variant"])) == {("dice", "dice"), ("gdl", "gdl (zero)")}


def test_paper_table_reads_100_and_0(perfect):
    long = pd.read_csv(perfect["tables"] / f"{EXPERIMENT}.csv")
    ours = long[(long["dataset"] == "synth_acdc") & long["row"].isin(["dice", "gdl"])]
    assert sorted(set(ours["column"])) == [f"ACDC {c}" for c in sorted([*OBJECTS, "all"])]
    every = ours[ours["view"] == "all cases"]
    assert len(every) == 2 * 4 * 2  # losses x columns x (dsc, hd95)
    # RV is absent from one of the three test cases: shown over the two that contain it too
    present = ours[ours["view"] == "present"]
    assert set(present["column"]) == {"ACDC RV"} and (present["n_cases"] == 2).all()
    dsc, hd = ours[ours["metric"] == "dsc"], ours[ours["metric"] == "hd95"]
    assert (dsc["ours"] == 100.0).all() and (hd["ours"] == 0.0).all()
    assert dsc["ci_lo"].isna().all() and (ours["n_seeds"] == 1).all()  # one seed: no interval
    assert (every["n_cases"] == 3).all()
    # every entry names its cells and the command that rebuilds them
    for cells, command in zip(every["cells"], every["command"]):
        assert command == ".venv/bin/snakemake --cores 2 --forcerun=train " + " ".join(
            f"{c}/metrics.csv" for c in cells.split(";"))
        assert all("/seed" in c for c in cells.split(";"))
    assert long.loc[long["row"].isin(["vnet", "mime"]), "ours"].isna().all()  # cells that were not run
    for suffix in ("md", "tex"):
        text = (perfect["tables"] / f"{EXPERIMENT}.{suffix}").read_text()
        for loss in ("dice", "gdl"):
            for cls in [*OBJECTS, "all"]:
                line = next(line for line in text.splitlines()
                            if re.match(rf"^\|? ?{loss} [|&] {cls} [|&]", line))
                entries = re.split(r" [|&] ", line.strip("| \\"))
                assert entries[2] == "100.0" and entries[-3] == "0.0", (suffix, loss, entries)
                assert entries[-1] in ("1×3", r"1$\times$3"), (suffix, loss, entries)


# ----------------------------------------------------------------------------- model_best.pt
BEST = {
    "network": "enet2d", "network_params": {"width": 4}, "loss": "dice", "weighting": "none", "loss_params": {},
    "lr": 0.1, "seed": 4, "threads": 1,  # the best validation at iteration 4 of 6
    "recipe": {"optimizer": "adam", "iterations": 6, "batch_size": 2, "patch_size": [32, 32],
               "val_interval": 1, "log_interval": 1, "checkpoint_interval": 6},
}


def _val_dice(model_path: Path, dataset: Path, out: Path) -> float:
    """The validation Dice of a saved model, computed as the trainer's validation does."""
    from dicebench.inference.predict import load_model, predict_probabilities
    from dicebench.training.sampling import load_case
    from dicebench.training.trainer import hard_dice_objects

    model, meta = load_model(model_path)
    names = json.loads((out / "split.json").read_text())["validation"]
    return float(np.mean([hard_dice_objects(np.argmax(predict_probabilities(
        model, c.image, meta["patch_size"], 0.5, 4), 0), c.label, meta["num_classes"])
        for c in (load_case(dataset, n, "Tr", 1) for n in names)]))


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_model_best_holds_the_weights_of_the_best_logged_validation(tiny_acdc, tmp_path):
    from dicebench.training.trainer import train_cell

    run = tmp_path / "run"
    train_cell(tiny_acdc, None, copy.deepcopy(BEST), run)
    log = pd.read_csv(run / "log.csv")
    assert log["iteration"].tolist() == list(range(1, 7)) and log["val_dice"].notna().all()
    best = log.loc[log["val_dice"].idxmax()]
    k = int(best["iteration"])
    assert k < 6 and log["val_dice"].iloc[-1] < best["val_dice"], "best is the last row: the test proves nothing"
    blob = torch.load(run / "model_best.pt", map_location="cpu", weights_only=True)
    meta = json.loads(blob["meta"])
    assert meta["iteration"] == k and meta["val_dice"] == pytest.approx(best["val_dice"], abs=1e-12)
    # the weights themselves: they give the logged best Dice, the last ones the last row's Dice ...
    assert _val_dice(run / "model_best.pt", tiny_acdc, run) == pytest.approx(best["val_dice"], abs=1e-9)
    assert _val_dice(run / "model.pt", tiny_acdc, run) == pytest.approx(log["val_dice"].iloc[-1], abs=1e-9)
    # ... and they are those of the same cell stopped after k iterations (batches depend on (seed, it) only)
    short = copy.deepcopy(BEST)
    short["recipe"]["iterations"] = k
    train_cell(tiny_acdc, None, short, tmp_path / "short")
    got, expected = _weights(run / "model_best.pt"), _weights(tmp_path / "short" / "model.pt")
    assert got.keys() == expected.keys()
    for name in got:
        assert torch.equal(got[name], expected[name]), name
    last = _weights(run / "model.pt")
    assert any(not torch.equal(last[n], got[n]) for n in got)


WORKFLOW_CONFIG = {
    "results": "results",
    "figures": "figures",
    "datasets": {"synth_acdc": {"source": "synthetic", "phantom": "acdc", "n_train": 2, "n_test": 1, "seed": 1}},
    "preprocessing": {"mri": {"target_spacing": None, "normalization": "zscore"}},
    "experiments": {EXPERIMENT: CONFIG["experiments"][EXPERIMENT]},
}


@pytest.mark.workflow
@pytest.mark.parametrize("checkpoint, model", [("best", "model_best.pt"), ("last", "model.pt")])
def test_inference_checkpoint_setting_picks_the_model_file(tmp_path, checkpoint, model):
    """The `infer` job of a cell reads model_best.pt with `inference.checkpoint: best`, model.pt with `last`."""
    config = copy.deepcopy(WORKFLOW_CONFIG)
    config["inference"] = {"checkpoint": checkpoint}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    cell = next(grid.experiment_cells(EXPERIMENT, config["experiments"][EXPERIMENT]))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(tmp_path / "config" / "config.yaml"),
                           "--cores", "1", "--dry-run", "--printshellcmds", f"results/{cell.path}/predictions"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [line for line in (proc.stdout + proc.stderr).splitlines() if "dicebench infer" in line]
    assert len(commands) == 1, proc.stdout[-3000:]
    assert f"--model results/{cell.path}/{model} " in commands[0]
