"""The tiny end-to-end config through `--profile slurm` on a real Slurm cluster, against a local run.

Needs a cluster (CI: .ci/slurm-up.sh, a single node on localhost); skipped where `sinfo` is absent
or fails. Checks that every job went through Slurm (one log per job named by its Slurm job id, each
id known to squeue as COMPLETED) and that the results equal those of a local run.
"""

from __future__ import annotations

import copy
import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_workflow_e2e import TINY

pytestmark = pytest.mark.slow

# Where .ci/slurm-up.sh puts its `sacct` stand-in for a cluster without slurmdbd.
SHIM = Path(os.environ.get("DICEBENCH_SLURM_STATE", "/var/lib/dicebench-slurm")) / "bin"
TARGETS = [f"results/{exp}/table.csv" for exp in TINY["experiments"]]
# Small requests that fit the CI node; train and infer take the (fake) GPU, as on a real cluster.
RESOURCES = {"default": {"runtime": 10, "mem_mb": 500, "cpus_per_task": 1},
             "train": {"gpu": 1}, "infer": {"gpu": 1}}


def _env() -> dict:
    path = [str(Path(sys.executable).parent)]
    if (SHIM / "sacct").exists():
        path.append(str(SHIM))
    # The executor reads $USER (to guess an account); CI shells may not set it.
    return dict(os.environ, PATH=os.pathsep.join(path + [os.environ["PATH"]]),
                USER=os.environ.get("USER") or getpass.getuser())


def _cluster_up() -> str | None:
    """None when a usable cluster answers, else the reason to skip."""
    if shutil.which("sinfo") is None:
        return "no Slurm here (sinfo not found); CI starts one with .ci/slurm-up.sh"
    proc = subprocess.run(["sinfo", "--noheader", "-o", "%T"], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0 or not {"idle", "mixed", "allocated"} & set(proc.stdout.split()):
        return f"no Slurm node is up (sinfo: {(proc.stderr or proc.stdout).strip()[:200]})"
    sacct = subprocess.run(["sacct", "-X", "--noheader"], capture_output=True, text=True, env=_env(), timeout=20)
    if sacct.returncode != 0:
        return f"sacct fails ({sacct.stderr.strip()[:200]}) and no stand-in at {SHIM}"
    return None


def _run(work: Path, repo: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config" / "config.yaml"), *args, *TARGETS]
    return subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=900)


def _workdir(root: Path) -> Path:
    root.mkdir()
    (root / "config").mkdir()
    config = copy.deepcopy(TINY)
    config["resources"] = RESOURCES
    # unet2d needs more than one value per channel at its bottleneck (instance normalisation).
    config["experiments"]["tiny2d"]["recipe"]["patch_size"] = [32, 32]
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory, repo_root):
    reason = _cluster_up()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("slurm")
    local, slurm = _workdir(base / "local"), _workdir(base / "slurm")
    proc = _run(local, repo_root, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    # The profile as users run it, with the status checks hurried for a test.
    proc = _run(slurm, repo_root, "--profile", str(repo_root / "profiles" / "slurm"), "--jobs", "4",
                "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
                "--latency-wait", "5")
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in (slurm / "results" / "logs").rglob("*.log"))
        pytest.fail(f"snakemake --profile slurm failed:\n{proc.stderr[-4000:]}\n{logs[-6000:]}")
    return local, slurm, proc.stderr


def test_every_job_went_through_slurm(runs):
    _, slurm, stderr = runs
    logs = sorted((slurm / "results" / "logs" / "slurm").rglob("*.log"))
    job_ids = {p.stem for p in logs}
    assert logs and all(i.isdigit() for i in job_ids), logs
    rules = {p.relative_to(slurm / "results" / "logs" / "slurm").parts[0].removeprefix("rule_") for p in logs}
    assert {"synthesize", "preprocess", "class_stats", "train", "infer", "evaluate", "aggregate"} <= rules
    # One Slurm job per Snakemake job, and Slurm itself knows each one as completed.
    n_jobs = int(stderr.split("Job stats:")[1].split("total")[1].split()[0])
    assert len(job_ids) == n_jobs
    states = subprocess.run(["squeue", "--noheader", "--states=all", "-o", "%i %T", "-j", ",".join(job_ids)],
                            capture_output=True, text=True, check=True).stdout.split("\n")
    seen = dict(line.split() for line in states if line.strip())
    assert set(seen) == job_ids and set(seen.values()) == {"COMPLETED"}, seen
    # The GPU request reached Slurm: training jobs ran with the node's (fake) GPU allocated.
    train_id = next(p.stem for p in logs if "rule_train" in p.parts)
    show = subprocess.run(["scontrol", "show", "job", train_id], capture_output=True, text=True, check=True).stdout
    assert "gpu" in show


def test_slurm_outputs_equal_a_local_run(runs):
    local, slurm, _ = runs
    for target in TARGETS:
        a, b = pd.read_csv(local / target), pd.read_csv(slurm / target)
        pd.testing.assert_frame_equal(a, b)
    cells = sorted(p.relative_to(local) for p in (local / "results").glob("tiny*/*/*/*/lr*/seed*/metrics.csv"))
    assert len(cells) == 3
    for rel in cells:
        pd.testing.assert_frame_equal(pd.read_csv(local / rel), pd.read_csv(slurm / rel))
