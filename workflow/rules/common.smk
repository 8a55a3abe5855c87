# Config validation, the grid, and the helpers every stage shares. The decisions (which outputs
# exist, which cells a figure reads) live in dicebench.workflow and dicebench.grid, where the
# tests reach them; this file only adapts them to Snakemake's wildcards.
import json
import os
import sys

from dicebench.errors import DicebenchError
from dicebench import grid
from dicebench import workflow as wf
from dicebench.provenance import code_files

# The rules call the package's own command, `dicebench`. Put the bin/ folder of the interpreter
# running Snakemake (the venv's) first on PATH, so that `.venv/bin/snakemake ...` works as the
# README writes it, without activating the venv. Jobs inherit it (local, Slurm); a conda env
# (--software-deployment-method conda) puts its own bin/ in front when it is activated.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


envvars:
    "PATH",


# A user's config file describes their run alone; without one, config/config.yaml runs.
try:
    wf.prepare_config(config, workflow.config_settings.configfiles)
except DicebenchError as exc:
    sys.exit(f"dicebench: {exc}")

RESULTS = config["results"]
FIGURES = config["figures"]
CELLS = grid.all_cells(config)
CELL_SET = frozenset(CELLS)
CELL = f"{RESULTS}/{grid.CELL_PATTERN}"
# The configured experiments; a `subpatch` sweep adds generated ones (grid.expand_subpatch),
# which are trained, evaluated and tabulated like any other but feed only the sweep's figure
# and the claims, not the papers' tables, learning curves or qualitative figures.
MAIN_EXPERIMENTS = grid.main_experiments(config)
PAPERS = wf.papers(config)
PAPER_DIR = f"{workflow.basedir}/paper"


wildcard_constraints:
    **grid.wildcard_constraints(),


def cell_of(wildcards):
    return grid.cell_from_wildcards(config, wildcards, CELL_SET)


def cell_paths(cells, name):
    """A file of each cell's folder."""
    return [f"{RESULTS}/{c.path}/{name}" for c in cells]


def preset_of(wildcards):
    return config["experiments"][wildcards.experiment]["preprocessing"]


def preprocessed_of(wildcards):
    return f"{grid.preprocessed_dir(config, wildcards.dataset, preset_of(wildcards))}/data"


def class_stats_of(wildcards):
    return f"{grid.preprocessed_dir(config, wildcards.dataset, preset_of(wildcards))}/class_stats.json"


def code(*modules):
    """The package source files a step runs: its input, so a change to that code reruns it."""
    return list(code_files(*modules))


# Result-neutral settings (settings.neutral_keys) reach a job through its `resources`, outside
# `params`, so changing them never reruns a job (Snakemake tracks params, not resources).
EVALUATION_THREADS = config["evaluation"]["threads"]
INFERENCE_RUNTIME = json.dumps({k: config["inference"][k] for k in ("sw_batch_size", "slices_per_chunk")})


# Resources and threads per step, from the `resources` section of the config (config/README.md):
# `resources.default` overlaid by `resources.<rule>`. Slurm reads them through
# snakemake-executor-plugin-slurm (profiles/slurm); a local run ignores what it does not limit.
RESOURCE_ALIASES = {"partition": "slurm_partition", "account": "slurm_account", "extra": "slurm_extra"}


def resources_for(name):
    """Resources of step `name` as keyword arguments of its resources directive."""
    res = config.get("resources", {})
    merged = {**res.get("default", {}), **res.get(name, {})}
    return {RESOURCE_ALIASES.get(k, k): v for k, v in merged.items() if v is not None}


def threads_for(name):
    """Threads of a CPU step: its `cpus_per_task`, else 1."""
    return int(resources_for(name).get("cpus_per_task", 1))


# ---- helpers of data.smk (kept here: rules files hold rules only) ----


def _datasets(source):
    names = [n for n, d in config["datasets"].items() if d["source"] == source]
    return "|".join(names) if names else "(?!x)x"  # a pattern that matches nothing


# ---- helpers of report.smk ----


def cases_for_paper(wildcards):
    return [f"{RESULTS}/{e}/cases.csv" for e in wf.experiments_for_paper(config, wildcards.paper)]


def datasets_for_paper(wildcards):
    names = {ds for e in wf.experiments_for_paper(config, wildcards.paper) for ds in config["experiments"][e]["datasets"]}
    return [f"{RESULTS}/datasets/{ds}" for ds in sorted(names)]


def all_cases(sweeps=False):
    """Every experiment's cases.csv; with `sweeps`, those of the generated sweep experiments too."""
    names = config["experiments"] if sweeps else MAIN_EXPERIMENTS
    return [f"{RESULTS}/{e}/cases.csv" for e in names]


def qualitative_cells(w):
    return wf.qualitative_cells(config, w.experiment, w.dataset)


def gradient_cell(w):
    return f"{RESULTS}/{wf.gradient_cell(config, w.experiment, w.dataset).path}/model.pt"


def subpatch_sizes(w):
    return " ".join(wf.scan_patch_sizes(config, w.experiment))


def subpatch_cells(w, name="per_case.csv"):
    return cell_paths(wf.sweep_cells(config, w.experiment, w.dataset), name)


def cells_of(experiment):
    return wf.cells_of(config, experiment)
