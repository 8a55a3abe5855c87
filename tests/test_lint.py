"""Workflow hygiene, as the Snakemake workflow catalog asks: `snakemake --lint` passes and
`snakefmt --check` finds nothing to reformat (what `make lint` runs; CI runs them here, within
`make test`), and every job of the default DAG has a benchmark file and resources."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _snakemake(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "snakemake", "--configfile", "config/config.yaml", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def lints() -> dict:
    """Findings of `snakemake --lint` as 'where: title' lines (its text output: `--lint json`
    prints text in Snakemake 9.27)."""
    proc = _snakemake("--lint")
    where, findings = None, []
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("Lints for "):
            where = line[len("Lints for "):].rstrip(":")
        elif re.match(r"^    \* ", line):
            findings.append(f"{where}: {line.strip()[2:].rstrip(':')}")
    return {"rc": proc.returncode, "findings": findings, "text": proc.stdout + proc.stderr}


def _findings(lints: dict) -> list[str]:
    return lints["findings"]


def test_snakemake_lint_passes(lints):
    assert _findings(lints) == [], "\n".join(_findings(lints))
    assert lints["rc"] == 0, lints["text"][-2000:]


def test_no_rule_lacks_log_or_conda(lints):
    """The part of the lint this project's rules must never regress on, rule by rule."""
    bad = [f for f in _findings(lints)
           if any(k in f for k in ("No log directive", "Specify a conda environment"))]
    assert bad == [], "\n".join(bad)


def test_every_job_has_a_benchmark_and_resources():
    """From the dry-run DAG of the default config: every job (rule all aside) writes a benchmark
    file and carries the config's runtime and memory."""
    proc = _snakemake("--dry-run", "--forceall", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    jobs = [b for b in text.split("\nrule ")[1:] if not b.startswith("all:")]
    assert len(jobs) > 20
    missing = sorted({b.split(":", 1)[0] for b in jobs if "benchmark:" not in b})
    assert missing == [], f"rules without a benchmark: directive: {missing}"
    for b in jobs:
        assert "resources:" in b and "runtime=" in b and "mem_mb=" in b, b[:300]


def test_snakefmt_finds_nothing_to_change():
    """The Snakefile and workflow/ are formatted as snakefmt (pinned in requirements.lock,
    configured in pyproject.toml) writes them."""
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
