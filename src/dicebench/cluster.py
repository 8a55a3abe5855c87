"""Running the workflow on a cluster: each rule's resources and threads, where the jobs find
their software, and the `sbatch` options every rule will get (`dicebench sbatch-preview`).

The Snakefile imports this module when it builds the DAG, i.e. in the driver environment
(Snakemake and its Slurm plugin, envs/driver.yaml), which has none of the jobs' packages:
only the standard library is imported at module level.

Resources come from the config's `resources` section (config/README.md): `resources.default`
overlaid by `resources.<rule>`, then

- a `gres` that names a GPU replaces `gpu` and `gpu_model` (the Slurm plugin refuses both), so
  a site file that sets `gres: gpu:a100:1` is not undone by the default config's `gpu: 1`;
  `gpu: 0` (or null) asks for no GPU, and `gpu_model` only names the model of the GPUs `gpu`
  asks for;
- train, infer and evaluate of one cell are one Slurm job (`group: "cell"`): Snakemake gives
  that job the largest memory and CPU count of the three and the sum of their run times, and
  needs their string resources to agree, so infer and evaluate run where train runs (its
  partition, account, qos, constraint and extra options) and infer asks for a GPU the way
  train does;
- train and infer use `compute_threads` torch threads, and a training job on a GPU also runs
  batch-loading threads (`recipe.data_workers`, 4 by default on CUDA): unless a rule's own
  `cpus_per_task` says otherwise, they ask Slurm for exactly those CPUs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
from pathlib import Path

from dicebench.errors import DicebenchError

ROOT = Path(__file__).resolve().parents[2]

# Every rule of the workflow (workflow/rules/*.smk, and `all`), in the order they run.
RULES = ("synthesize", "download", "convert", "preprocess", "class_stats", "train", "infer", "evaluate",
         "aggregate", "paper_table", "wilcoxon", "claims", "conventions", "compute", "claims_figure", "learning_curves",
         "qualitative", "gradient_map", "subpatch", "lr_sensitivity", "paper_methods", "paper", "viewer", "bundle",
         "bundle_with_weights", "verify_cell", "verify_claim", "all")
# The Snakefile's `localrules:`: they run where Snakemake runs, never in a Slurm queue. Downloads
# need the internet (compute nodes often have none); tables, figures, claims and the paper are
# light and must not wait behind training jobs in a GPU queue.
LOCAL_RULES = ("all", "download", "aggregate", "paper_table", "wilcoxon", "claims", "conventions", "compute",
               "claims_figure", "learning_curves",
               "qualitative", "gradient_map", "subpatch", "lr_sensitivity", "paper_methods", "paper", "viewer",
               "bundle", "bundle_with_weights", "verify_cell", "verify_claim")
# One Slurm job per cell: the rules with `group: "cell"`, in the order they run; the first leads.
CELL_GROUP = "cell"
CELL_RULES = ("train", "infer", "evaluate")
# Rules whose threads are the config's `compute_threads` (torch threads), not `cpus_per_task`.
TORCH_RULES = ("train", "infer")
# Batch-loading threads of a training job on CUDA when its recipe sets no `data_workers`
# (dicebench.training.trainer._loader_workers; tests/test_cluster.py checks they agree).
CUDA_LOADER_THREADS = 4

# Config keys that reach sbatch under another resource name (snakemake-executor-plugin-slurm's).
SLURM_NAMES = {"partition": "slurm_partition", "account": "slurm_account", "extra": "slurm_extra"}
PLACEMENT_KEYS = ("partition", "account", "qos", "constraint", "extra")
GPU_KEYS = ("gpu", "gpu_model", "gres")


def _merged(config: dict, rule: str) -> dict:
    """`resources.default` overlaid by `resources.<rule>`; a null value removes a key."""
    res = config.get("resources") or {}
    merged = {**(res.get("default") or {}), **(res.get(rule) or {})}
    return {k: v for k, v in merged.items() if v is not None}


def gres_names_gpu(gres: str) -> bool:
    """Whether a gres string (`gpu:2`, `gpu:a100:1`, `gpu:1,tmp:10G`) asks for GPUs."""
    return any(part.strip().split(":")[0] == "gpu" for part in str(gres).split(","))


def _one_gpu_style(res: dict) -> dict:
    res = dict(res)
    if gres_names_gpu(res.get("gres", "")):
        res.pop("gpu", None)
        res.pop("gpu_model", None)
    if not res.get("gpu"):
        res.pop("gpu", None)
        res.pop("gpu_model", None)
    return res


def asks_for_gpu(res: dict) -> bool:
    return bool(res.get("gpu")) or gres_names_gpu(res.get("gres", ""))


def _loader_threads(config: dict, gpu: bool) -> int:
    """The most batch-loading threads any experiment's training starts (trainer's default:
    CUDA_LOADER_THREADS on a GPU, none on the CPU)."""
    default = CUDA_LOADER_THREADS if gpu else 0
    recipes = [e.get("recipe") or {} for e in (config.get("experiments") or {}).values()]
    return max([int(r["data_workers"]) if r.get("data_workers") is not None else default for r in recipes],
               default=default)


def resolve(config: dict, rule: str) -> dict:
    """The resources of `rule` under the config's names (partition, account, gpu, ...)."""
    res = _one_gpu_style(_merged(config, rule))
    if rule in CELL_RULES[1:]:
        lead = _one_gpu_style(_merged(config, CELL_RULES[0]))
        res = {k: v for k, v in res.items() if k not in PLACEMENT_KEYS}
        res.update({k: lead[k] for k in PLACEMENT_KEYS if k in lead})
        if asks_for_gpu(res) and asks_for_gpu(lead):
            res = {k: v for k, v in res.items() if k not in GPU_KEYS}
            res.update({k: lead[k] for k in GPU_KEYS if k in lead})
    own = (config.get("resources") or {}).get(rule) or {}
    if rule in TORCH_RULES and own.get("cpus_per_task") is None:
        threads = int(config.get("compute_threads", 1))
        res["cpus_per_task"] = threads + (_loader_threads(config, asks_for_gpu(res)) if rule == "train" else 0)
    if rule == "evaluate" and own.get("cpus_per_task") is None:
        res["cpus_per_task"] = int((config.get("evaluation") or {}).get("threads", 1))
    return res


def rule_resources(config: dict, rule: str) -> dict:
    """Keyword arguments of `rule`'s `resources:` directive (the Slurm plugin's names)."""
    return {SLURM_NAMES.get(k, k): v for k, v in resolve(config, rule).items()}


def rule_threads(config: dict, rule: str) -> int:
    """`threads:` of a rule: torch threads (`compute_threads`) for train and infer, else its CPUs."""
    if rule in TORCH_RULES:
        return int(config.get("compute_threads", 1))
    if rule == "evaluate":  # the config's evaluation.threads (result-neutral)
        return int((config.get("evaluation") or {}).get("threads", 1))
    return int(resolve(config, rule).get("cpus_per_task", 1))


def cell_job_resources(config: dict) -> dict:
    """What Snakemake asks for the cell's one job (snakemake.resources.GroupResources on a
    chain): each member's numbers at most, run times summed, the (agreeing) strings once."""
    job: dict = {}
    for rule in CELL_RULES:
        for key, value in rule_resources(config, rule).items():
            if key == "runtime":
                job[key] = job.get(key, 0) + value
            elif isinstance(value, str):
                if job.setdefault(key, value) != value:
                    raise DicebenchError(f"resources: {key} differs between the rules of a cell's job "
                                         f"({job[key]!r}, {value!r})")
            else:
                job[key] = max(job.get(key, value), value)
    return job


def job_environment(basedir: str | os.PathLike, executable: str, environ: dict) -> dict[str, str]:
    """Environment variables for the jobs, set by the Snakefile.

    PATH: the project's `.venv/bin` first when it holds `dicebench` (the jobs' software), then
    the folder of the interpreter running Snakemake if that interpreter can run the jobs (has
    torch: a driver environment's `dicebench` cannot), then the rest. With
    `--software-deployment-method conda`, each rule's environment goes in front of these.
    DICEBENCH_ROOT: the checkout, which envs/*.yaml install the package from (`-e`).
    """
    front = []
    venv_bin = Path(basedir) / ".venv" / "bin"
    if (venv_bin / "dicebench").exists():
        front.append(str(venv_bin))
    if importlib.util.find_spec("torch") is not None:
        front.append(str(Path(executable).parent))
    rest = [p for p in environ.get("PATH", "").split(os.pathsep) if p and p not in front]
    return {"PATH": os.pathsep.join(dict.fromkeys(front + rest)), "DICEBENCH_ROOT": str(Path(basedir))}


# ---- the preview: the sbatch options of every rule, built by the Slurm plugin itself ----

class _Resources(dict):
    """A job's resources as the plugin reads them (`.get(name)` and `.name`)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def sbatch_options(resources: dict, threads: int, profile: dict | None = None) -> str:
    """The options snakemake-executor-plugin-slurm gives `sbatch` for a job with these
    resources, from its own submit-string functions; the per-run options (job name, log, comment,
    working directory) are left out. Needs the plugin: run it in the driver environment."""
    try:
        from snakemake_executor_plugin_slurm.submit_string import get_submit_command
        from snakemake_executor_plugin_slurm.utils import set_gres_string
        from snakemake_executor_plugin_slurm.validation import validate_slurm_extra
        from snakemake_interface_common.exceptions import WorkflowError
    except ImportError:
        raise DicebenchError("the preview needs snakemake-executor-plugin-slurm: run it with the driver "
                             "environment's dicebench (make driver; .venv-driver/bin/dicebench sbatch-preview)"
                             ) from None
    profile = profile or {}
    res = _Resources(resources)
    job = argparse.Namespace(resources=res, threads=threads, is_group=lambda: False, name="preview")
    settings = argparse.Namespace(requeue=bool(profile.get("slurm-requeue")),
                                  no_requeue=bool(profile.get("slurm-no-requeue")),
                                  qos=profile.get("slurm-qos"), reservation=profile.get("slurm-reservation"))
    # What the executor's get_account_arg / get_partition_arg return for a configured account
    # and partition (without asking the cluster whether they exist).
    account = f" -A {shlex.quote(str(res['slurm_account']))}" if res.get("slurm_account") else ""
    partition = f" -p {shlex.quote(str(res['slurm_partition']))}" if res.get("slurm_partition") else ""
    params = {"run_uuid": "RUN", "slurm_logfile": "LOG", "comment_str": "COMMENT", "account": account,
              "partition": partition, "workdir": None}
    try:
        validate_slurm_extra(job)
        call = get_submit_command(job, params, settings=settings) + set_gres_string(job)
    except WorkflowError as exc:
        raise DicebenchError(f"resources: {exc}") from None
    words = shlex.split(call)
    per_run = {"--job-name", "--output", "--comment"}
    kept, skip = [], False
    for word in words[1:]:
        if skip:
            skip = False
        elif word in per_run:
            skip = True
        elif word not in ("--parsable", "--export=ALL"):
            kept.append(word)
    return shlex.join(kept)


def preview(config: dict, profile: dict | None = None) -> list[tuple[str, str]]:
    """(rule, sbatch options) for every rule submitted to Slurm, in run order; the cell's rules
    share one line (one job)."""
    rows = []
    for rule in RULES:
        if rule in LOCAL_RULES or rule in CELL_RULES[1:]:
            continue
        if rule == CELL_RULES[0]:
            rows.append((" + ".join(CELL_RULES), sbatch_options(cell_job_resources(config),
                                                                rule_threads(config, rule), profile)))
        else:
            rows.append((rule, sbatch_options(rule_resources(config, rule), rule_threads(config, rule), profile)))
    return rows


def load_config(configfiles: list[Path], directory: Path | None = None) -> dict:
    """The config as the workflow builds it (dicebench.workflow.prepare_config): the --configfile
    files merged in order, recursively; without any, config/config.yaml of the working directory
    (else the checkout's); then validated with the schema's defaults."""
    import yaml
    from snakemake.utils import update_config

    from dicebench import workflow as wf

    files = list(configfiles)
    if not files:
        local = Path(directory or Path.cwd()) / "config" / "config.yaml"
        files = [local if local.is_file() else wf.DEFAULT_CONFIG]
    config: dict = {}
    for path in files:
        try:
            update_config(config, yaml.safe_load(Path(path).read_text()) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise DicebenchError(f"{path}: cannot read the config ({exc})") from None
    return wf.prepare_config(config, files)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configfile", nargs="*", type=Path, default=[],
                   help="the run's config files, as given to snakemake (none: config/config.yaml)")
    p.add_argument("--directory", type=Path, default=None,
                   help="the working directory, as given to snakemake (default: the current one)")
    p.add_argument("--profile", type=Path, default=ROOT / "profiles" / "slurm",
                   help="the Snakemake profile folder (its slurm-* settings: requeue, qos, reservation)")


def run(args: argparse.Namespace) -> int:
    import yaml

    profile_file = args.profile / "config.yaml"
    try:
        profile = yaml.safe_load(profile_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DicebenchError(f"{profile_file}: cannot read the profile ({exc})") from None
    rows = preview(load_config(args.configfile, args.directory), profile)
    width = max(len(r) for r, _ in rows)
    print(f"# sbatch options per rule under --profile {args.profile}, besides --job-name, --output and --comment")
    for rules, options in rows:
        print(f"{rules:<{width}}  {options}")
    print(f"# one Slurm job per cell runs {', '.join(CELL_RULES)} in turn (group {CELL_GROUP!r})")
    print(f"# run where snakemake runs, never submitted: {', '.join(r for r in LOCAL_RULES if r != 'all')}")
    return 0
