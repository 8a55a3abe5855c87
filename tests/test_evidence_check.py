"""`dicebench evidence-check`: the evidence run's targets read from what a run wrote."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dicebench import grid
from dicebench.errors import DicebenchError
from dicebench.reporting import evidence


@pytest.fixture
def config(repo_root, tmp_path) -> dict:
    """The evidence config cut to Liu & Fu's experiment (3 seeds), its floor, results under tmp."""
    config = yaml.safe_load((repo_root / "config" / "evidence.yaml").read_text())
    config["experiments"] = {"liu2018": config["experiments"]["liu2018"]}
    config["datasets"] = {"synth_prostate": config["datasets"]["synth_prostate"]}
    config["floors"] = [f for f in config["floors"] if f["experiment"] == "liu2018"]
    config["results"], config["figures"] = str(tmp_path / "results"), str(tmp_path / "figures")
    return grid.validate_config(config)


def _write_cell(config, cell, converged: bool, dsc: list[float]) -> None:
    """The cell's cell.json, and its test cases appended to the experiment's cases.csv (as the
    aggregate rule writes it): prostate DSC per case, plus a case without the prostate."""
    folder = Path(config["results"]) / cell.path
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps({"convergence": {"converged": converged}}))
    ident = {"experiment": cell.experiment, "dataset": cell.dataset, "network": cell.network, "loss": cell.loss,
             "weighting": cell.weighting, "lr": cell.lr, "seed": cell.seed}
    rows = [{**ident, "case": f"c{i}", "class_index": k, "class": name, "dsc": d if k else 0.99, "gt_voxels": 10}
            for i, d in enumerate(dsc) for k, name in ((0, "background"), (1, "prostate"))]
    rows.append({**ident, "case": "empty", "class_index": 1, "class": "prostate", "dsc": 0.0, "gt_voxels": 0})
    path = Path(config["results"]) / cell.experiment / "cases.csv"
    pd.DataFrame(rows).to_csv(path, mode="a", header=not path.exists(), index=False)


def test_convergence_floors_and_mdd_are_read_from_the_run(config, tmp_path):
    cells = list(grid.all_cells(config))
    assert len(cells) == 3
    # seeds' mean DSC 90, 86, 82 -> 86 >= 85 (the absent-class row is not a case of the class)
    for cell, mean, converged in zip(cells, (0.90, 0.86, 0.82), (True, True, False)):
        _write_cell(config, cell, converged, [mean - 0.01, mean + 0.01])
    claims = tmp_path / "claims.csv"
    pd.DataFrame({"test": ["greater", "similar", "at_least", "greatest"], "mdd": [1.0, 3.0, 50.0, None]}).to_csv(claims)

    conv = evidence.convergence(config)
    assert conv[["cells", "trained", "converged"]].values.tolist() == [[3, 3, 2]]
    floors = evidence.floors(config)
    assert len(floors) == 1
    row = floors.iloc[0]
    assert row.dsc == pytest.approx(86.0) and row.sd == pytest.approx(4.0)
    assert (row.seeds, row.cases, row.met) == (3, 2, True)
    assert evidence.median_mdd(claims) == (2.0, 2)  # at_least and missing mdd left out

    text, ok = evidence.report(config, claims)
    assert not ok  # one cell did not converge
    assert "- [ ] every cell converged (2/3)" in text and "- [x] floors met (1/1)" in text
    assert "- [x] median mdd of the difference claims at most 2 DSC points (2.00 over 2 claims)" in text


def test_a_floor_below_target_or_with_missing_seeds_is_not_met(config, tmp_path):
    cells = list(grid.all_cells(config))
    for cell in cells[:2]:  # the third seed never ran
        _write_cell(config, cell, True, [0.95, 0.95])
    row = evidence.floors(config).iloc[0]
    assert (row.seeds, row.of_seeds, row.met) == (2, 3, False)
    for cell in cells[2:]:
        _write_cell(config, cell, True, [0.10, 0.10])
    row = evidence.floors(config).iloc[0]
    assert row.dsc == pytest.approx(200 / 3) and not row.met
    assert evidence.convergence(config).trained.tolist() == [3]


def test_a_floor_naming_an_unknown_dataset_is_one_clear_error(config):
    config["floors"][0]["dataset"] = "synth_acdc"
    with pytest.raises(DicebenchError, match=r"floors\[0\]\.dataset: 'synth_acdc' is not a dataset of experiment 'liu2018'"):
        grid.validate_config(config)


def test_the_cli_prints_the_report(config, tmp_path, capsys):
    from dicebench.cli import main

    path = tmp_path / "evidence.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "check.md"
    assert main(["evidence-check", "--configfile", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text() and "- [ ] every cell converged (0/3)" in printed
