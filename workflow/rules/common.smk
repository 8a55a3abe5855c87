# Config validation, the grid, and helpers shared by every stage.
import json
import os
import sys

# The package comes from this checkout: the driver environment (Snakemake and its Slurm plugin,
# envs/driver.yaml) imports dicebench.grid and dicebench.cluster without installing the package
# or any of the jobs' packages.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from dicebench.errors import DicebenchError
from dicebench import cluster, grid

# The rules call the package's own command, `dicebench`: jobs (local, Slurm) inherit a PATH that
# finds the jobs' software, the project's .venv first (dicebench.cluster.job_environment); a
# conda env (--software-deployment-method conda) puts its own bin/ in front when activated.
os.environ.update(cluster.job_environment(workflow.basedir, sys.executable, os.environ))

try:
    grid.validate_config(config)
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
# Every rule shells out to the package's own command line, `dicebench`.


wildcard_constraints:
    **grid.WILDCARD_CONSTRAINTS,


def cell_of(wildcards):
    return grid.cell_from_wildcards(config, wildcards, CELL_SET)


def preset_of(wildcards):
    return config["experiments"][wildcards.experiment]["preprocessing"]


def preprocessed_of(wildcards):
    return f"{grid.preprocessed_dir(config, wildcards.dataset, preset_of(wildcards))}/data"


def class_stats_of(wildcards):
    return f"{grid.preprocessed_dir(config, wildcards.dataset, preset_of(wildcards))}/class_stats.json"


def cells_of(experiment):
    return [c for c in CELLS if c.experiment == experiment]


def all_targets():
    targets = []
    for name in config["experiments"]:
        targets += [f"{RESULTS}/{name}/table.csv", f"{RESULTS}/{name}/table.md"]
    targets += [f"{FIGURES}/{name}_learning_curves.png" for name in MAIN_EXPERIMENTS]
    # The papers' tables beside the published numbers, the claims, and last the paper (report.smk).
    targets += [f"{FIGURES}/tables/{p}.{ext}" for p in PAPERS if experiments_for_paper(p) for ext in ("csv", "md")]
    targets += [f"{FIGURES}/tables/wilcoxon.md", f"{FIGURES}/claims.md", "paper/paper.pdf"]
    return targets


# Resources and threads per step, from the `resources` section of the config (config/README.md),
# resolved by dicebench.cluster (GPU request style, the cell's one Slurm job, CPUs that match
# the threads used). Slurm reads them through snakemake-executor-plugin-slurm (profiles/slurm);
# a local run ignores what it does not limit. `dicebench sbatch-preview` prints the result.
def resources_for(name):
    """Resources of step `name` as keyword arguments of its resources directive."""
    return cluster.rule_resources(config, name)


def threads_for(name):
    """Threads of a step that does not use `threads_per_job`: its `cpus_per_task`, else 1."""
    return cluster.rule_threads(config, name)


# ---- helpers of data.smk (kept here: rules files hold rules only) ----

def _datasets(source):
    names = [n for n, d in config["datasets"].items() if d["source"] == source]
    return "|".join(names) if names else "(?!x)x"  # a pattern that matches nothing

# ---- helpers of report.smk (kept here: rules files hold rules only) ----

PAPERS = ["liu2018", "kervadec2023", "shen2018", "sudre2017"]


PAPER_DIR = f"{workflow.basedir}/paper"


def experiments_for_paper(paper):
    """The default config names each experiment after its paper."""
    return [name for name in config["experiments"] if name == paper]


def cases_for_paper(wildcards):
    return [f"{RESULTS}/{e}/cases.csv" for e in experiments_for_paper(wildcards.paper)]


def datasets_for_paper(wildcards):
    names = {ds for e in experiments_for_paper(wildcards.paper) for ds in config["experiments"][e]["datasets"]}
    return [f"{RESULTS}/datasets/{ds}" for ds in sorted(names)]


def all_cases(sweeps=False):
    """Every experiment's cases.csv; with `sweeps`, those of the generated sweep experiments too."""
    names = config["experiments"] if sweeps else MAIN_EXPERIMENTS
    return [f"{RESULTS}/{e}/cases.csv" for e in names]


def paper_tables():
    return [f"{FIGURES}/tables/{p}.tex" for p in PAPERS if experiments_for_paper(p)]


def paper_figures():
    figs = [f"{FIGURES}/{e}_learning_curves.pdf" for e in MAIN_EXPERIMENTS]
    figs += [f"{FIGURES}/qualitative/{e}/{ds}.pdf" for e in MAIN_EXPERIMENTS
             for ds in config["experiments"][e]["datasets"]]
    return figs + gradient_maps() + subpatch_figures() + sensitivity_figures()


def qualitative_cells(w):
    """Every variant of the experiment on this dataset, first seed: one prediction panel each."""
    first_seed = config["experiments"][w.experiment]["seeds"][0]
    return [c for c in cells_of(w.experiment) if c.dataset == w.dataset and c.seed == int(first_seed)]


def gradient_cell(w):
    """The first Dice-loss cell of the experiment on this dataset (first network, lr and seed)."""
    cells = [c for c in cells_of(w.experiment) if c.dataset == w.dataset and c.loss == "dice"]
    return f"{RESULTS}/{cells[0].path}/model.pt"


def gradient_maps():
    return [f"{FIGURES}/gradient_map/{e}/{ds}.pdf" for e in MAIN_EXPERIMENTS
            if "dice" in config["experiments"][e]["losses"] for ds in config["experiments"][e]["datasets"]]


def subpatch_sizes(w):
    """Patch sizes whose empty share is read from the training labels (no training): the
    experiment's patch scaled by 1/4, 1/2, 1 and 2 (each side at least 4) and the sweep's sizes."""
    exp = config["experiments"][w.experiment]
    patch = exp["recipe"]["patch_size"]
    sizes = [[max(4, int(p * f)) for p in patch] for f in (0.25, 0.5, 1, 2)]
    sizes += [list(p) for p in exp.get("subpatch", {}).get("patch_sizes", [])]
    return " ".join(dict.fromkeys(grid.patch_label(s) for s in sizes))


def subpatch_cells(w, name="per_case.csv"):
    """The trained points of the sweep on this dataset: the experiment's cells and those of the
    experiments its `subpatch` section generated."""
    members = set(grid.sweep_members(config, w.experiment))
    return [f"{RESULTS}/{c.path}/{name}" for c in CELLS if c.experiment in members and c.dataset == w.dataset]


def subpatch_figures():
    return [f"{FIGURES}/subpatch/{e}/{ds}.pdf" for e in MAIN_EXPERIMENTS
            if {"gdl", "mime"} & set(config["experiments"][e]["losses"]) for ds in config["experiments"][e]["datasets"]]


def sensitivity_figures():
    return [f"{FIGURES}/lr_sensitivity/{p}.pdf" for p in experiments_for_paper("sudre2017")]
