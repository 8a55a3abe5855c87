"""Software environments: every code-running rule declares a conda env from envs/, every package
there is pinned exactly, and the pins are those of requirements.lock (the local run's pins)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
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


def _env_pins(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(conda pins, pip pins) of an environment file; fails on any unpinned entry."""
    env = yaml.safe_load(path.read_text())
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                if spec.startswith("-e "):  # the package itself, from the checkout
                    assert (path.parent / spec[3:].strip() / "pyproject.toml").exists(), spec
                    continue
                m = PIN.match(spec)
                assert m, f"{path.name}: pip entry not pinned exactly: {spec}"
                pip[_canon(m.group(1))] = m.group(2)
        else:
            m = re.match(r"^([A-Za-z0-9_.\-]+)=([0-9][A-Za-z0-9_.]*)$", dep)
            assert m, f"{path.name}: conda entry not pinned to one version: {dep}"
            conda[m.group(1)] = m.group(2)
    return conda, pip


def test_there_is_an_env():
    assert ENVS


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_agree_with_the_lock(path):
    conda, pip = _env_pins(path)
    lock = _lock()
    wrong = {k: (v, lock.get(k)) for k, v in pip.items() if lock.get(k) != v}
    assert not wrong, f"{path.name} disagrees with requirements.lock (env, lock): {wrong}"
    # The env installs the whole locked tree, nothing less.
    assert set(lock) <= set(pip), sorted(set(lock) - set(pip))
    assert conda["python"] == ".".join(map(str, sys.version_info[:3])), "python differs from the venv's"


def test_lock_covers_pyproject_pins():
    """pyproject's direct pins are the lock's (the lock is the single source of truth)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for ds in project.get("optional-dependencies", {}).values() for d in ds]
    lock = _lock()
    for dep in deps:
        m = PIN.match(dep)
        assert m, f"pyproject.toml: not an exact pin: {dep}"
        assert lock.get(_canon(m.group(1))) == m.group(2), dep


def _rules():
    """(rule name, its directives) for every rule in workflow/rules/*.smk, from the text."""
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            body = re.split(r"^\S", block.split("\n", 1)[1], flags=re.M)[0]
            yield smk, name, set(re.findall(r"^    (\w+):", body, flags=re.M)), body


def test_every_shell_rule_declares_an_env_from_envs():
    rules = list(_rules())
    assert len(rules) >= 10
    for smk, name, directives, body in rules:
        if "shell" in directives:
            assert "conda" in directives, f"{smk.name}: rule {name} has no conda: directive"
            env = re.search(r"^    conda:\s*\n\s+\"([^\"]+)\"", body, flags=re.M).group(1)
            assert (smk.parent / env).resolve() in [p.resolve() for p in ENVS], f"rule {name}: {env}"
        for needed in ("threads", "resources"):
            assert needed in directives, f"{smk.name}: rule {name} has no {needed}: directive"
