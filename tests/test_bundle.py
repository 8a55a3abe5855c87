"""The results bundle and `verify`: what goes in, checksums that catch a changed file, and the
verdicts. The fast tests build a run's folders by hand; the slow one bundles a real tiny run
and reruns its cells through Snakemake."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dicebench import grid
from dicebench.errors import DicebenchError
from dicebench.review import bundle as B
from dicebench.review import verify as V

CONFIG = {
    "results": "results",
    "figures": "figures",
    "compute_threads": 1,
    "datasets": {"synth_acdc": {"source": "synthetic", "phantom": "acdc", "n_train": 3, "n_test": 1, "seed": 1,
                                "shape": [4, 32, 32]}},
    "preprocessing": {"plain": {"target_spacing": None, "n4": {"enabled": False}, "normalization": "zscore"}},
    "experiments": {
        "tiny": {"datasets": ["synth_acdc"], "preprocessing": "plain", "networks": ["unet2d"],
                 "network_params": {"unet2d": {"width": 4}}, "losses": ["dice", "mime"], "lrs": [0.01],
                 "seeds": [0, 1],
                 "recipe": {"optimizer": "adam", "iterations": 4, "batch_size": 2, "patch_size": [32, 32],
                            "val_interval": 2}},
    },
}
PACKAGES = {"torch": "2.13.0", "numpy": "2.3.5", "dicebench": "0.1.0"}
# case-mean DSC of each (loss, seed): two cases, three object classes each
DSC = {("dice", 0): 0.60, ("dice", 1): 0.64, ("mime", 0): 0.70, ("mime", 1): 0.69}


def per_case_table(mean: float, cases=("c1", "c2")) -> pd.DataFrame:
    """Object-class DSCs mean + (-0.1, 0, 0.1) per case, background 0.99: case mean = `mean`."""
    rows = []
    for case in cases:
        rows.append({"case": case, "class_index": 0, "class": "background", "dsc": 0.99, "hd95": math.nan,
                     "gt_voxels": 900, "pred_voxels": 900})
        for k, off in zip((1, 2, 3), (-0.1, 0.0, 0.1)):
            rows.append({"case": case, "class_index": k, "class": f"c{k}", "dsc": mean + off, "hd95": 3.0 + k,
                         "gt_voxels": 50, "pred_voxels": 52})
    return pd.DataFrame(rows)


def write_cell(folder: Path, settings: dict, mean: float, *, device="cpu", packages=PACKAGES, commit="a" * 40,
               weights=False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    info = {"settings": settings, "device": device, "packages": dict(packages), "git_commit": commit,
            "platform": "Linux-test", "python": "3.11.7"}
    (folder / "cell.json").write_text(json.dumps(info))
    per_case_table(mean).to_csv(folder / "per_case.csv", index=False)
    (folder / "metrics.csv").write_text("class_index,class,n_cases,dsc_mean\n-1,all,2,%r\n" % mean)
    (folder / "log.csv").write_text("iteration,train_loss,val_dice,lr\n2,0.5,0.4,0.01\n")
    (folder / "split.json").write_text('{"train": ["a"], "validation": ["b"]}')
    if weights:
        for name in ("model.pt", "model_best.pt"):
            (folder / name).write_bytes(b"weights of " + folder.name.encode())


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A finished run's folders (config, cells, tables, figures with a claims table) in tmp_path,
    which is the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    config = B.load_config([Path("config/config.yaml")])
    for cell in grid.all_cells(config):
        write_cell(tmp_path / "results" / cell.path, grid.cell_settings(config, cell), DSC[(cell.loss, cell.seed)],
                   weights=True)
    for name in B.TABLE_FILES:
        (tmp_path / "results" / "tiny" / name).write_text(f"{name}\n")
    (tmp_path / "figures" / "tables").mkdir(parents=True)
    (tmp_path / "figures" / "tables" / "claims.tex").write_text("\\begin{table}\n")
    dice0 = "results/tiny/synth_acdc/unet2d/dice-none/lr0.01/seed0"
    mime0 = "results/tiny/synth_acdc/unet2d/mime-none/lr0.01/seed0"
    pd.DataFrame([{"id": "K1", "dataset": "acdc", "verdict": "inconclusive", "cells": f"{dice0};{mime0}"},
                  {"id": "K2", "dataset": "acdc", "verdict": "not run", "cells": ""}]).to_csv(
        tmp_path / "figures" / "claims.csv", index=False)
    return tmp_path


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_bundle_holds_the_cells_tables_figures_config_and_a_manifest(fake_run):
    out = fake_run / "out" / "review.tar.gz"
    os.chmod(fake_run / "results" / "tiny" / "table.csv", 0o600)  # as dicebench.io writes outputs
    info = B.write_bundle([Path("config/config.yaml")], out)
    files = members(out)
    cell = "results/tiny/synth_acdc/unet2d/dice-none/lr0.01/seed1"
    for name in ("cell.json", "log.csv", "split.json", "per_case.csv", "metrics.csv"):
        assert files[f"{cell}/{name}"] == (fake_run / cell / name).read_bytes()
    assert not any(n.endswith(".pt") for n in files)  # weights only when asked
    assert {"results/tiny/table.csv", "results/tiny/table.md", "results/tiny/cases.csv", "figures/claims.csv",
            "figures/tables/claims.tex", "config/00-config.yaml", "config/resolved.yaml",
            "env/requirements.lock", "env/pyproject.toml", "env/envs/train.yaml", "env/envs/driver.yaml", "bundle.json"} <= set(files)
    # the manifest lists every other file with its SHA-256, in `sha256sum -c` format
    listed = dict(reversed(line.split("  ", 1)) for line in files["SHA256SUMS"].decode().splitlines())
    assert set(listed) == set(files) - {"SHA256SUMS"}
    assert all(listed[n] == hashlib.sha256(data).hexdigest() for n, data in files.items() if n != "SHA256SUMS")
    # self-describing: commit, config, packages, platform, device; one top folder named after the file
    described = json.loads(files["bundle.json"])
    assert described == json.loads(json.dumps(info))
    assert described["format"] == B.FORMAT and described["devices"] == ["cpu"]
    assert len(described["git_commit"]) == 40 and described["packages"]["pandas"] == pd.__version__
    assert described["python"] == sys.version.split()[0] and described["platform"]
    assert yaml.safe_load(files["config/resolved.yaml"])["experiments"]["tiny"]["seeds"] == [0, 1]
    with tarfile.open(out) as tar:
        assert {m.name.split("/")[0] for m in tar.getmembers()} == {"review"}
        assert {(m.mode, m.uid, m.uname) for m in tar.getmembers()} == {(0o644, 0, "")}


def test_bundle_records_case_mean_dsc_and_the_between_seed_spread(fake_run):
    info = B.write_bundle([Path("config/config.yaml")], fake_run / "b.tar.gz")
    by_cell = {(c["loss"], c["seed"]): c["case_mean_dsc"] for c in info["cells"]}
    assert by_cell == pytest.approx(DSC)
    spread = {g["loss"]: g for g in info["seed_spread"]}
    assert spread["dice"]["seeds"] == [0, 1]
    assert spread["dice"]["std"] == pytest.approx(np.std([0.60, 0.64], ddof=1))
    assert spread["mime"]["std"] == pytest.approx(np.std([0.70, 0.69], ddof=1))


def test_weights_go_in_only_when_asked(fake_run):
    out = fake_run / "w.tar.gz"
    B.write_bundle([Path("config/config.yaml")], out, weights=True)
    weights = [n for n in members(out) if n.endswith(".pt")]
    assert len(weights) == 2 * 4 and json.loads(members(out)["bundle.json"])["weights"] is True


def test_a_cell_trained_with_other_settings_is_refused(fake_run):
    path = fake_run / "results/tiny/synth_acdc/unet2d/mime-none/lr0.01/seed1/cell.json"
    info = json.loads(path.read_text())
    info["settings"]["recipe"]["iterations"] = 40
    path.write_text(json.dumps(info))
    with pytest.raises(DicebenchError, match=r"mime-none/lr0.01/seed1/cell.json: .*recipe.iterations: 40"):
        B.write_bundle([Path("config/config.yaml")], fake_run / "b.tar.gz")
    assert not (fake_run / "b.tar.gz").exists()


def test_an_unfinished_cell_is_refused(fake_run):
    (fake_run / "results/tiny/synth_acdc/unet2d/dice-none/lr0.01/seed0/per_case.csv").unlink()
    with pytest.raises(DicebenchError, match=r"dice-none/lr0.01/seed0/per_case.csv: missing"):
        B.write_bundle([Path("config/config.yaml")], fake_run / "b.tar.gz")


def _rewrite(src: Path, dst: Path, change) -> None:
    """Copy a bundle archive, passing each (name, data) through `change` (None drops the file)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            new = change(m.name.split("/", 1)[1], data)
            if new is not None:
                m.size = len(new)
                tout.addfile(m, io.BytesIO(new))


def test_checksums_catch_a_changed_missing_or_added_file(fake_run):
    good = fake_run / "b.tar.gz"
    B.write_bundle([Path("config/config.yaml")], good)
    assert len(B.check_bundle(good)) > 20
    target = "results/tiny/synth_acdc/unet2d/dice-none/lr0.01/seed0/per_case.csv"

    bad = fake_run / "tampered.tar.gz"
    _rewrite(good, bad, lambda n, d: d.replace(b"0.6", b"0.7") if n == target else d)
    with pytest.raises(DicebenchError, match=f"{target} does not match its SHA-256"):
        B.check_bundle(bad)
    _rewrite(good, bad, lambda n, d: None if n == target else d)
    with pytest.raises(DicebenchError, match=f"{target} is listed in SHA256SUMS but missing"):
        B.check_bundle(bad)
    # an unpacked bundle is checked the same way
    folder = B.unpack(good, fake_run / "unpacked")
    (folder / "figures" / "extra.png").write_bytes(b"x")
    with pytest.raises(DicebenchError, match="figures/extra.png is not listed"):
        B.check_bundle(folder)
    (folder / "figures" / "extra.png").unlink()
    B.check_bundle(folder)
    (folder / target).write_text((folder / target).read_text() + "\n")
    with pytest.raises(DicebenchError, match=f"{target} does not match"):
        B.check_bundle(folder)


def test_not_a_bundle(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(DicebenchError, match="not a readable .tar.gz"):
        B.check_bundle(tmp_path / "x.tar.gz")
    with pytest.raises(DicebenchError, match="file not found"):
        B.check_bundle(tmp_path / "missing.tar.gz")


# ---------------------------------------------------------------------------- verdicts


@pytest.fixture
def bundled(fake_run):
    out = fake_run / "b.tar.gz"
    B.write_bundle([Path("config/config.yaml")], out)
    folder = B.unpack(out, fake_run / "unpacked")
    return folder, B.read_info(folder)


def _cell(info, loss, seed):
    return next(c for c in info["cells"] if c["loss"] == loss and c["seed"] == seed)


def _rerun(tmp: Path, folder: Path, cell: dict, mean: float | None = None, seed: int | None = None, **kw) -> Path:
    """A rerun's cell folder: the bundle's files, or a new per_case.csv with case-mean `mean`."""
    out = tmp / "rerun" / cell["path"]
    shutil.copytree(folder / cell["path"], out, dirs_exist_ok=True)
    old = json.loads((out / "cell.json").read_text())
    if mean is not None or seed is not None or kw:
        settings = dict(old["settings"], seed=old["settings"]["seed"] if seed is None else seed)
        write_cell(out, settings, mean if mean is not None else cell["case_mean_dsc"], **kw)
    return out


def test_a_byte_identical_rerun_is_identical(bundled, tmp_path):
    folder, info = bundled
    cell = _cell(info, "dice", 0)
    v = V.compare(folder, info, cell, _rerun(tmp_path, folder, cell))
    assert v.verdict == V.IDENTICAL and v.delta == 0 and v.differing == []
    assert "byte-identical" in v.reason and "same seed 0, device cpu, packages" in v.reason


def test_another_seed_within_the_spread_agrees_and_beyond_it_differs(bundled, tmp_path):
    folder, info = bundled
    cell = _cell(info, "dice", 0)  # bundle: 0.60; seeds 0, 1 give sigma = 0.0283, band 1.96*sqrt(2)*sigma
    band = 1.96 * math.sqrt(2) * np.std([0.60, 0.64], ddof=1)
    near = V.compare(folder, info, cell, _rerun(tmp_path, folder, cell, 0.60 + 0.9 * band, seed=7))
    assert near.verdict == V.AGREES and near.differing == ["seed"]
    assert near.tolerance == pytest.approx(band) and near.delta == pytest.approx(0.9 * band)
    assert "seed 7 (bundle: 0)" in near.reason and "same device cpu, packages" in near.reason
    far = V.compare(folder, info, cell, _rerun(tmp_path / "2", folder, cell, 0.60 - 1.1 * band, seed=7))
    assert far.verdict == V.DIFFERS and "beyond" in far.reason


def test_the_reason_names_a_different_device_and_packages(bundled, tmp_path):
    folder, info = bundled
    cell = _cell(info, "mime", 1)
    rerun = _rerun(tmp_path, folder, cell, 0.695, device="cuda:1 (NVIDIA H200)",
                   packages={**PACKAGES, "torch": "2.12.0"})
    v = V.compare(folder, info, cell, rerun)
    assert v.differing == ["device", "packages"]
    assert "device cuda (NVIDIA H200) (bundle: cpu)" in v.reason and "packages torch 2.12.0 (bundle: torch 2.13.0)" \
        in v.reason and "same seed 1" in v.reason
    assert v.verdict == V.AGREES  # |0.695 - 0.69| = 0.005 < 1.96 * sqrt(2) * 0.00707


def test_same_seed_device_and_packages_but_other_bytes_says_so(bundled, tmp_path):
    folder, info = bundled
    cell = _cell(info, "dice", 1)
    v = V.compare(folder, info, cell, _rerun(tmp_path, folder, cell, 0.6401))
    assert v.verdict == V.AGREES and v.reason.startswith("not deterministic here")


def test_without_a_seed_spread_agreement_cannot_be_shown(fake_run, tmp_path):
    config = yaml.safe_load((fake_run / "config" / "config.yaml").read_text())
    config["experiments"]["tiny"]["seeds"] = [0]
    (fake_run / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    out = fake_run / "one-seed.tar.gz"
    info = B.write_bundle([Path("config/config.yaml")], out)
    assert info["seed_spread"] == []
    folder = B.unpack(out, fake_run / "one")
    cell = _cell(info, "dice", 0)
    v = V.compare(folder, info, cell, _rerun(tmp_path, folder, cell, 0.6001, seed=3))
    assert v.verdict == V.DIFFERS and "no between-seed spread" in v.reason and math.isnan(v.tolerance)


def test_the_spread_is_pooled_over_the_experiment_when_the_group_has_one_seed():
    info = {"seed_spread": [
        {"experiment": "e", "dataset": "d", "network": "n", "loss": "a", "weighting": "none", "lr": "0.01",
         "seeds": [0, 1], "std": 0.02},
        {"experiment": "e", "dataset": "d", "network": "n", "loss": "b", "weighting": "none", "lr": "0.01",
         "seeds": [0, 1, 2], "std": 0.05},
        {"experiment": "e", "dataset": "other", "network": "n", "loss": "c", "weighting": "none", "lr": "0.01",
         "seeds": [0, 1], "std": 0.9}]}
    cell = {"experiment": "e", "dataset": "d", "network": "n", "loss": "z", "weighting": "none", "lr": "0.01"}
    sigma, text = V.spread_for(info, cell)
    assert sigma == pytest.approx(math.sqrt((1 * 0.02**2 + 2 * 0.05**2) / 3)) and "pooled over 2" in text
    own, _ = V.spread_for(info, {**cell, "loss": "b"})
    assert own == 0.05


def test_cells_of_a_claim_come_from_the_claims_table(bundled):
    folder, info = bundled
    chosen = V.select_cells(folder, info, [], "K1")
    assert [c["path"] for c in chosen] == ["results/tiny/synth_acdc/unet2d/dice-none/lr0.01/seed0",
                                           "results/tiny/synth_acdc/unet2d/mime-none/lr0.01/seed0"]
    # a cell by its folder, with or without the results prefix, or by one of its files
    for name in ("results/tiny/synth_acdc/unet2d/mime-none/lr0.01/seed1",
                 "tiny/synth_acdc/unet2d/mime-none/lr0.01/seed1/",
                 "/elsewhere/results/tiny/synth_acdc/unet2d/mime-none/lr0.01/seed1/metrics.csv"):
        assert [c["path"] for c in V.select_cells(folder, info, [name], None)] == [
            "results/tiny/synth_acdc/unet2d/mime-none/lr0.01/seed1"]
    with pytest.raises(DicebenchError, match="no claim 'K9'"):
        V.select_cells(folder, info, [], "K9")
    with pytest.raises(DicebenchError, match="claim 'K2' used no cells"):
        V.select_cells(folder, info, [], "K2")
    with pytest.raises(DicebenchError, match="no cell results/tiny/synth_acdc/unet2d/dice-none/lr0.01/seed5"):
        V.select_cells(folder, info, ["results/tiny/synth_acdc/unet2d/dice-none/lr0.01/seed5"], None)


def test_a_claims_table_without_cells_is_named(bundled):
    folder, info = bundled
    pd.DataFrame([{"id": "K1", "verdict": "x"}]).to_csv(folder / "figures" / "claims.csv", index=False)
    with pytest.raises(DicebenchError, match="claims.csv: no 'id' and 'cells' columns"):
        V.select_cells(folder, info, [], "K1")


def test_the_rerun_config_writes_into_the_scratch_folder_with_the_new_seed(bundled):
    folder, info = bundled
    config = V.rerun_config(folder, info, 5, [_cell(info, "dice", 0)])
    assert config["results"] == "results" and config["experiments"]["tiny"]["seeds"] == [5]
    assert V.rerun_path(_cell(info, "dice", 0), 5) == "results/tiny/synth_acdc/unet2d/dice-none/lr0.01/seed5"
    # the config as rerun is valid and holds that cell
    cells = grid.all_cells(grid.validate_config(config))
    assert [c.path for c in cells if c.loss == "dice"] == ["tiny/synth_acdc/unet2d/dice-none/lr0.01/seed5"]


def test_verdicts_csv(tmp_path):
    v = V.Verdict(cell="results/x", rerun="r", verdict=V.AGREES, reason="why", bundle_dsc=0.5, rerun_dsc=0.51,
                  delta=0.01, seed_spread=0.02, tolerance=0.0554, differing=["seed", "device"])
    V.write_verdicts([v], tmp_path / "v.csv")
    table = pd.read_csv(tmp_path / "v.csv")
    assert list(table.columns) == V.PER_CELL_COLUMNS
    assert table.loc[0, "verdict"] == V.AGREES and table.loc[0, "differing"] == "seed;device"


def test_cli_errors_are_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    proc = subprocess.run([sys.executable, "-m", "dicebench", "verify", "--bundle", str(tmp_path / "no.tar.gz"),
                           "--cell", "results/x"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert "no.tar.gz: file not found" in proc.stderr


# ---------------------------------------------------------------------------- end to end


def _snakefile(work: Path, repo: Path) -> Path:
    return repo / "Snakefile"


def _run(work: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", *cmd], cwd=work, env=env, capture_output=True, text=True,
                          timeout=900)


def _snakemake(work: Path, repo: Path, *targets: str) -> subprocess.CompletedProcess:
    return _run(work, "snakemake", "--snakefile", str(_snakefile(work, repo)), "--directory", str(work),
                "--configfile", str(work / "config" / "config.yaml"), "--cores", "2", *targets)


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory, repo_root):
    """A tiny real run (one loss, seeds 0 and 1) and its bundle, made by the `bundle` target."""
    work = tmp_path_factory.mktemp("bundle_e2e")
    (work / "config").mkdir()
    config = json.loads(json.dumps(CONFIG))
    config["experiments"]["tiny"]["losses"] = ["ce"]  # no gradient map or sub-patching figure to draw
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = _snakemake(work, repo_root, "results/bundle.tar.gz")
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in (work / "results" / "logs").rglob("*.log"))
        pytest.fail(f"snakemake failed:\n{proc.stderr[-4000:]}\n{logs}")
    return work


CELL0 = "results/tiny/synth_acdc/unet2d/ce-none/lr0.01/seed0"


@pytest.mark.slow
def test_the_bundle_target_bundles_the_run(real_bundle):
    path = real_bundle / "results" / "bundle.tar.gz"
    sums = B.check_bundle(path)
    assert {f"{CELL0}/per_case.csv", "figures/viewer/tiny/synth_acdc.html", "figures/claims.csv",
            "paper/paper.pdf", "config/resolved.yaml", "results/tiny/cases.csv"} <= set(sums)
    info = json.loads(members(path)["bundle.json"])
    assert [c["seed"] for c in info["cells"]] == [0, 1] and info["devices"] == ["cpu"]
    assert [g["seeds"] for g in info["seed_spread"]] == [[0, 1]]


@pytest.mark.slow
def test_verify_reruns_a_cell_identically_and_judges_another_seed(real_bundle, repo_root):
    # the Snakemake target: the same seed on the same machine gives byte-identical per-case metrics
    target = f"results/verify/{CELL0[len('results/'):]}/verdict.csv"
    proc = _snakemake(real_bundle, repo_root, target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdict = pd.read_csv(real_bundle / target)
    assert verdict.loc[0, "verdict"] == V.IDENTICAL, verdict.loc[0, "reason"]
    assert verdict.loc[0, "cell"] == CELL0 and "same seed 0, device cpu, packages" in verdict.loc[0, "reason"]
    work = real_bundle / f"results/verify/{CELL0[len('results/'):]}/work"
    assert (work / CELL0 / "per_case.csv").read_bytes() == (real_bundle / CELL0 / "per_case.csv").read_bytes()
    assert (work / CELL0 / "log.csv").read_bytes() == (real_bundle / CELL0 / "log.csv").read_bytes()

    # the command, another seed: agrees or differs, as the bundle's seed spread says
    proc = _run(real_bundle, "dicebench", "verify", "--bundle", "results/bundle.tar.gz", "--cell", CELL0,
                "--seed", "2", "--workdir", str(work), "--out", "seed2.csv")
    verdict = pd.read_csv(real_bundle / "seed2.csv").iloc[0]
    old = B.case_mean_dsc(pd.read_csv(real_bundle / CELL0 / "per_case.csv"))
    new = B.case_mean_dsc(pd.read_csv(work / CELL0.replace("seed0", "seed2") / "per_case.csv"))
    sigma = np.std([old, B.case_mean_dsc(pd.read_csv(real_bundle / CELL0.replace("seed0", "seed1") / "per_case.csv"))],
                   ddof=1)
    expected = V.AGREES if abs(new - old) <= 1.96 * math.sqrt(2) * sigma else V.DIFFERS
    assert verdict["verdict"] == expected and proc.returncode == (0 if expected == V.AGREES else 3), proc.stderr
    assert verdict["delta"] == pytest.approx(new - old)
    assert "seed 2 (bundle: 0)" in verdict["reason"] and verdict["differing"] == "seed"
    assert f"{CELL0}: {expected} (" in proc.stdout


@pytest.mark.slow
def test_verify_refuses_a_tampered_bundle(real_bundle, tmp_path):
    bad = tmp_path / "tampered.tar.gz"
    _rewrite(real_bundle / "results" / "bundle.tar.gz", bad,
             lambda n, d: d.replace(b"seed", b"sEed", 1) if n == f"{CELL0}/cell.json" else d)
    proc = _run(real_bundle, "dicebench", "verify", "--bundle", str(bad), "--cell", CELL0,
                "--workdir", str(tmp_path / "scratch"))
    assert proc.returncode == 1 and f"{CELL0}/cell.json does not match its SHA-256" in proc.stderr
    assert not (tmp_path / "scratch" / "results").exists()  # nothing was rerun
