"""The config schema and the grid: a bad key or value stops with a message naming it."""

import copy

import pytest
import yaml

from dicebench import grid
from dicebench.errors import DicebenchError


@pytest.fixture(scope="module")
def default_config(repo_root):
    return yaml.safe_load((repo_root / "config" / "config.yaml").read_text())


def _valid(cfg):
    return grid.validate_config(copy.deepcopy(cfg))


def test_default_config_is_valid_and_fills_defaults(default_config):
    cfg = _valid(default_config)
    assert cfg["inference"]["overlap"] == 0.5
    assert cfg["experiments"]["kervadec2023"]["recipe"]["val_fraction"] == 0.2
    assert grid.main_experiments(cfg) == ["liu2018", "kervadec2023", "shen2018", "sudre2017"]
    assert set(cfg["experiments"]) - set(grid.main_experiments(cfg)) == set(grid.sweep_members(cfg, "kervadec2023")[1:])


def test_subpatch_section_generates_the_sweep(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["kervadec2023"]["subpatch"] = {"datasets": ["synth_acdc"], "patch_sizes": [[16, 16], [64, 64]],
                                                      "gdl_empty_policies": ["epsilon", "zero"]}
    cfg = _valid(cfg)
    exps = cfg["experiments"]
    # 64x64 is the configured patch: only its zero-policy GDL is new; epsilon (the authors' code's)
    # is the experiment's own policy
    assert grid.sweep_members(cfg, "kervadec2023") == [
        "kervadec2023", "kervadec2023_p64x64_gdl_zero", "kervadec2023_p16x16", "kervadec2023_p16x16_gdl_zero"]
    p16 = exps["kervadec2023_p16x16"]
    assert p16["recipe"]["patch_size"] == [16, 16] and p16["datasets"] == ["synth_acdc"]
    assert p16["losses"] == ["dice", "vnet", "gdl", "mime"] and "subpatch" not in p16
    assert p16["recipe"]["iterations"] == exps["kervadec2023"]["recipe"]["iterations"]
    zero = exps["kervadec2023_p16x16_gdl_zero"]
    # the policy changes; the experiment's other GDL parameters (the authors' smoothing) stay
    gdl = {**exps["kervadec2023"]["loss_params"]["gdl"], "empty_policy": "zero"}
    assert zero["losses"] == ["gdl"] and zero["loss_params"] == {"gdl": gdl}
    cell = next(c for c in grid.all_cells(cfg) if c.experiment == "kervadec2023_p16x16_gdl_zero")
    settings = grid.cell_settings(cfg, cell)
    assert settings["sweep_of"] == "kervadec2023" and settings["loss_params"] == gdl
    assert "sweep_of" not in grid.cell_settings(cfg, next(c for c in grid.all_cells(cfg)
                                                          if c.experiment == "kervadec2023"))
    # validating again regenerates the same experiments (the Snakefile and the tests both validate)
    again = grid.validate_config(copy.deepcopy(cfg))
    assert again["experiments"] == cfg["experiments"]


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"patch_sizes": [[20, 20]]}, r"subpatch.patch_sizes \[20, 20\]: .*divisible by 8"),
        ({"patch_sizes": [[16, 16, 16]]}, "subpatch.patch_sizes .*2D"),
        ({"patch_sizes": [[16, 16]], "datasets": ["synth_wmh_rare"]}, "subpatch.datasets names 'synth_wmh_rare'"),
        ({"patch_sizes": []}, "patch_sizes"),
        ({"patch_sizes": [[16, 16]], "gdl_empty_policies": ["nan"]}, "nan"),
    ],
)
def test_bad_subpatch_section_names_the_problem(default_config, sweep, message):
    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["kervadec2023"]["subpatch"] = sweep
    with pytest.raises(DicebenchError, match=message):
        grid.validate_config(cfg)


def test_gdl_policies_need_gdl_and_generated_names_must_be_free(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["shen2018"]["subpatch"] = {"patch_sizes": [[16, 16, 16]], "gdl_empty_policies": ["zero"]}
    with pytest.raises(DicebenchError, match="needs 'gdl'"):
        grid.validate_config(cfg)
    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["kervadec2023_p16x16"] = copy.deepcopy(cfg["experiments"]["kervadec2023"])
    del cfg["experiments"]["kervadec2023_p16x16"]["subpatch"]
    with pytest.raises(DicebenchError, match="generates 'kervadec2023_p16x16', which is already an experiment"):
        grid.validate_config(cfg)


def test_default_grid_runs_every_loss(default_config):
    cells = grid.all_cells(_valid(default_config))
    assert {c.loss for c in cells} == {"dice", "vnet", "gdl", "mime", "weighted_dice", "ce", "wce",
                                       "sensitivity_specificity", "dice_ce"}
    shen = [c for c in cells if c.experiment == "shen2018"]
    assert {(c.weighting, c.lr) for c in shen} == {(w, lr) for w in ("uniform", "simple", "square")
                                                   for lr in ("0.001", "0.01")}
    # One cell, one directory.
    assert len({c.path for c in cells}) == len(cells)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["experiments"]["liu2018"].update(lrs=[-1]), "lrs"),
        (lambda c: c["experiments"]["liu2018"].update(losses=["dicee"]), "dicee"),
        (lambda c: c["experiments"]["liu2018"].update(unknown_key=1), "unknown_key"),
        (lambda c: c["experiments"]["liu2018"]["recipe"].update(optimizer="rmsprop"), "rmsprop"),
        (lambda c: c["experiments"]["liu2018"].update(datasets=["nope"]), "nope"),
        (lambda c: c["experiments"]["liu2018"].update(preprocessing="nope"), "preprocessing"),
        (lambda c: c["experiments"]["liu2018"].update(weightings=["square"]), "no cell"),
        (lambda c: c["experiments"]["liu2018"]["recipe"].update(patch_size=[32, 32]), "3D"),
        (lambda c: c["experiments"]["sudre2017"]["recipe"].update(patch_size=[16, 16]), "one value per channel"),
        (lambda c: c["datasets"]["synth_acdc"].update(n_train=1), "n_train"),
    ],
)
def test_bad_config_names_the_problem(default_config, mutate, message):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(DicebenchError, match=message):
        grid.validate_config(cfg)


def test_lr_formatting_round_trips():
    for lr in (0.001, 0.01, 0.0005, 1e-5, 5e-4):
        assert float(grid.format_lr(lr)) == lr
    assert grid.format_lr(0.001) == "0.001" and grid.format_lr(1e-5) == "1e-05"


def test_cell_settings_are_resolved(default_config):
    cfg = _valid(default_config)
    cell = next(c for c in grid.all_cells(cfg) if c.experiment == "liu2018")
    s = grid.cell_settings(cfg, cell)
    assert s["recipe"]["optimizer"] == "sgd" and s["recipe"]["optimizer_params"]["momentum"] == 0.99
    assert s["network_params"] == {"dims": 3, "width": 6} and s["loss"] == "vnet"
    assert cell.path == "liu2018/synth_prostate/rdd/vnet-none/lr0.01/seed0"


def test_patch_must_be_divisible_by_the_network(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["shen2018"]["recipe"]["patch_size"] = [30, 32, 32]
    with pytest.raises(DicebenchError, match="divisible"):
        grid.validate_config(cfg)


@pytest.mark.workflow  # a Snakemake dry run
def test_real_dataset_goes_through_download_and_convert(default_config, repo_root, tmp_path):
    """A `source: real` dataset is built by the download and convert rules, not synthesized."""
    import os
    import subprocess
    import sys

    cfg = copy.deepcopy(default_config)
    cfg["datasets"]["msd"] = {"source": "real", "registry_name": "msd_prostate"}
    cfg["experiments"] = {"liu2018": cfg["experiments"]["liu2018"]}
    cfg["experiments"]["liu2018"]["datasets"] = ["msd"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(repo_root / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(tmp_path / "c.yaml"), "-n",
                           "--cores", "1", "results/liu2018/table.csv"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = proc.stdout
    assert "rule download:" in jobs and "rule convert:" in jobs and "rule synthesize:" not in jobs


def test_subpatch_too_small_for_the_normalisation_is_refused_before_training(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["sudre2017"]["subpatch"] = {"patch_sizes": [[16, 16]]}  # unet2d, instance norm: 1x1
    with pytest.raises(DicebenchError, match=r"sudre2017.subpatch.patch_sizes \[16, 16\]: .*one value per channel"):
        grid.validate_config(cfg)
    cfg["experiments"]["sudre2017"]["subpatch"] = {"patch_sizes": [[16, 32]]}
    assert "sudre2017_p16x32" in grid.validate_config(cfg)["experiments"]


def test_evidence_config_decides_the_claims_by_design(repo_root):
    """config/evidence.yaml validates alone and has what `make evidence` promises: at least 3
    seeds per cell and 20 test cases per dataset, the mechanisms' knobs, its own output tree."""
    config = yaml.safe_load((repo_root / "config" / "evidence.yaml").read_text())
    grid.validate_config(config)
    assert all(len(e["seeds"]) >= 3 for e in config["experiments"].values())
    assert all(d["n_test"] >= 20 for d in config["datasets"].values())
    assert config["results"] != "results" and config["paper_pdf"] != "paper/paper.pdf"
    assert config["datasets"]["synth_wmh"]["knobs"]["absent_fraction"]["other_pathology"] < 0.7
    assert {"kervadec2023_p16x16"} <= set(config["experiments"])  # the sub-patching sweep


@pytest.mark.workflow  # a Snakemake dry run
def test_evidence_config_builds_its_dag(repo_root, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(repo_root / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(repo_root / "config" / "evidence.yaml"),
                           "--cores", "2", "--dry-run"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = proc.stdout.split("Job stats:")[-1]
    assert "train" in jobs and "claims" in jobs and "paper" in jobs


def test_utilisation_sums_the_jobs_benchmarks_since_the_start(tmp_path):
    import os

    from dicebench.reporting.utilisation import job_cpu_seconds

    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for name, cpu, t in (("a", 30.0, 1000), ("b", 12.5, 2000), ("c", 99.0, 10)):
        path = tmp_path / "train" / f"{name}.tsv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(header + f"40\t0:00:40\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")
        os.utime(path, (t, t))
    assert job_cpu_seconds(tmp_path, since=500) == (42.5, 2)  # c ran before this run started
