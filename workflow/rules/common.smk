# Config validation, the grid, and the helpers every stage shares. The decisions (which outputs
# exist, which cells a figure reads) live in dicebench.workflow and dicebench.grid, where the
# tests reach them; this file only adapts them to Snakemake's wildcards.
import json
import os
import shlex
import sys

# The package comes from this checkout: the driver environment (Snakemake and its Slurm plugin,
# envs/driver.yaml) imports dicebench.grid and dicebench.cluster without installing the package
# or any of the jobs' packages.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from dicebench.errors import DicebenchError
from dicebench import cluster, grid
from dicebench import workflow as wf
from dicebench.provenance import code_files
from dicebench.settings import strip_neutral

# The rules call the package's own command, `dicebench`: jobs (local, Slurm) inherit a PATH that
# finds the jobs' software, the project's .venv first (dicebench.cluster.job_environment); a
# conda env (--software-deployment-method conda) puts its own bin/ in front when activated.
os.environ.update(cluster.job_environment(workflow.basedir, sys.executable, os.environ))


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


def cell_runtime(wildcards):
    """A cell's result-neutral settings (settings.neutral_keys) as one JSON string: its jobs get it
    through `resources`, outside `params`, so changing one never reruns a job (Snakemake tracks
    params, not resources). One string for the cell's three grouped jobs, as a group needs."""
    return json.dumps(grid.runtime_settings(config, cell_of(wildcards)), sort_keys=True)


# Resources and threads per step, from the `resources` section of the config (config/README.md),
# resolved by dicebench.cluster (GPU request style, the cell's one Slurm job, CPUs that match
# the threads used). Slurm reads them through snakemake-executor-plugin-slurm (profiles/slurm);
# a local run ignores what it does not limit. `dicebench sbatch-preview` prints the result.
def resources_for(name):
    """Resources of step `name` as keyword arguments of its resources directive."""
    return cluster.rule_resources(config, name)


def threads_for(name):
    """Threads of a CPU step: its `cpus_per_task`, else 1."""
    return cluster.rule_threads(config, name)


# ---- helpers of data.smk (kept here: rules files hold rules only) ----


def _datasets(source):
    names = [n for n, d in config["datasets"].items() if d["source"] == source]
    return "|".join(names) if names else "(?!x)x"  # a pattern that matches nothing


# ---- helpers of report.smk ----


def cases_for_paper(wildcards):
    return [f"{RESULTS}/{e}/cases.csv" for e in wf.experiments_for_paper(config, wildcards.paper)]


def datasets_for_paper(wildcards):
    names = {
        ds for e in wf.experiments_for_paper(config, wildcards.paper) for ds in config["experiments"][e]["datasets"]
    }
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
