"""End to end: the real Snakemake DAG on a tiny config, in a temporary directory."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

TINY = {
    "results": "results",
    "figures": "figures",
    "compute_threads": 1,
    "datasets": {
        "synth_acdc": {"source": "synthetic", "phantom": "acdc", "n_train": 3, "n_test": 1, "seed": 1,
                       "shape": [4, 32, 32]},
        "synth_abdomen": {"source": "synthetic", "phantom": "abdomen", "n_train": 3, "n_test": 1, "seed": 2,
                          "shape": [16, 24, 24]},
    },
    "preprocessing": {
        "mri": {"target_spacing": [2.0, 2.0, None], "n4": {"enabled": True, "iterations": [5]},
                "normalization": "zscore"},
        "ct": {"target_spacing": None, "normalization": "ct"},
    },
    "experiments": {
        "tiny2d": {"datasets": ["synth_acdc"], "preprocessing": "mri", "networks": ["unet2d"],
                   "network_params": {"unet2d": {"width": 4}}, "losses": ["dice", "mime"],
                   "lrs": [0.01], "seeds": [0],
                   "recipe": {"optimizer": "adam", "iterations": 4, "batch_size": 2, "patch_size": [32, 32],
                              "val_interval": 2},
                   "subpatch": {"patch_sizes": [[16, 32]]}},
        "tiny3d": {"datasets": ["synth_abdomen"], "preprocessing": "ct", "networks": ["unet3d"],
                   "network_params": {"unet3d": {"width": 2, "depth": 2}}, "losses": ["weighted_dice"],
                   "weightings": ["square"], "lrs": [0.001], "seeds": [0],
                   "recipe": {"optimizer": "sgd", "optimizer_params": {"momentum": 0.9}, "iterations": 3,
                              "batch_size": 2, "patch_size": [8, 8, 8], "val_interval": 3}},
    },
}


def _snakemake(workdir: Path, repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config" / "config.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, repo_root):
    work = tmp_path_factory.mktemp("e2e")
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(TINY))
    proc = _snakemake(work, repo_root)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in (work / "results" / "logs").rglob("*.log"))
        pytest.fail(f"snakemake failed:\n{proc.stderr[-4000:]}\n{logs}")
    return work


def test_every_cell_has_a_finite_dsc(tiny_run):
    cells = sorted((tiny_run / "results").glob("tiny*/*/*/*/lr*/seed*"))
    assert len(cells) == 5  # tiny2d's dice and mime again at 16x32 (its subpatch section)
    for cell in cells:
        metrics = pd.read_csv(cell / "metrics.csv")
        assert metrics["dsc_mean"].notna().all() and (metrics["dsc_mean"].between(0, 1)).all(), cell
        info = json.loads((cell / "cell.json").read_text())
        assert info["parameters"] > 0 and info["device"].startswith("cpu")
        assert info["settings"]["lr"] in (0.01, 0.001)
        assert len(list((cell / "predictions").glob("*.nii.gz"))) == 1


def test_predictions_lie_on_the_original_images(tiny_run):
    import SimpleITK as sitk

    for pred in (tiny_run / "results").glob("tiny*/*/*/*/lr*/seed*/predictions/*.nii.gz"):
        dataset = pred.relative_to(tiny_run / "results").parts[1]
        case = pred.name[: -len(".nii.gz")]
        ref = sitk.ReadImage(str(tiny_run / "results" / "datasets" / dataset / "imagesTs" / f"{case}_0000.nii.gz"))
        p = sitk.ReadImage(str(pred))
        assert p.GetSize() == ref.GetSize()
        for attr in ("GetSpacing", "GetOrigin", "GetDirection"):
            assert getattr(p, attr)() == pytest.approx(getattr(ref, attr)(), abs=1e-5)


def test_tables_and_figures(tiny_run):
    for exp in ("tiny2d", "tiny3d"):
        table = pd.read_csv(tiny_run / "results" / exp / "table.csv")
        assert {"dataset", "loss", "weighting", "lr", "seed", "class", "dsc_mean", "hd95_mean"} <= set(table.columns)
        assert "all" in set(table["class"])
        assert (tiny_run / "results" / exp / "table.md").read_text().startswith(f"# {exp}")
        png = tiny_run / "figures" / f"{exp}_learning_curves.png"
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_rerun_has_nothing_to_do(tiny_run, repo_root):
    proc = _snakemake(tiny_run, repo_root, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_subpatch_sweep_trains_and_plots_each_patch(tiny_run):
    table = pd.read_csv(tiny_run / "figures" / "subpatch" / "tiny2d" / "synth_acdc.csv")
    trained = table.dropna(subset=["variant"])
    assert set(zip(trained["patch"], trained["variant"])) == {(p, v) for p in ("16x32", "32x32")
                                                              for v in ("dice", "mime")}
    assert trained["dsc"].between(0, 1).all() and trained["empty_share_trained"].between(0, 1).all()
    sweep = json.loads(next((tiny_run / "results" / "tiny2d_p16x32").rglob("cell.json")).read_text())
    assert sweep["settings"]["recipe"]["patch_size"] == [16, 32] and sweep["settings"]["sweep_of"] == "tiny2d"
    assert sweep["training_patches"] == 4 * 2
    for name in ("png", "pdf"):
        assert (tiny_run / "figures" / "subpatch" / "tiny2d" / f"synth_acdc.{name}").stat().st_size > 1000
    # the generated experiment has its table, but no learning curves or paper figures of its own
    assert (tiny_run / "results" / "tiny2d_p16x32" / "table.md").exists()
    assert not (tiny_run / "figures" / "tiny2d_p16x32_learning_curves.png").exists()
    cases = pd.read_csv(tiny_run / "results" / "tiny2d_p16x32" / "cases.csv")
    assert set(cases["patch"]) == {"16x32"} and set(cases["sweep_of"]) == {"tiny2d"}


def test_html_report_has_the_captioned_outputs(tiny_run, repo_root):
    report = tiny_run / "report.html"
    proc = _snakemake(tiny_run, repo_root, "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text(errors="replace")
    for caption in ("Sub-patching in experiment", "claims"):
        assert caption in html, caption


def _planned(tiny_run, repo_root, *args: str, config: dict | None = None) -> list[str]:
    """The rules a dry run would execute (one name per job), optionally under another config."""
    import re

    path = tiny_run / "config" / "config.yaml"
    original = path.read_text()
    if config is not None:
        path.write_text(yaml.safe_dump(config))
    try:
        proc = _snakemake(tiny_run, repo_root, "--dry-run", *args)
    finally:
        path.write_text(original)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return re.findall(r"^\s*(?:local)?rule (\w+):$", proc.stdout, flags=re.M)  # grouped jobs are indented


def _with(edit) -> dict:
    config = json.loads(json.dumps(TINY))
    edit(config)
    return config


def test_result_neutral_settings_rerun_nothing(tiny_run, repo_root):
    """Loader workers, the sliding-window batch, evaluation threads and every resource cannot
    change a number (settings.neutral_keys): changing them plans nothing."""
    def neutral(c):
        c["experiments"]["tiny2d"]["recipe"]["data_workers"] = 2
        c["inference"] = {"sw_batch_size": 3, "slices_per_chunk": 5}
        c["evaluation"] = {"threads": 2}
        c["resources"] = {"default": {"runtime": 7, "mem_mb": 999}, "train": {"partition": "gpu", "gpu": 0}}
    assert _planned(tiny_run, repo_root, config=_with(neutral)) == []


def test_result_affecting_settings_rerun_what_they_change(tiny_run, repo_root):
    """The compute-thread count changes the numbers on the CPU: it retrains every cell."""
    planned = _planned(tiny_run, repo_root, config=_with(lambda c: c.update(compute_threads=2)))
    assert planned.count("train") == 5
    overlap = _planned(tiny_run, repo_root, config=_with(lambda c: c.update(inference={"overlap": 0.25})))
    assert overlap.count("infer") == 5  # inference reruns (and validation, which uses the same overlap)


REVIEWER_CELL = "results/kervadec2023/synth_wmh/enet2d/mime-none/lr0.005/seed0"


def _readme_commands() -> list[str]:
    """The README's single-cell commands, as a user copies them (from the repository root)."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return [line.strip() for block in re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
            for line in block.splitlines() if line.strip().startswith(".venv/bin/snakemake") and REVIEWER_CELL in line]


def test_the_readmes_single_cell_rerun_retrains_that_cell_only(tiny_run, repo_root):
    """The README's reviewer command, as written, on a cell of this run: the cell's three jobs."""
    import shlex

    (command,) = _readme_commands()
    cell = "results/tiny2d/synth_acdc/unet2d/mime-none/lr0.01/seed0"
    args = shlex.split(command.replace(REVIEWER_CELL, cell))[1:]  # without the interpreter prefix
    assert "--forcerun=train" in args
    assert sorted(_planned(tiny_run, repo_root, *args)) == ["evaluate", "infer", "train"]
    # the target first, then the flag without '=': the other way a user types it
    assert sorted(_planned(tiny_run, repo_root, f"{cell}/metrics.csv", "--forcerun", "train")) == [
        "evaluate", "infer", "train"]


def test_a_failed_retraining_leaves_no_metrics_without_a_model(tiny_run, repo_root):
    """A forced retraining that dies after it started (here: stopped after its first checkpoint)
    has removed the cell's old model, predictions and metrics at its fresh start, so the next run
    retrains the cell instead of keeping metrics whose model is gone."""
    from dicebench.training.trainer import train_cell

    cell = tiny_run / "results/tiny2d/synth_acdc/unet2d/dice-none/lr0.01/seed0"
    backup = tiny_run.parent / "cell_backup"
    shutil.copytree(cell, backup, copy_function=shutil.copy2)
    try:
        settings = json.loads((cell / "cell.json").read_text())["settings"]
        settings["recipe"]["checkpoint_interval"] = 1
        data = tiny_run / "results/preprocessed/synth_acdc/mri/data"
        assert train_cell(data, None, settings, cell, stop_after=1) == {}
        assert not any((cell / name).exists() for name in ("model.pt", "cell.json", "metrics.csv", "predictions"))
        assert sorted(_planned(tiny_run, repo_root, f"{cell.relative_to(tiny_run)}/metrics.csv")) == [
            "evaluate", "infer", "train"]
    finally:
        shutil.rmtree(cell)
        shutil.copytree(backup, cell, copy_function=shutil.copy2)
        shutil.rmtree(backup)
    assert _planned(tiny_run, repo_root) == []


def test_a_users_config_runs_alone(tiny_run, repo_root):
    """The run's config file holds two experiments: the DAG has their cells and nothing of the
    default run's grid (config/config.yaml is read only without a config file)."""
    proc = _snakemake(tiny_run, repo_root, "--dry-run", "--forcerun=all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "kervadec2023" not in proc.stdout and "synth_wmh" not in proc.stdout


def test_paper_opens_with_the_claims_summary(tiny_run):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    text = subprocess.run(["pdftotext", "-l", "1", str(tiny_run / "paper" / "paper.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "Summary" in text and "our verdicts" in text and "insufficient evidence" in text
    compute = pd.read_csv(tiny_run / "figures" / "tables" / "compute.csv")
    assert len(compute) == 5 and (compute["train_cpu_s"] > 0).all() and (compute["infer_cpu_s"] > 0).all()
