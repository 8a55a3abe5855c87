"""dicebench.workflow: which config runs, which outputs exist, which cells are stale."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from dicebench import grid
from dicebench import workflow as wf
from dicebench.errors import DicebenchError
from dicebench.provenance import code_files, code_version, step_code_version

REPO = Path(__file__).resolve().parents[1]
MINE = {
    "datasets": {"d": {"source": "synthetic", "phantom": "acdc", "n_train": 3, "n_test": 1}},
    "preprocessing": {"p": {"normalization": "zscore"}},
    "experiments": {"mine": {"datasets": ["d"], "preprocessing": "p", "networks": ["unet2d"], "losses": ["dice"],
                             "lrs": [0.01], "seeds": [0, 1],
                             "recipe": {"optimizer": "adam", "iterations": 2, "batch_size": 2,
                                        "patch_size": [32, 32]}}},
}


def test_a_users_config_runs_alone_with_schema_defaults():
    config = copy.deepcopy(MINE)
    wf.prepare_config(config, ["mine.yaml"])
    assert list(config["experiments"]) == ["mine"] and list(config["datasets"]) == ["d"]
    assert config["inference"]["overlap"] == 0.5 and config["compute_threads"] == 1
    assert config["experiments"]["mine"]["recipe"]["val_fraction"] == 0.2
    assert [c.path for c in grid.all_cells(config)] == [
        "mine/d/unet2d/dice-none/lr0.01/seed0", "mine/d/unet2d/dice-none/lr0.01/seed1"]
    assert wf.papers(config) == [] and wf.paper_of(config, "mine") is None


def test_without_a_config_file_the_default_run_is_the_base():
    config = {"compute_threads": 2}  # as --config compute_threads=2 would give
    wf.prepare_config(config, [])
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert set(config["experiments"]) >= set(default["experiments"]) and config["compute_threads"] == 2


def test_papers_figures_and_targets_follow_the_experiments():
    config = copy.deepcopy(MINE)
    config["experiments"]["mine"]["paper"] = "kervadec2023"
    config["experiments"]["mine"]["losses"] = ["dice", "mime"]
    config["experiments"]["mine"]["subpatch"] = {"patch_sizes": [[16, 32]]}
    wf.prepare_config(config, ["mine.yaml"])
    assert wf.paper_of(config, "mine") == "kervadec2023" and wf.paper_of(config, "mine_p16x32") is None
    assert wf.claims_paper(config, "mine_p16x32") == "kervadec2023"
    sets = wf.figure_sets(config)
    assert sets["gradient_map"] == [("mine", "d")] and sets["subpatch"] == [("mine", "d")]
    assert sets["lr_sensitivity"] == [] and sets["learning_curves"] == [("mine", "")]
    targets = wf.targets(config)
    assert "figures/tables/kervadec2023.md" in targets and targets[-1] == "paper/paper.pdf"
    assert "results/mine_p16x32/table.md" in targets and "figures/viewer/mine/d.html" in targets
    assert {c.experiment for c in wf.sweep_cells(config, "mine", "d")} == {"mine", "mine_p16x32"}
    assert wf.gradient_cell(config, "mine", "d").loss == "dice"
    assert {c.seed for c in wf.qualitative_cells(config, "mine", "d")} == {0}


@pytest.mark.parametrize("edit,key", [
    (lambda c: c["experiments"]["mine"].update(loss_params={"dice": {"smoth_nr": 1}}),
     "experiments.mine.loss_params.dice.smoth_nr: unknown parameter"),
    (lambda c: c["datasets"]["d"].update(knobs={"contarst": 0.3}), "datasets.d.knobs.contarst: unknown knob"),
    (lambda c: c["datasets"]["d"].update(knobs={"contrast": "high"}), "datasets.d.knobs.contrast: must be a number"),
    (lambda c: c["experiments"]["mine"].update(losses=["dcie"]), "experiments.mine.losses.0"),
])
def test_a_typo_stops_the_config_naming_the_key(edit, key):
    config = copy.deepcopy(MINE)
    edit(config)
    with pytest.raises(DicebenchError, match=key.replace(".", r"\.")):
        wf.prepare_config(config, ["mine.yaml"])


def test_code_files_follow_imports_and_versions_change_with_the_code(tmp_path):
    files = {Path(f).relative_to(REPO / "src" / "dicebench").as_posix() for f in code_files("dicebench.reporting.figures")}
    assert {"reporting/figures.py", "reporting/analysis.py", "reporting/style.py", "reporting/results.py"} <= files
    assert "training/trainer.py" not in files  # the drawing code does not make figures depend on the trainer
    train = {Path(f).name for f in code_files("dicebench.training.trainer")}
    assert {"trainer.py", "gdl.py", "mime.py", "sampling.py"} <= train  # losses load by name: all of them count
    assert "predict.py" not in train  # training does not import inference
    assert step_code_version("train") == code_version("dicebench.training.trainer")


def _fake_cell(config: dict, cell: grid.Cell, **cell_json) -> Path:
    folder = Path(wf.cell_dir(config, cell))
    (folder / "predictions").mkdir(parents=True)
    for name in ("model.pt", "metrics.csv"):
        (folder / name).write_text("x")
    (folder / "cell.json").write_text(json.dumps(cell_json))
    return folder


def test_stale_cells_name_their_reason_and_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = copy.deepcopy(MINE)
    wf.prepare_config(config, ["mine.yaml"])
    a, b = grid.all_cells(config)
    _fake_cell(config, a, code_version=step_code_version("train"))
    old = _fake_cell(config, b, code_version="0123456789abcdef")
    assert [(c.seed, r) for c, r in wf.stale_cells(config)] == [
        (1, [f"training code changed (0123456789abcdef -> {step_code_version('train')})"])]
    (old / "model.pt").unlink()
    (old / "predictions" / "inference.json").write_text(json.dumps({"code_version": "fedcba9876543210"}))
    reasons = dict((c.seed, r) for c, r in wf.stale_cells(config))[1]
    assert reasons[0] == "model.pt missing while metrics.csv exists" and reasons[2].startswith("inference code")
    (cmd,) = wf.rerun_commands(config, wf.stale_cells(config), Path("mine.yaml"), 2)
    assert "--forcerun=train" in cmd and cmd[-1] == "results/mine/d/unet2d/dice-none/lr0.01/seed1/metrics.csv"
