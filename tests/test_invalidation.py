"""Touching one cell's output (or one dataset) reruns exactly what depends on it.

The real Snakefile on a small config whose experiments are named after two papers. Every
output the DAG would make is created empty with one old time stamp (nothing is trained), then
one file is touched and `snakemake --dry-run --rerun-triggers mtime` must list exactly the
downstream jobs: that cell, its experiment's table, its paper's table, the Wilcoxon table,
the claims and the paper, and nothing of the other cells or the other paper.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Newer than the repository sources the rules read (paper/published.yaml, paper/paper.tex, and
# the package code of the cheap steps, which is their input).
T0 = int(max(f.stat().st_mtime for f in [*(REPO / "paper").glob("*.*"), *(REPO / "src").rglob("*.py")])) + 10

CONFIG = {
    "results": "results",
    "figures": "figures",
    "datasets": {
        "synth_acdc": {"source": "synthetic", "phantom": "acdc", "n_train": 2, "n_test": 1, "seed": 1},
        "synth_abdomen": {"source": "synthetic", "phantom": "abdomen", "n_train": 2, "n_test": 1, "seed": 2},
    },
    "preprocessing": {"mri": {"target_spacing": None, "normalization": "zscore"},
                      "ct": {"target_spacing": None, "normalization": "ct"}},
    "experiments": {
        "kervadec2023": {"datasets": ["synth_acdc"], "preprocessing": "mri", "networks": ["unet2d"],
                         "network_params": {"unet2d": {"width": 4}}, "losses": ["dice", "mime"],
                         "lrs": [0.01], "seeds": [0],
                         "recipe": {"optimizer": "adam", "iterations": 2, "batch_size": 2, "patch_size": [32, 32],
                                    "val_interval": 2},
                         "subpatch": {"patch_sizes": [[16, 32]]}},
        "shen2018": {"datasets": ["synth_abdomen"], "preprocessing": "ct", "networks": ["unet3d"],
                     "network_params": {"unet3d": {"width": 2, "depth": 2}}, "losses": ["weighted_dice"],
                     "weightings": ["uniform", "square"], "lrs": [0.001], "seeds": [0],
                     "recipe": {"optimizer": "adam", "iterations": 2, "batch_size": 2, "patch_size": [8, 8, 8],
                                "val_interval": 2}},
    },
}
MIME = "results/kervadec2023/synth_acdc/unet2d/mime-none/lr0.01/seed0"

pytestmark = pytest.mark.workflow  # Snakemake dry runs


def _snakemake(work: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config" / "config.yaml"), "--cores", "1", *args]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _planned_outputs(work: Path) -> set[str]:
    """The output files of every job a dry run would execute."""
    text = _snakemake(work, "--dry-run", "--rerun-triggers", "mtime")
    outs: set[str] = set()
    for block in re.findall(r"^\s*output: (.*)$", text, flags=re.M):
        outs.update(s.strip() for s in block.split(","))
    return outs


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Every output of the DAG present, all with the same old time stamp: nothing to do."""
    work = tmp_path_factory.mktemp("invalidation")
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    summary = _snakemake(work, "--summary")
    files = [line.split("\t")[0] for line in summary.splitlines() if "\t" in line and not line.startswith("output_file")]
    assert any(f.endswith("paper/paper.pdf") for f in files)
    for f in files:
        p = work / f
        if p.name in ("predictions", "data") or p.parent.name == "datasets":
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
    for p in sorted((work / "results").rglob("*")) + sorted((work / "figures").rglob("*")) + [work / "paper/paper.pdf"]:
        os.utime(p, (T0, T0))
    return work


def _touch(p: Path, t: int) -> None:
    os.utime(p, (t, t))


def _planned_after_touching(built: Path, path: Path) -> set[str]:
    """What a dry run plans once `path` is newer than everything else; its time stamp is restored."""
    _touch(path, T0 + 100)
    try:
        return _planned_outputs(built)
    finally:
        _touch(path, T0)


def test_up_to_date_tree_plans_nothing(built):
    assert _planned_outputs(built) == set()


def test_touching_one_cell_reruns_only_its_dependents(built):
    planned = _planned_after_touching(built, built / MIME / "model.pt")
    expected = {
        f"{MIME}/predictions", f"{MIME}/metrics.csv", f"{MIME}/per_case.csv",
        "results/kervadec2023/table.csv", "results/kervadec2023/table.md", "results/kervadec2023/cases.csv",
        "figures/tables/kervadec2023.csv", "figures/tables/kervadec2023.md", "figures/tables/kervadec2023.tex",
        "figures/tables/wilcoxon.csv", "figures/tables/wilcoxon.md", "figures/tables/wilcoxon.tex",
        "figures/claims.md", "figures/claims.csv", "figures/tables/claims.tex", "paper/paper.pdf",
        "figures/qualitative/kervadec2023/synth_acdc.png", "figures/qualitative/kervadec2023/synth_acdc.pdf",
        "figures/subpatch/kervadec2023/synth_acdc.png", "figures/subpatch/kervadec2023/synth_acdc.pdf",
        "figures/subpatch/kervadec2023/synth_acdc.csv", "figures/viewer/kervadec2023/synth_acdc.html",
        "figures/tables/conventions.csv", "figures/tables/conventions.md", "figures/tables/conventions.tex",
        "figures/tables/conventions_tables.csv",
        "figures/tables/compute.csv", "figures/tables/compute.md", "figures/tables/compute.tex",
        "figures/claims.png", "figures/claims.pdf",
    }
    assert planned == expected
    assert not any("dice-none" in p or "shen2018" in p or "learning_curves" in p for p in planned)


def test_touching_one_sweep_cell_reruns_its_figure_and_the_claims_only(built):
    sweep = "results/kervadec2023_p16x32/synth_acdc/unet2d/dice-none/lr0.01/seed0"
    assert _planned_after_touching(built, built / sweep / "model.pt") == {
        f"{sweep}/predictions", f"{sweep}/metrics.csv", f"{sweep}/per_case.csv",
        "results/kervadec2023_p16x32/table.csv", "results/kervadec2023_p16x32/table.md",
        "results/kervadec2023_p16x32/cases.csv",
        "figures/subpatch/kervadec2023/synth_acdc.png", "figures/subpatch/kervadec2023/synth_acdc.pdf",
        "figures/subpatch/kervadec2023/synth_acdc.csv",
        "figures/claims.md", "figures/claims.csv", "figures/tables/claims.tex", "paper/paper.pdf",
        "figures/tables/conventions.csv", "figures/tables/conventions.md", "figures/tables/conventions.tex",
        "figures/tables/conventions_tables.csv",
        "figures/tables/compute.csv", "figures/tables/compute.md", "figures/tables/compute.tex",
        "figures/claims.png", "figures/claims.pdf",
    }


def test_touching_one_dataset_reruns_only_its_experiment(built):
    planned = _planned_after_touching(built, built / "results/datasets/synth_abdomen")
    assert "figures/tables/shen2018.csv" in planned and "paper/paper.pdf" in planned
    assert any("weighted_dice-uniform" in p and p.endswith("model.pt") for p in planned)
    assert any("weighted_dice-square" in p and p.endswith("model.pt") for p in planned)
    assert not any("kervadec2023" in p for p in planned)


def _planned_after_editing(built: Path, source: Path) -> set[str]:
    """What a dry run plans once a package source file is newer than every output (an edit); its
    own time stamp is put back afterwards."""
    stat = source.stat()
    _touch(source, T0 + 100)
    try:
        return _planned_outputs(built)
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_editing_the_drawing_code_rebuilds_the_figures_and_nothing_upstream(built):
    """A fix to the drawing code must reach every figure (showyourwork's rebuild), and only them."""
    planned = _planned_after_editing(built, REPO / "src" / "dicebench" / "reporting" / "figures.py")
    assert planned and all(p.startswith("figures/") or p == "paper/paper.pdf" for p in planned), planned
    assert not any(p.startswith("figures/tables/") or p.startswith("figures/viewer/") for p in planned)
    assert {"figures/kervadec2023_learning_curves.png", "figures/claims.png", "paper/paper.pdf"} <= planned
    assert not any(p.endswith(("model.pt", "metrics.csv", "table.csv", "claims.csv")) for p in planned)


def test_editing_the_metric_code_reruns_evaluation_and_what_it_feeds(built):
    planned = _planned_after_editing(built, REPO / "src" / "dicebench" / "evaluation" / "metrics.py")
    assert f"{MIME}/metrics.csv" in planned and "figures/claims.csv" in planned
    assert not any(p.endswith(("model.pt", "/predictions")) for p in planned)
