"""dicebench.cluster: each rule's resources (GPU request styles, the cell's one Slurm job, CPUs
that match the threads used), the jobs' PATH, the DAG build without the jobs' packages, and the
`sbatch` options each rule gets (`dicebench sbatch-preview`, run in the driver environment)."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from dicebench import cluster

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def driver_python() -> Path:
    """The driver environment's interpreter (`make driver`); CI fails without it, others skip."""
    path = Path(os.environ.get("DICEBENCH_DRIVER_PYTHON", ROOT / ".venv-driver" / "bin" / "python"))
    if not path.exists():
        message = f"no driver environment at {path} (make driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _config(*overlays: dict) -> dict:
    """The default config with `overlays` merged over it as Snakemake merges --configfile."""
    config = copy.deepcopy(DEFAULT)
    for overlay in overlays:
        update_config(config, copy.deepcopy(overlay))
    return config


def _res(*overlays: dict) -> dict[str, dict]:
    config = _config(*overlays)
    return {rule: cluster.rule_resources(config, rule) for rule in cluster.RULES}


# ---- GPU request styles ----

def test_default_asks_one_gpu_for_train_and_infer_only():
    res = _res()
    assert res["train"]["gpu"] == 1 and res["infer"]["gpu"] == 1
    assert all("gpu" not in r and "gres" not in r for rule, r in res.items() if rule not in ("train", "infer"))


def test_gres_replaces_the_defaults_gpu():
    """The documented site file: gres for train; config.yaml's `gpu: 1` stays beside it after
    Snakemake's recursive merge and must not reach sbatch with it."""
    res = _res({"resources": {"train": {"gres": "gpu:a100:1"}}})
    assert res["train"]["gres"] == "gpu:a100:1"
    assert "gpu" not in res["train"] and "gpu_model" not in res["train"]
    # infer (gpu: 1 from the defaults) shares the cell's job: it asks the way train does
    assert res["infer"]["gres"] == "gpu:a100:1" and "gpu" not in res["infer"]
    assert "gres" not in res["evaluate"] and "gpu" not in res["evaluate"]


def test_gpu_and_model():
    res = _res({"resources": {"train": {"gpu_model": "a100"}, "infer": {"gpu_model": "h100"}}})
    assert (res["train"]["gpu"], res["train"]["gpu_model"]) == (1, "a100")
    assert (res["infer"]["gpu"], res["infer"]["gpu_model"]) == (1, "a100")  # the cell's job runs on train's GPU
    assert "gres" not in res["train"]


def test_back_from_gres_to_gpu_with_null():
    """A config merged over one that sets gres goes back to gpu + gpu_model with `gres: null`."""
    res = _res({"resources": {"train": {"gres": "gpu:1"}}},
               {"resources": {"train": {"gres": None, "gpu_model": "v100"}}})
    assert (res["train"]["gpu"], res["train"]["gpu_model"]) == (1, "v100") and "gres" not in res["train"]


@pytest.mark.parametrize("off", [0, None])
def test_gpu_zero_or_null_asks_for_none(off):
    res = _res({"resources": {"train": {"gpu": off, "gpu_model": "a100"}, "infer": {"gpu": off}}})
    for rule in ("train", "infer"):
        assert not {"gpu", "gpu_model", "gres"} & set(res[rule]), res[rule]


def test_a_gres_that_is_no_gpu_keeps_the_gpu():
    res = _res({"resources": {"train": {"gres": "tmpdisk:100"}}})
    assert res["train"]["gres"] == "tmpdisk:100" and res["train"]["gpu"] == 1
    assert cluster.gres_names_gpu("gpu:2") and cluster.gres_names_gpu("tmp:1,gpu:a100:1")
    assert not cluster.gres_names_gpu("gpudisk:1")


def test_schema_takes_null_and_refuses_a_malformed_gres():
    from dicebench import grid
    from dicebench.errors import DicebenchError

    config = grid.validate_config(_config({"resources": {"train": {"gpu": None, "gres": "gpu:a100:2"}}}))
    assert cluster.rule_resources(config, "train")["gres"] == "gpu:a100:2"
    for bad in ("gpu a100", "'gpu:1'", "gpu:1:2:3"):
        with pytest.raises(DicebenchError, match="gres"):
            grid.validate_config(_config({"resources": {"train": {"gres": bad}}}))


# ---- one Slurm job per cell ----

def test_the_cell_runs_where_train_runs():
    site = {"resources": {"default": {"partition": "cpu", "account": "proj", "qos": "normal"},
                          "train": {"partition": "gpu", "constraint": "a100"},
                          "evaluate": {"partition": "short"}}}
    res = _res(site)
    for rule in cluster.CELL_RULES:
        assert res[rule]["slurm_partition"] == "gpu", rule
        assert res[rule]["constraint"] == "a100" and res[rule]["slurm_account"] == "proj", rule
    assert res["preprocess"]["slurm_partition"] == "cpu" and "constraint" not in res["preprocess"]
    job = cluster.cell_job_resources(_config(site))
    assert job["runtime"] == 1440 + 240 + 120  # run one after the other
    assert job["mem_mb"] == 32000 and job["cpus_per_task"] == 5 and job["gpu"] == 1
    assert job["slurm_partition"] == "gpu"


# ---- CPUs that match the threads used ----

def test_cpus_match_the_threads_used():
    res = _res()
    assert res["train"]["cpus_per_task"] == 1 + cluster.CUDA_LOADER_THREADS  # torch + batch loaders on a GPU
    assert res["infer"]["cpus_per_task"] == 1
    assert res["preprocess"]["cpus_per_task"] == 2 and res["evaluate"]["cpus_per_task"] == 1
    res = _res({"compute_threads": 3, "resources": {"train": {"gpu": 0}}})
    assert res["train"]["cpus_per_task"] == 3 and res["infer"]["cpus_per_task"] == 3  # CPU training: no loaders
    config = _config({"experiments": {"liu2018": {"recipe": {"data_workers": 7}}}})
    assert cluster.rule_resources(config, "train")["cpus_per_task"] == 1 + 7
    # the rule's own cpus_per_task wins; resources.default's does not reach train and infer
    res = _res({"resources": {"default": {"cpus_per_task": 8}, "train": {"cpus_per_task": 2}}})
    assert res["train"]["cpus_per_task"] == 2 and res["infer"]["cpus_per_task"] == 1
    assert res["synthesize"]["cpus_per_task"] == 8


def test_threads():
    config = _config({"compute_threads": 2})
    assert cluster.rule_threads(config, "train") == 2 and cluster.rule_threads(config, "infer") == 2
    assert cluster.rule_threads(config, "preprocess") == 2 and cluster.rule_threads(config, "aggregate") == 1


def test_loader_threads_are_the_trainers(monkeypatch):
    torch = pytest.importorskip("torch")
    from dicebench.training import trainer

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert trainer._loader_workers({}, torch.device("cuda")) == cluster.CUDA_LOADER_THREADS
    assert trainer._loader_workers({}, torch.device("cpu")) == 0


# ---- the workflow's directives agree with the module ----

def _smk_rules() -> dict[str, str]:
    rules = {}
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            rules[block.split(":", 1)[0]] = re.split(r"^\S", block.split("\n", 1)[1], flags=re.M)[0]
    return rules


def test_rules_groups_and_localrules_agree_with_the_workflow():
    rules = _smk_rules()
    assert set(rules) == set(cluster.RULES)
    grouped = {name for name, body in rules.items() if re.search(r"^    group:\s*\n\s+\"cell\"", body, re.M)}
    assert grouped == set(cluster.CELL_RULES) and cluster.CELL_GROUP == "cell"
    local = re.search(r"^localrules:\s*\n((?:    \w+,?\n)+)", (ROOT / "Snakefile").read_text(), re.M)
    assert local and set(re.findall(r"\w+", local.group(1))) == set(cluster.LOCAL_RULES)
    assert not set(cluster.LOCAL_RULES) & set(cluster.CELL_RULES)


# ---- where the jobs find their software ----

def test_job_path_prefers_the_projects_venv(tmp_path, monkeypatch):
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    driver = "/opt/driver/bin/python"
    environ = {"PATH": "/usr/bin:/bin"}
    monkeypatch.setattr(cluster.importlib.util, "find_spec", lambda name: None)  # a driver: no torch
    env = cluster.job_environment(tmp_path, driver, environ)
    assert env["PATH"] == "/usr/bin:/bin" and env["DICEBENCH_ROOT"] == str(tmp_path)
    (venv_bin / "dicebench").touch()
    assert cluster.job_environment(tmp_path, driver, environ)["PATH"] == f"{venv_bin}:/usr/bin:/bin"
    monkeypatch.setattr(cluster.importlib.util, "find_spec", lambda name: object())  # runs the jobs too
    assert cluster.job_environment(tmp_path, driver, environ)["PATH"] == f"{venv_bin}:/opt/driver/bin:/usr/bin:/bin"
    assert cluster.job_environment(tmp_path / "x", driver, environ)["PATH"] == "/opt/driver/bin:/usr/bin:/bin"


def test_validating_the_config_imports_no_job_package():
    code = ("import sys, yaml; from dicebench import cluster, grid; "
            "c = grid.validate_config(yaml.safe_load(open('config/config.yaml'))); "
            "[cluster.rule_resources(c, r) for r in cluster.RULES]; "
            "print(sorted(m for m in ('torch', 'monai', 'ants', 'SimpleITK', 'nibabel', 'scipy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_driver_builds_the_dag(tmp_path):
    """The driver environment (no torch, no antspyx, no SimpleITK) builds the default DAG from
    the checkout without the package's dependencies installed."""
    python = driver_python()
    check = subprocess.run([str(python), "-c", "import importlib.util as u; "
                            "print([m for m in ('torch', 'ants', 'SimpleITK') if u.find_spec(m)])"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "[]", "the driver environment holds a job package"
    proc = subprocess.run([str(python), "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(ROOT), "--dry-run", "--forceall", "--cores", "1", "--quiet", "rules"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^train\s+\d+", proc.stdout, re.M), proc.stdout[-2000:]


# ---- the preview: sbatch options per rule, from the Slurm plugin (driver environment) ----

SITE = {
    "resources": {"default": {"partition": "cpu", "account": "proj", "qos": "normal"},
                  "preprocess": {"constraint": "avx2"},
                  "train": {"partition": "gpu", "runtime": 720}},
}
GPU_STYLES = {
    "gpu": ({"resources": {"train": {"gpu_model": "a100"}}}, "--gpus=a100:1"),
    "gres": ({"resources": {"train": {"gres": "gpu:a100:1"}}}, "--gres=gpu:a100:1"),
}


def _preview(tmp_path: Path, *overlays: dict) -> dict[str, str]:
    files = []
    for i, overlay in enumerate(overlays):
        files.append(tmp_path / f"site{i}.yaml")
        files[-1].write_text(yaml.safe_dump(overlay))
    dicebench = driver_python().parent / "dicebench"
    proc = subprocess.run([str(dicebench), "sbatch-preview", "--configfile", "config/paper.yaml", *map(str, files)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("  ", 1) for line in proc.stdout.splitlines() if line and not line.startswith("#")]
    return {rule.strip(): options.strip() for rule, options in rows}


@pytest.mark.parametrize("style", GPU_STYLES)
def test_preview_of_the_published_grid(tmp_path, style):
    """config/paper.yaml with a site file: partition, account, qos, constraint, CPUs, memory,
    run time and the GPU request each rule's sbatch gets, in both GPU styles."""
    overlay, gpu_option = GPU_STYLES[style]
    rows = _preview(tmp_path, SITE, overlay)
    cpu = "-A proj -p cpu -t {t} --qos=normal --mem {m} --requeue --ntasks=1 --cpus-per-task={c}"
    assert rows == {
        "synthesize": cpu.format(t=60, m=4000, c=1),
        "convert": cpu.format(t=60, m=4000, c=1),
        "preprocess": cpu.format(t=180, m=16000, c=2).replace("--qos=normal", "-C avx2 --qos=normal"),
        "class_stats": cpu.format(t=60, m=4000, c=1),
        # train (720) + infer (240) + evaluate (120) in one job on train's partition and GPU;
        # 1 torch thread + 4 batch loaders
        "train + infer + evaluate": f"-A proj -p gpu -t 1080 --qos=normal --mem 32000 --requeue --cpus-per-task=5 "
                                    f"{gpu_option}",
    }


def test_preview_of_the_default_config(tmp_path):
    rows = _preview(tmp_path, {"experiments": {"kervadec2023": {"subpatch": {"datasets": ["acdc"]}}}})
    assert rows["train + infer + evaluate"] == "-t 1800 --mem 32000 --requeue --cpus-per-task=5 --gpus=1"
    assert set(rows) == {"synthesize", "convert", "preprocess", "class_stats", "train + infer + evaluate"}


def test_preview_refuses_a_bad_gres(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"resources": {"train": {"extra": "--gres=gpu:1"}}}))
    proc = subprocess.run([str(driver_python().parent / "dicebench"), "sbatch-preview", "--configfile",
                           "config/config.yaml", str(tmp_path / "bad.yaml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("dicebench sbatch-preview: error: resources:"), proc.stderr
