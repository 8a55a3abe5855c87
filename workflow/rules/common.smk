# Config validation, the grid, and helpers shared by every stage.
import json
import sys

from dicebench.errors import DicebenchError
from dicebench import grid

try:
    grid.validate_config(config)
except DicebenchError as exc:
    sys.exit(f"dicebench: {exc}")

RESULTS = config["results"]
FIGURES = config["figures"]
CELLS = grid.all_cells(config)
CELL = f"{RESULTS}/{grid.CELL_PATTERN}"
# Every rule shells out to the package's own command line.
DICEBENCH = "dicebench"


wildcard_constraints:
    **grid.WILDCARD_CONSTRAINTS,


def cell_of(wildcards):
    return grid.cell_from_wildcards(config, wildcards)


def preset_of(wildcards):
    return config["experiments"][wildcards.experiment]["preprocessing"]


def preprocessed_of(wildcards):
    return grid.preprocessed_dir(config, wildcards.dataset, preset_of(wildcards)) + "/data"


def class_stats_of(wildcards):
    return grid.preprocessed_dir(config, wildcards.dataset, preset_of(wildcards)) + "/class_stats.json"


def cells_of(experiment):
    return [c for c in CELLS if c.experiment == experiment]


def all_targets():
    targets = []
    for name in config["experiments"]:
        targets += [f"{RESULTS}/{name}/table.csv", f"{RESULTS}/{name}/table.md",
                    f"{FIGURES}/{name}_learning_curves.png"]
    # The papers' tables beside the published numbers, the claims, and last the paper (report.smk).
    targets += [f"{FIGURES}/tables/{p}.{ext}" for p in PAPERS if experiments_for_paper(p) for ext in ("csv", "md")]
    targets += [f"{FIGURES}/tables/wilcoxon.md", f"{FIGURES}/claims.md", "paper/paper.pdf"]
    return targets


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
    """Threads of a step that does not use `threads_per_job`: its `cpus_per_task`, else 1."""
    return int(resources_for(name).get("cpus_per_task", 1))
