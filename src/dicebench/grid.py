"""The experiment grid: config -> cells, and each cell's resolved settings and folder.

The grid of an experiment is the product datasets x networks x losses x weightings x lrs x
seeds, less the pairs that mean nothing: a class weighting (`uniform`, `simple`, `square`,
Shen et al.) goes with `weighted_dice` only, and every other loss runs with `none`.

The Snakefile, the tests and the reporting code all use these functions, so a cell's path
and settings are computed in exactly one place.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from dicebench.errors import DicebenchError

PAPERS = ("liu2018", "kervadec2023", "shen2018", "sudre2017")
CELL_PATTERN = "{experiment}/{dataset}/{network}/{loss}-{weighting}/lr{lr}/seed{seed}"
_NAME = r"[A-Za-z0-9_]+"


def _alternatives(names) -> str:
    """A regex matching exactly one of `names` (longest first, so no name shadows another)."""
    import re

    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


def weighted_losses() -> set[str]:
    from dicebench.losses import LOSSES

    return {n for n, spec in LOSSES.items() if spec.uses_weighting}


def wildcard_constraints() -> dict[str, str]:
    """The cell wildcards' patterns; loss, network and weighting from the registries."""
    from dicebench.losses import LOSSES, WEIGHTINGS
    from dicebench.networks import NETWORKS

    return {
        "experiment": _NAME,
        "dataset": _NAME,
        "preprocessing": _NAME,
        "network": _alternatives(NETWORKS),
        "loss": _alternatives(LOSSES),
        "weighting": _alternatives(("none", *WEIGHTINGS)),
        "lr": r"[0-9][0-9.e+-]*",
        "seed": r"[0-9]+",
    }


def config_schema() -> dict:
    """The config schema with the registries' vocabularies filled in."""
    import copy

    from dicebench.data.phantoms import PHANTOMS
    from dicebench.losses import LOSSES, WEIGHTINGS, loss_parameters
    from dicebench.networks import NETWORKS
    from dicebench.settings import schema

    sch = copy.deepcopy(schema())
    exp = sch["properties"]["experiments"]["additionalProperties"]["properties"]
    sch["properties"]["datasets"]["additionalProperties"]["properties"]["phantom"] = {"enum": sorted(PHANTOMS)}
    exp["networks"]["items"] = {"enum": sorted(NETWORKS)}
    exp["losses"]["items"] = {"enum": sorted(LOSSES)}
    exp["weightings"]["items"] = {"enum": ["none", *WEIGHTINGS]}
    exp["paper"] = {**exp["paper"], "enum": list(PAPERS)}
    policies = list(loss_parameters("gdl")["empty_policy"].choices)
    exp["subpatch"]["properties"]["gdl_empty_policies"]["items"] = {"enum": policies}
    return sch


@dataclass(frozen=True)
class Cell:
    experiment: str
    dataset: str
    network: str
    loss: str
    weighting: str
    lr: str  # formatted, as in the path
    seed: int

    @property
    def path(self) -> str:
        return CELL_PATTERN.format(**self.__dict__)


def format_lr(lr: float) -> str:
    """The learning rate as it appears in paths: 0.001, 0.0005, 1e-05 (six significant digits)."""
    return f"{float(lr):g}"


def validate_config(config: dict) -> dict:
    """Schema validation with defaults filled in, then the cross-references a schema can't see
    (datasets, presets, loss parameters, phantom knobs, patch sizes), then the sub-patching
    sweeps expanded into experiments of their own (`expand_subpatch`). Validating a config
    twice gives the same result: generated experiments are regenerated."""
    from dicebench.settings import validate

    if isinstance(config.get("experiments"), dict):
        config["experiments"] = {k: v for k, v in config["experiments"].items()
                                 if not (isinstance(v, dict) and SWEEP_KEY in v)}
    validate(config, config_schema())
    for name, ds in config["datasets"].items():
        _check_dataset(name, ds)
    for name, exp in config["experiments"].items():
        _check_experiment(config, name, exp)
    for i, floor in enumerate(config.get("floors", [])):
        _check_floor(config, i, floor)
    expand_subpatch(config)
    return config


def _check_floor(config: dict, index: int, floor: dict) -> None:
    exp = config["experiments"].get(floor["experiment"])
    where = f"floors[{index}]"
    if exp is None:
        raise DicebenchError(f"{where}.experiment: '{floor['experiment']}' is not a configured experiment")
    if floor["dataset"] not in exp["datasets"]:
        raise DicebenchError(f"{where}.dataset: '{floor['dataset']}' is not a dataset of experiment "
                             f"'{floor['experiment']}' ({', '.join(exp['datasets'])})")
    for key, have in (("losses", exp["losses"]), ("weightings", exp.get("weightings", ["none"])),
                      ("lrs", exp["lrs"])):
        unknown = [v for v in floor.get(key, []) if v not in have]
        if unknown:
            raise DicebenchError(f"{where}.{key}: {unknown} not in experiment '{floor['experiment']}' ({have})")


def _check_dataset(name: str, ds: dict) -> None:
    where = f"invalid config: datasets.{name}"
    if ds["source"] == "synthetic" and "holdout" in ds:
        raise DicebenchError(f"{where}.holdout: a hold-out is drawn from a real dataset's training patients; "
                             f"a phantom has its own test cases (n_test)")
    if ds["source"] == "synthetic":
        from dicebench.data.phantoms import resolve_spec

        try:
            resolve_spec(ds["phantom"], knobs=ds.get("knobs"), where=f"datasets.{name}")
        except DicebenchError as exc:
            raise DicebenchError(f"invalid config: {exc}") from None
    else:
        from dicebench.data.download import load_registry

        registry = load_registry()
        if ds["registry_name"] not in registry:
            raise DicebenchError(f"{where}.registry_name: '{ds['registry_name']}' is not in config/datasets.yaml "
                                 f"({', '.join(sorted(registry))})")


def _check_experiment(config: dict, name: str, exp: dict) -> None:
    from dicebench.losses import check_loss_params

    for ds in exp["datasets"]:
        if ds not in config["datasets"]:
            raise DicebenchError(f"invalid config: experiments.{name}.datasets names '{ds}', "
                                 f"which is not under datasets ({', '.join(config['datasets'])})")
    if exp["preprocessing"] not in config["preprocessing"]:
        raise DicebenchError(f"invalid config: experiments.{name}.preprocessing '{exp['preprocessing']}' "
                             f"is not under preprocessing ({', '.join(config['preprocessing'])})")
    for key, allowed in (("network_params", exp["networks"]), ("loss_params", exp["losses"])):
        for k in exp.get(key, {}):
            if k not in allowed:
                raise DicebenchError(f"invalid config: experiments.{name}.{key}.{k} names a {key[:-7]} "
                                     f"not in the experiment ({', '.join(allowed)})")
    for loss, params in exp.get("loss_params", {}).items():
        if not isinstance(params, dict):
            raise DicebenchError(f"invalid config: experiments.{name}.loss_params.{loss}: expected a mapping")
        try:
            check_loss_params(loss, params, f"experiments.{name}.loss_params.{loss}")
        except DicebenchError as exc:
            raise DicebenchError(f"invalid config: {exc}") from None
    if not list(experiment_cells(name, exp)):
        raise DicebenchError(f"invalid config: experiments.{name} has no cell: class weightings "
                             f"(uniform/simple/square) go with {', '.join(sorted(weighted_losses()))}, "
                             f"'none' with every other loss")
    _check_patch(name, exp)
    if "subpatch" in exp:
        _check_subpatch(name, exp)


# ---- the trained sub-patching sweep (Kervadec & de Bruijne 2023, Sec. 2) ----

SWEEP_KEY = "sweep_of"  # set on generated experiments only: the experiment they vary


def patch_label(patch) -> str:
    return "x".join(str(int(p)) for p in patch)


def gdl_policy(loss_params: dict | None) -> str:
    """GDL's empty-class policy under these loss parameters (the class's default otherwise)."""
    from dicebench.losses import loss_parameters

    return (loss_params or {}).get("empty_policy", loss_parameters("gdl")["empty_policy"].default)


def subpatch_experiments(name: str, exp: dict) -> dict[str, dict]:
    """The experiments a `subpatch` section generates, by name.

    `<name>_p<patch>` repeats the experiment (every loss, network, lr and seed, on the sweep's
    datasets) at each extra patch size; `<name>_p<patch>_gdl_<policy>` trains GDL alone with
    another empty-class policy at every patch size, the configured one included. The
    experiment itself is the sweep's point at its configured patch with its own GDL policy.
    """
    import copy

    sweep = exp.get("subpatch")
    if not sweep:
        return {}
    configured = list(exp["recipe"]["patch_size"])
    sizes = [configured] + [list(p) for p in sweep["patch_sizes"] if list(p) != configured]
    policies = [p for p in sweep.get("gdl_empty_policies", []) if p != gdl_policy(exp.get("loss_params", {}).get("gdl"))]
    base = {k: v for k, v in copy.deepcopy(exp).items() if k != "subpatch"}
    base["datasets"] = list(sweep.get("datasets") or exp["datasets"])
    out = {}
    for patch in sizes:
        at_patch = copy.deepcopy(base)
        at_patch["recipe"]["patch_size"] = patch
        # Trained on patches, inferred as the paper argues: on the configured window (whole slices).
        at_patch["recipe"].setdefault("inference_patch_size", configured)
        label = f"{name}_p{patch_label(patch)}"
        if patch != configured:
            out[label] = {**at_patch, SWEEP_KEY: name}
        for policy in policies:
            variant = copy.deepcopy(at_patch)
            variant["losses"] = ["gdl"]
            variant["loss_params"] = {"gdl": {**variant.get("loss_params", {}).get("gdl", {}),
                                              "empty_policy": policy}}
            out[f"{label}_gdl_{policy}"] = {**variant, SWEEP_KEY: name}
    return out


def _check_subpatch(name: str, exp: dict) -> None:
    sweep = exp["subpatch"]
    where = f"experiments.{name}.subpatch"
    for ds in sweep.get("datasets", []):
        if ds not in exp["datasets"]:
            raise DicebenchError(f"invalid config: {where}.datasets names '{ds}', which is not a dataset of "
                                 f"the experiment ({', '.join(exp['datasets'])})")
    if sweep.get("gdl_empty_policies") and "gdl" not in exp["losses"]:
        raise DicebenchError(f"invalid config: {where}.gdl_empty_policies needs 'gdl' among the losses")
    for patch in sweep["patch_sizes"]:
        try:
            _check_patch(name, {**exp, "recipe": {**exp["recipe"], "patch_size": patch}})
        except DicebenchError as exc:
            raise DicebenchError(f"invalid config: {where}.patch_sizes {list(patch)}: "
                                 f"{str(exc).split(': ', 2)[-1]}") from None


def expand_subpatch(config: dict) -> None:
    """Add the experiments of every `subpatch` section to `config["experiments"]`."""
    generated = {}
    for name, exp in config["experiments"].items():
        for new, spec in subpatch_experiments(name, exp).items():
            if new in config["experiments"] or new in generated:
                raise DicebenchError(f"invalid config: experiments.{name}.subpatch generates '{new}', "
                                     f"which is already an experiment")
            generated[new] = spec
    config["experiments"].update(generated)


def main_experiments(config: dict) -> list[str]:
    """The configured experiments, without those a sweep generated."""
    return [n for n, e in config["experiments"].items() if SWEEP_KEY not in e]


def sweep_members(config: dict, name: str) -> list[str]:
    """An experiment and the experiments its sub-patching sweep generated."""
    return [name] + [n for n, e in config["experiments"].items() if e.get(SWEEP_KEY) == name]


def _check_patch(name: str, exp: dict) -> None:
    """The patch must have the networks' dimension and be divisible by their down-sampling."""
    from dicebench.networks import check_patch, network_dims, network_divisor

    patch = exp["recipe"]["patch_size"]
    for net in exp["networks"]:
        params = exp.get("network_params", {}).get(net, {})
        try:
            dims, divisor = network_dims(net, **params), network_divisor(net, **params)
        except DicebenchError as exc:
            raise DicebenchError(f"invalid config: experiments.{name}.network_params.{net}: {exc}") from None
        if dims != len(patch):
            raise DicebenchError(f"invalid config: experiments.{name}: network {net} is {dims}D but "
                                 f"recipe.patch_size {patch} is {len(patch)}D")
        if any(p % divisor for p in patch):
            raise DicebenchError(f"invalid config: experiments.{name}: recipe.patch_size {patch} must be "
                                 f"divisible by {divisor} for network {net}")
        try:
            check_patch(net, patch, exp["recipe"]["batch_size"], **params)
        except DicebenchError as exc:
            raise DicebenchError(f"invalid config: experiments.{name}: recipe.patch_size {patch}: {exc}") from None


def experiment_cells(name: str, exp: dict):
    weighted = weighted_losses()
    for ds, net, loss, weighting, lr, seed in itertools.product(
        exp["datasets"], exp["networks"], exp["losses"], exp.get("weightings", ["none"]), exp["lrs"], exp["seeds"]
    ):
        if (loss in weighted) != (weighting != "none"):
            continue
        yield Cell(name, ds, net, loss, weighting, format_lr(lr), int(seed))


def all_cells(config: dict) -> list[Cell]:
    return [c for name, exp in config["experiments"].items() for c in experiment_cells(name, exp)]


def cell_from_wildcards(config: dict, w, cells: frozenset[Cell] | None = None) -> Cell:
    """The cell named by a job's wildcards. Pass the grid's cells as a set when calling this
    per job: rebuilding the grid each time makes the DAG build quadratic in its size."""
    cell = Cell(w.experiment, w.dataset, w.network, w.loss, w.weighting, w.lr, int(w.seed))
    if cell not in (cells if cells is not None else frozenset(all_cells(config))):
        raise DicebenchError(f"{cell.path} is not a cell of the configured grid")
    return cell


def cell_settings(config: dict, cell: Cell) -> dict:
    """Everything that defines the cell's result, resolved (defaults filled in): recorded
    verbatim in cell.json, and the train rule's params (a change reruns the cell). The
    result-neutral keys (`settings.neutral_keys`, e.g. loader workers) are left out: they
    reach the job outside its params (`runtime_settings`)."""
    from dicebench.settings import CellSettings

    exp = config["experiments"][cell.experiment]
    lr = next(lr for lr in exp["lrs"] if format_lr(lr) == cell.lr)
    settings = CellSettings.from_dict({
        "experiment": cell.experiment,
        "dataset": cell.dataset,
        "preprocessing": exp["preprocessing"],
        "network": cell.network,
        "network_params": exp.get("network_params", {}).get(cell.network, {}),
        "loss": cell.loss,
        "weighting": cell.weighting,
        "loss_params": exp.get("loss_params", {}).get(cell.loss, {}),
        "lr": float(lr),
        "seed": cell.seed,
        "recipe": exp["recipe"],
        "compute_threads": config.get("compute_threads", 1),
        "validation_overlap": config.get("inference", {}).get("overlap", 0.5),
        # A sub-patching sweep's experiment names the experiment it varies (reporting groups by it).
        "sweep_of": exp.get(SWEEP_KEY),
    })
    return settings.identity()


def runtime_settings(config: dict, cell: Cell) -> dict:
    """The cell's result-neutral settings (loader workers, the validation's window batch):
    passed outside the rule's params, so changing them reruns nothing."""
    recipe = config["experiments"][cell.experiment]["recipe"]
    inference = config.get("inference", {})
    out = {k: recipe[k] for k in ("data_workers",) if recipe.get(k) is not None}
    return {**out, **{k: inference[k] for k in ("sw_batch_size", "slices_per_chunk") if k in inference}}


def preprocessed_dir(config: dict, dataset: str, preset: str) -> str:
    return f"{config['results']}/preprocessed/{dataset}/{preset}"


def raw_dir(config: dict, dataset: str) -> str:
    return f"{config['results']}/datasets/{dataset}"
