"""Where a result came from: package versions, git commit, platform, and the version of the
package code a step ran (a hash of the source files it imports).

The workflow's rules call the `dicebench` command from `shell:`, so Snakemake sees none of the
package's source. `code_files` lists the files a module imports (the dicebench modules only,
transitively, read from the source without importing anything), so that

- the cheap steps (evaluation, tables, figures, claims, paper) take those files as inputs and
  rerun when the code they run changes, and
- training and inference record `code_version` in their outputs; `dicebench stale` lists the
  cells whose code has changed since, and reruns them on request (retraining on every edit of
  the trainer would cost a cluster hundreds of GPU-hours, so that is the user's call).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PACKAGES = ("dicebench", "torch", "monai", "numpy", "scipy", "SimpleITK", "antspyx", "nibabel", "pandas",
            "snakemake")

# Packages that load their submodules by name (importlib), which no import statement shows:
# importing one counts as importing all its modules.
LAZY_PACKAGES = ("dicebench.losses",)

# The modules each step runs (its CLI module); code_files adds what they import.
STEP_MODULES = {
    "train": ("dicebench.training.trainer",),
    "infer": ("dicebench.inference.predict",),
    "evaluate": ("dicebench.evaluation.evaluate",),
}


def module_file(module: str) -> Path | None:
    """The source file of a dicebench module (a package's __init__.py), or None."""
    if not module.startswith("dicebench"):
        return None
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE_ROOT / "__init__.py"
    rel = Path(*parts)
    for candidate in (PACKAGE_ROOT / rel.with_suffix(".py"), PACKAGE_ROOT / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith("dicebench")}


@functools.cache
def code_files(*modules: str) -> tuple[str, ...]:
    """Source files of `modules` and every dicebench module they import, transitively (function-
    level imports included, so the set is an over-approximation: safe for triggering reruns)."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        path = module_file(mod)
        if path is None:
            continue
        seen[mod] = path
        # A module's parent packages run first on import.
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_imports(path, mod) - set(seen))
        if mod in LAZY_PACKAGES:
            todo += [f"{mod}.{p.stem}" for p in sorted(path.parent.glob("*.py")) if p.stem != "__init__"]
    return tuple(sorted({str(p) for p in seen.values()}))


def code_version(*modules: str) -> str:
    """SHA-256 (16 hex digits) over the source of `code_files(*modules)`, by path relative to
    the package, so the same code in another checkout has the same version."""
    h = hashlib.sha256()
    for f in code_files(*modules):
        p = Path(f)
        h.update(str(p.relative_to(PACKAGE_ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def step_code_version(step: str) -> str:
    return code_version(*STEP_MODULES[step])


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict:
    """Package versions, git commit, Python, platform and host of this process."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {"packages": packages, "git_commit": git_commit(), "python": sys.version.split()[0],
            "platform": platform.platform(), "hostname": platform.node()}
