"""The tiny end-to-end config through `--profile slurm` on a real Slurm cluster, against a local run.

Needs a cluster (CI: .ci/slurm-up.sh, a single node on localhost, no accounting) and the driver
environment (`make driver`): skipped without them, except under CI=true, where a missing cluster
or driver fails the test. Submits from the driver with the profile as it is (status from squeue,
no sacct), with a site file that asks for the GPU by gres over a config that sets `gpu: 1`. Checks
that train, infer and evaluate of a cell ran as one Slurm job, that the aggregation ran locally,
that every Slurm job completed with the allocation `dicebench sbatch-preview` announced, and that
the results equal those of a local run.
"""

from __future__ import annotations

import copy
import getpass
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_cluster import driver_python
from test_workflow_e2e import TINY

pytestmark = pytest.mark.slow

TARGETS = [f"results/{exp}/table.csv" for exp in TINY["experiments"]]
# Small requests that fit the CI node; train and infer take the (fake) GPU, as on a real cluster.
RESOURCES = {"default": {"runtime": 10, "mem_mb": 500, "cpus_per_task": 1},
             "train": {"gpu": 1, "cpus_per_task": 1}, "infer": {"gpu": 1}}
# A site file over it, as the README documents: the GPU by gres (the plugin refuses gres beside gpu).
SITE = {"resources": {"train": {"gres": "gpu:1"}}}
CELLS = 3


def _env() -> dict:
    # The jobs find `dicebench` in the checkout's .venv (CI) or beside this interpreter (the test
    # runner's venv); the executor reads $USER, which CI shells may not set.
    return dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
                USER=os.environ.get("USER") or getpass.getuser())


def _cluster_up() -> str | None:
    """None when a usable cluster answers, else the reason it cannot be used."""
    if shutil.which("sinfo") is None:
        return "no Slurm here (sinfo not found); CI starts one with .ci/slurm-up.sh"
    proc = subprocess.run(["sinfo", "--noheader", "-o", "%T"], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0 or not {"idle", "mixed", "allocated"} & set(proc.stdout.split()):
        return f"no Slurm node is up (sinfo: {(proc.stderr or proc.stdout).strip()[:200]})"
    return None


def _snakemake(python: Path, work: Path, repo: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(python), "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config" / "config.yaml"), *args, *TARGETS]
    return subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=1500)


def _workdir(root: Path) -> Path:
    root.mkdir()
    (root / "config").mkdir()
    config = copy.deepcopy(TINY)
    config["resources"] = RESOURCES
    # unet2d needs more than one value per channel at its bottleneck (instance normalisation).
    config["experiments"]["tiny2d"]["recipe"]["patch_size"] = [32, 32]
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    (root / "config" / "site.yaml").write_text(yaml.safe_dump(SITE))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory, repo_root):
    reason = _cluster_up()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    driver = driver_python()
    base = tmp_path_factory.mktemp("slurm")
    local, slurm = _workdir(base / "local"), _workdir(base / "slurm")
    start = time.monotonic()
    proc = _snakemake(Path(sys.executable), local, repo_root, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    local_s, start = time.monotonic() - start, time.monotonic()
    # The profile as users run it, from the driver, with the status checks hurried for a test.
    proc = _snakemake(driver, slurm, repo_root, str(slurm / "config" / "site.yaml"),  # a second config file
                      "--profile", str(repo_root / "profiles" / "slurm"), "--jobs", "4",
                      "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
                      "--latency-wait", "5")
    # shown with pytest -s (or -rP): the README's before/after figure of the Slurm run
    print(f"\nlocal run: {local_s:.0f} s; --profile slurm run: {time.monotonic() - start:.0f} s")
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in (slurm / "results" / "logs").rglob("*.log"))
        pytest.fail(f"snakemake --profile slurm failed:\n{proc.stderr[-4000:]}\n{logs[-6000:]}")
    preview = subprocess.run([str(driver.parent / "dicebench"), "sbatch-preview", "--directory", str(slurm),
                              "--configfile", str(slurm / "config" / "config.yaml"), str(slurm / "config" / "site.yaml")],
                             capture_output=True, text=True, env=_env(), timeout=120)
    assert preview.returncode == 0, preview.stderr
    rows = dict(line.split("  ", 1) for line in preview.stdout.splitlines() if line and not line.startswith("#"))
    return local, slurm, proc.stderr, {k.strip(): v.strip() for k, v in rows.items()}


def _slurm_logs(slurm: Path) -> dict[str, list[Path]]:
    """Slurm logs by folder: rule_<rule> for a job of one rule, group_cell_... for a cell's job."""
    logs: dict[str, list[Path]] = {}
    for p in sorted((slurm / "results" / "logs" / "slurm").rglob("*.log")):
        kind = p.relative_to(slurm / "results" / "logs" / "slurm").parts[0]
        logs.setdefault("group" if kind.startswith("group_") else kind.removeprefix("rule_"), []).append(p)
    return logs


def _scontrol(job_id: str) -> dict[str, str]:
    text = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\S+?)=(\S*)", text))


def test_one_slurm_job_per_cell_and_local_reports(runs):
    _, slurm, stderr, _ = runs
    logs = _slurm_logs(slurm)
    # preprocessing jobs each on their own, train -> infer -> evaluate of a cell in one job,
    # and nothing else submitted: the aggregation is a local rule
    assert set(logs) == {"synthesize", "preprocess", "class_stats", "group"}, sorted(logs)
    assert len(logs["group"]) == CELLS
    for log in logs["group"]:
        text = log.read_text()
        assert all(f"rule {r}:" in text for r in ("train", "infer", "evaluate")), text[-2000:]
    job_ids = {p.stem for ps in logs.values() for p in ps}
    assert all(i.isdigit() for i in job_ids)
    assert len(job_ids) == 2 + 2 + 2 + CELLS  # two datasets; one job per cell
    assert re.search(r"localrule aggregate:", stderr), stderr[-3000:]
    # Slurm itself knows each one as completed (squeue: this cluster has no accounting).
    states = subprocess.run(["squeue", "--noheader", "--states=all", "-o", "%i %T", "-j", ",".join(job_ids)],
                            capture_output=True, text=True, check=True).stdout.split("\n")
    seen = dict(line.split() for line in states if line.strip())
    assert set(seen) == job_ids and set(seen.values()) == {"COMPLETED"}, seen


def _minutes(limit: str) -> int:
    days, _, clock = limit.rpartition("-")
    h, m, s = map(int, clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def test_each_job_got_what_the_preview_announced(runs):
    """The allocation Slurm granted (scontrol) equals the options `dicebench sbatch-preview`
    printed for that rule: run time, memory, CPUs and the GPU, asked by gres as the site file says."""
    _, slurm, _, preview = runs
    logs = _slurm_logs(slurm)
    assert preview["train + infer + evaluate"].endswith("--gres=gpu:1"), preview
    assert "--gpus" not in preview["train + infer + evaluate"]
    for kind, row in [("synthesize", "synthesize"), ("preprocess", "preprocess"), ("group", "train + infer + evaluate")]:
        options = preview[row]
        job = _scontrol(logs[kind][0].stem)
        assert _minutes(job["TimeLimit"]) == int(re.search(r"-t (\d+)", options).group(1)), (kind, job["TimeLimit"])
        assert job["MinMemoryNode"] == re.search(r"--mem (\d+)", options).group(1) + "M", kind
        assert job["CPUs/Task"] == re.search(r"--cpus-per-task=(\d+)", options).group(1), kind
        gpu = "gpu" in job.get("TresPerNode", "") + job.get("TresPerJob", "")
        assert gpu == (kind == "group"), (kind, job.get("TresPerNode"), job.get("TresPerJob"))
    # the cell's job ran the three rules one after the other: their run times add up
    assert _minutes(_scontrol(logs["group"][0].stem)["TimeLimit"]) == 30


def test_slurm_outputs_equal_a_local_run(runs):
    local, slurm, _, _ = runs
    for target in TARGETS:
        a, b = pd.read_csv(local / target), pd.read_csv(slurm / target)
        pd.testing.assert_frame_equal(a, b)
    cells = sorted(p.relative_to(local) for p in (local / "results").glob("tiny*/*/*/*/lr*/seed*/metrics.csv"))
    assert len(cells) == CELLS
    for rel in cells:
        pd.testing.assert_frame_equal(pd.read_csv(local / rel), pd.read_csv(slurm / rel))
