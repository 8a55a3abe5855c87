"""Software environments: one pinned environment per rule family (envs/*.yaml), each holding what
its rules import, consistent with requirements.lock (the local venv: their union, plus Snakemake
and the test tools), and each sufficient for its rules: a venv built from an environment's pip
pins runs its rules' real commands, taken from the workflow's dry run, on a tiny dataset.

There is no conda here: the venvs take the pip part of each environment (what conda's pip step
installs, from the same folder, with the same DICEBENCH_ROOT the Snakefile sets); conda adds
python (and, for reporting, tectonic) only.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from dicebench import cluster

ROOT = Path(__file__).resolve().parents[1]
ENVS = {p.stem: p for p in sorted((ROOT / "envs").glob("*.yaml"))}
FAMILIES = {  # rule family -> its rules (their `conda:` directive names the family's file)
    "data": {"synthesize", "download", "convert", "preprocess", "class_stats"},
    "train": {"train", "infer", "gradient_map"},
    "evaluate": {"evaluate"},
    "report": {"aggregate", "paper_table", "wilcoxon", "claims", "conventions", "compute", "claims_figure", "learning_curves",
               "qualitative", "subpatch", "lr_sensitivity", "paper_methods", "paper", "viewer", "bundle", "bundle_with_weights",
               "verify_cell", "verify_claim"},
}
# The driver's pins that differ from the lock: the Slurm plugin and what it needs (numpy >= 2.4.5,
# which antspyx 0.6.3 refuses).
DRIVER_ONLY = {"numpy", "snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep"}
# In the lock for the tests only (pyproject's extra `test`): pytest, hypothesis, snakefmt and their trees.
TEST_TOOLS = {"pytest", "hypothesis", "snakefmt", "black", "click", "mypy-extensions", "pathspec", "pytokens",
              "shfmt-py", "iniconfig", "pluggy", "pygments", "sortedcontainers", "playwright", "greenlet", "medpy"}
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = PIN.match(line)
            assert m, f"requirements.lock: not an exact pin: {line}"
            pins[_canon(m.group(1))] = m.group(2)
    return pins


def _env(name: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(conda pins, pip pins, other pip lines) of an environment file; fails on an unpinned entry."""
    env = yaml.safe_load(ENVS[name].read_text())
    conda, pip, other = {}, {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                if spec.startswith("-e "):
                    other.append(spec)
                    continue
                m = PIN.match(spec)
                assert m, f"{name}.yaml: pip entry not pinned exactly: {spec}"
                pip[_canon(m.group(1))] = m.group(2)
        else:
            m = re.match(r"^([A-Za-z0-9_.\-]+)=([0-9][A-Za-z0-9_.]*)$", dep)
            assert m, f"{name}.yaml: conda entry not pinned to one version: {dep}"
            conda[m.group(1)] = m.group(2)
    return conda, pip, other


def _extras() -> dict[str, dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == [], "the package itself must need nothing (the driver imports it)"
    out = {}
    for extra, deps in project["optional-dependencies"].items():
        out[extra] = {}
        for dep in deps:
            m = PIN.match(dep)
            assert m, f"pyproject.toml [{extra}]: not an exact pin: {dep}"
            out[extra][_canon(m.group(1))] = m.group(2)
    return out


def test_one_env_per_family_and_a_driver():
    assert set(ENVS) == set(FAMILIES) | {"driver"}


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_is_pinned_and_installs_its_extra(name):
    conda, pip, other = _env(name)
    assert conda["python"] == ".".join(map(str, sys.version_info[:3])), "python differs from the venv's"
    extra = _extras()[name]
    assert {k: pip.get(k) for k in extra} == extra, f"{name}.yaml lacks or mis-pins its extra's packages"
    target = "..[driver]" if name == "driver" else f"${{DICEBENCH_ROOT}}[{name}]"
    assert other == [f"-e {target}"]
    if name == "report":
        assert "tectonic" in conda  # the paper's TeX where the cluster has none


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_job_envs_agree_with_the_lock(name):
    lock = _lock()
    _, pip, _ = _env(name)
    wrong = {k: (v, lock.get(k)) for k, v in pip.items() if lock.get(k) != v}
    assert not wrong, f"{name}.yaml disagrees with requirements.lock (env, lock): {wrong}"


def test_lock_is_the_union_of_the_envs():
    """requirements.lock = the jobs' environments + Snakemake (the driver's, less its Slurm plugin)
    + the test tools; the driver shares every pin but its own."""
    lock = _lock()
    jobs = set().union(*(set(_env(name)[1]) for name in FAMILIES))
    _, driver, _ = _env("driver")
    assert set(lock) == jobs | (set(driver) - DRIVER_ONLY) | TEST_TOOLS
    differ = {k for k in driver if k in lock and lock[k] != driver[k]}
    assert differ == {"numpy"}, differ
    assert not (set(driver) - DRIVER_ONLY) - set(lock)
    assert not {"torch", "antspyx", "simpleitk", "monai", "scipy"} & set(driver)


def test_pyproject_extras_are_pinned_as_in_the_lock():
    lock = _lock()
    for extra, pins in _extras().items():
        ref = _env("driver")[1] if extra == "driver" else lock
        assert {k: ref.get(k) for k in pins} == pins, extra


def _rules():
    """(rule name, its directives, body) for every rule in workflow/rules/*.smk, from the text."""
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            body = re.split(r"^\S", block.split("\n", 1)[1], flags=re.M)[0]
            yield smk, name, set(re.findall(r"^    (\w+):", body, flags=re.M)), body


def test_every_shell_rule_declares_its_familys_env():
    family_of = {rule: fam for fam, rules in FAMILIES.items() for rule in rules}
    rules = list(_rules())
    assert {name for _, name, d, _ in rules if "shell" in d} == set(family_of)
    for smk, name, directives, body in rules:
        if "shell" in directives:
            env = re.search(r"^    conda:\s*\n\s+\"([^\"]+)\"", body, flags=re.M)
            assert env, f"{smk.name}: rule {name} has no conda: directive"
            assert (smk.parent / env.group(1)).resolve() == ENVS[family_of[name]].resolve(), f"rule {name}"
        for needed in ("threads", "resources"):
            assert needed in directives, f"{smk.name}: rule {name} has no {needed}: directive"


def test_paper_builds_with_tectonic_where_there_is_no_latexmk(tmp_path, monkeypatch):
    """envs/report.yaml brings tectonic, not TeX Live: `dicebench paper` must use it."""
    from dicebench.reporting.paper import build_pdf, latex_command

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tectonic"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --keep-logs ] && [ \"$2\" = paper.tex ] && printf '%%PDF-fake' > paper.pdf\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert latex_command(tmp_path / "p.pdf")[0] == "tectonic"
    tex = tmp_path / "paper.tex"
    tex.write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    build_pdf(tex, [], tmp_path / "out" / "paper.pdf", {})
    assert (tmp_path / "out" / "paper.pdf").read_bytes() == b"%PDF-fake"
    fake.unlink()
    with pytest.raises(Exception, match="tectonic"):
        latex_command(tmp_path / "p.pdf")


# ---- each environment suffices for its rules ----

def _venv(name: str) -> Path:
    """A venv with `name`'s pip pins, built as conda's pip step would (in envs/, DICEBENCH_ROOT
    set), once per content of the file (under .envs/)."""
    digest = hashlib.sha256(ENVS[name].read_bytes()).hexdigest()[:12]
    venv = ROOT / ".envs" / f"{name}-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = yaml.safe_load(ENVS[name].read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    requirements = venv / "requirements.txt"
    requirements.write_text("\n".join(pip_lines) + "\n")
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                           str(requirements)], cwd=ROOT / "envs", capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, DICEBENCH_ROOT=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (venv / ".complete").touch()
    return venv


@pytest.fixture(scope="module")
def venvs() -> dict[str, Path]:
    return {name: _venv(name) for name in ENVS}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_is_closed_and_consistent(venvs, name):
    """What pip installed is exactly the pins (the lock is complete), and pip check is clean."""
    python = venvs[name] / "bin" / "python"
    freeze = subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout
    installed = {_canon(n): v.split("+")[0] for n, v in re.findall(r"^([^=\s]+)==(\S+)$", freeze, re.M)}
    _, pins, _ = _env(name)
    # pip and the venv's own setuptools come with the venv, dicebench from the checkout (-e)
    installed = {k: v for k, v in installed.items()
                 if k not in ("pip", "wheel", "dicebench") and (k != "setuptools" or k in pins)}
    assert installed == pins
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


# A tiny 2D experiment with the Dice loss: every rule family's commands but download/convert run.
def _tiny_config() -> dict:
    from test_workflow_e2e import TINY

    config = copy.deepcopy(TINY)
    config["datasets"] = {"synth_acdc": config["datasets"]["synth_acdc"]}
    config["experiments"] = {"tiny2d": config["experiments"]["tiny2d"]}
    exp = config["experiments"]["tiny2d"]
    exp.pop("subpatch")
    exp["losses"] = ["dice"]
    exp["recipe"]["patch_size"] = [32, 32]
    return config


def _jobs(work: Path) -> list[tuple[str, str]]:
    """(rule, shell command) of every job of the tiny DAG, from Snakemake's own dry run, in run order."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(work), "--dry-run", "--forceall", "--printshellcmds", "--cores", "1"],
                          cwd=work, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = re.findall(r"^\s*(?:local)?rule (\w+):\n(?:.*\n)*?Shell command: (.*)$", proc.stdout + proc.stderr, re.M)
    order = {rule: i for i, rule in enumerate(cluster.RULES)}
    return sorted({(r, c) for r, c in jobs}, key=lambda job: order[job[0]])


@pytest.mark.slow
def test_each_family_runs_its_rules_commands(venvs, tmp_path):
    """Every shell job of the tiny DAG runs in its family's venv alone (no other venv on PATH):
    synthesize/preprocess/class_stats (data), train/infer/gradient_map (train), evaluate, and the
    tables, figures, claims and paper (report; the paper with the system's latexmk if any)."""
    (tmp_path / "config").mkdir()
    config = _tiny_config()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = _jobs(tmp_path)
    family_of = {rule: fam for fam, rules in FAMILIES.items() for rule in rules}
    assert {rule for rule, _ in jobs} == {"synthesize", "preprocess", "class_stats", "train", "infer", "evaluate",
                                          "gradient_map", "aggregate", "claims", "conventions", "compute", "claims_figure", "wilcoxon",
                                          "learning_curves", "qualitative", "paper", "paper_methods", "viewer",
                                          "all"}
    system_path = [p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "dicebench").exists()]
    ran = set()
    for rule, command in jobs:
        if command == "None":  # `all`
            continue
        if rule == "paper" and shutil.which("latexmk", path=os.pathsep.join(system_path)) is None:
            continue
        log = re.search(r"> (\S+) 2>&1$", command)
        (tmp_path / log.group(1)).parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = os.pathsep.join([str(venvs[family_of[rule]] / "bin"), *system_path])
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        text = (tmp_path / log.group(1)).read_text()[-3000:]
        assert proc.returncode == 0, f"{rule} in envs/{family_of[rule]}.yaml:\n{command[:300]}\n{text}"
        ran.add(rule)
    assert {"synthesize", "preprocess", "class_stats", "train", "infer", "gradient_map", "evaluate",
            "aggregate", "claims", "qualitative"} <= ran
    # download and convert need a real dataset: their modules (every converter) load in the data venv
    for command in ("download", "convert"):
        proc = subprocess.run([str(venvs["data"] / "bin" / "dicebench"), command, "--help"], capture_output=True,
                              text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "results" / "tiny2d" / "table.csv").exists()
    assert (tmp_path / "figures" / "gradient_map" / "tiny2d" / "synth_acdc.png").exists()
    if "paper" in ran:
        assert (tmp_path / "paper" / "paper.pdf").read_bytes()[:4] == b"%PDF"
