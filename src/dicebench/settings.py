"""Typed settings, built once from the validated config, with one source for every default.

The config schema (`workflow/schemas/config.schema.yaml`) is that source: it declares each
key's type and default, and whether the key can change a result. The dataclasses here read
their defaults from it, so the trainer, the inference and the workflow never write a default
of their own (a few derived values, e.g. the validation interval from the iteration count,
are properties below, documented in config/README.md).

Two kinds of settings (the schema marks the second with `x-result-neutral: true`):

- result-affecting: every key that can change a cell's numbers. On the CPU this includes the
  compute-thread count (floating-point reductions are summed in another order with more
  threads; training amplifies the difference), so `compute_threads` is part of a cell's
  identity, recorded in cell.json like the device. Changing one reruns what depends on it.
- result-neutral: keys that cannot change a number (loader workers: each iteration's batch
  comes from its own seeded generator; the sliding-window batch size; evaluation threads;
  every scheduler resource). The rules pass them outside `params`, so changing one never
  makes Snakemake rerun anything.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

from dicebench.errors import DicebenchError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
NEUTRAL = "x-result-neutral"


@functools.cache
def schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA.read_text())


def schema_node(*path: str) -> dict:
    """The schema of the config key at `path`; "*" steps into a mapping's values."""
    node = schema()
    for key in path:
        node = node["additionalProperties"] if key == "*" else node["properties"][key]
    return node


def schema_defaults(*path: str) -> dict:
    """The defaults the schema gives the keys of the object at `path`."""
    return {k: v["default"] for k, v in schema_node(*path).get("properties", {}).items() if "default" in v}


def neutral_keys(node: dict | None = None, prefix: str = "") -> set[str]:
    """Dotted paths of the result-neutral keys ("*" for a mapping's values)."""
    node = schema() if node is None else node
    out = set()
    if node.get(NEUTRAL):
        out.add(prefix)
    for key, child in node.get("properties", {}).items():
        out |= neutral_keys(child, f"{prefix}.{key}" if prefix else key)
    if isinstance(node.get("additionalProperties"), dict):
        out |= neutral_keys(node["additionalProperties"], f"{prefix}.*" if prefix else "*")
    return out


def strip_neutral(config: dict) -> dict:
    """A copy of the config without its result-neutral keys: what a step whose output depends on
    the whole config (the paper's methods) must be rerun for."""
    import copy

    out = copy.deepcopy(config)
    for dotted in neutral_keys():
        _drop(out, dotted.split("."))
    return out


def _drop(node, path: list[str]) -> None:
    if not isinstance(node, dict) or not path:
        return
    head, rest = path[0], path[1:]
    keys = list(node) if head == "*" else [head] if head in node else []
    for key in keys:
        if rest:
            _drop(node[key], rest)
        else:
            del node[key]


def _build(cls, values: dict, where: str, path: tuple[str, ...]):
    merged = {**schema_defaults(*path), **(values or {})}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(merged) - names)
    if unknown:
        raise DicebenchError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    missing = sorted(n for n in names if n not in merged and _required(cls, n))
    if missing:
        raise DicebenchError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**merged)


def _required(cls, name: str) -> bool:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


RECIPE_PATH = ("experiments", "*", "recipe")


@dataclass(frozen=True)
class Recipe:
    """How one cell is trained (config `experiments.<name>.recipe`)."""

    optimizer: str
    iterations: int
    batch_size: int
    patch_size: tuple[int, ...]
    optimizer_params: dict = field(default_factory=dict)
    lr_schedule: dict = field(default_factory=dict)
    val_interval: int | None = None
    log_interval: int | None = None
    checkpoint_interval: int | None = None
    val_fraction: float | None = None
    split_seed: int | None = None
    fg_oversample: float | None = None
    augment: dict = field(default_factory=dict)
    inference_patch_size: tuple[int, ...] | None = None
    amp: str | None = None
    data_workers: int | None = None
    channels_last: bool | None = None
    cuda_deterministic: bool | None = None

    @classmethod
    def from_dict(cls, values: dict, where: str = "recipe") -> "Recipe":
        r = _build(cls, values, where, RECIPE_PATH)
        object.__setattr__(r, "patch_size", tuple(int(p) for p in r.patch_size))
        if r.inference_patch_size is not None:
            object.__setattr__(r, "inference_patch_size", tuple(int(p) for p in r.inference_patch_size))
        return r

    @property
    def validation_every(self) -> int:
        """Iterations between validations: `val_interval`, else a fifth of the run."""
        return int(self.val_interval or max(1, self.iterations // 5))

    @property
    def log_every(self) -> int:
        """Iterations between training-loss rows of log.csv: `log_interval`, else min(validation, 10)."""
        return int(self.log_interval or min(self.validation_every, 10))

    @property
    def checkpoint_every(self) -> int:
        return int(self.checkpoint_interval or self.validation_every)

    @property
    def window(self) -> tuple[int, ...]:
        """The sliding window of inference and validation: `inference_patch_size`, else the patch."""
        return self.inference_patch_size or self.patch_size

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class InferenceSettings:
    """Sliding-window inference (config `inference`)."""

    overlap: float
    sw_batch_size: int
    mirror: bool
    checkpoint: str
    save_probabilities: bool
    slices_per_chunk: int
    device: str
    amp: str

    @classmethod
    def from_dict(cls, values: dict | None, where: str = "inference settings") -> "InferenceSettings":
        s = _build(cls, values or {}, where, ("inference",))
        if not (isinstance(s.overlap, (int, float)) and not isinstance(s.overlap, bool) and 0 <= s.overlap < 1):
            raise DicebenchError(f"{where}: overlap must be in [0, 1), got {s.overlap!r}")
        for key in ("sw_batch_size", "slices_per_chunk"):
            v = getattr(s, key)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise DicebenchError(f"{where}: {key} must be an integer >= 1, got {v!r}")
        if s.amp not in ("none", "bf16"):
            raise DicebenchError(f"{where}: amp must be 'none' or 'bf16', got {s.amp!r}")
        if s.checkpoint not in ("last", "best"):
            raise DicebenchError(f"{where}: checkpoint must be 'last' or 'best', got {s.checkpoint!r}")
        return s

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CellSettings:
    """Everything that defines one trained cell; recorded verbatim in its cell.json."""

    network: str
    loss: str
    lr: float
    seed: int
    recipe: Recipe
    weighting: str = "none"
    experiment: str = ""
    dataset: str = ""
    preprocessing: str = ""
    network_params: dict = field(default_factory=dict)
    loss_params: dict = field(default_factory=dict)
    compute_threads: int = 1
    validation_overlap: float | None = None  # the config's inference.overlap (validation = inference)
    sweep_of: str | None = None

    @classmethod
    def from_dict(cls, values: dict) -> "CellSettings":
        values = dict(values)
        if "threads" in values:  # the key's name before compute_threads
            values["compute_threads"] = values.pop("threads")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise DicebenchError(f"cell settings: unknown key(s) {', '.join(unknown)}")
        values["recipe"] = Recipe.from_dict(values.get("recipe") or {}, "cell settings: recipe")
        try:
            s = cls(**values)
        except TypeError as exc:
            raise DicebenchError(f"cell settings: {exc}") from None
        object.__setattr__(s, "lr", float(s.lr))
        object.__setattr__(s, "seed", int(s.seed))
        return s

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["recipe"] = self.recipe.to_dict()
        if out["sweep_of"] is None:
            del out["sweep_of"]
        return out

    def identity(self) -> dict:
        """The result-affecting settings: what a checkpoint must match to be resumed."""
        out = self.to_dict()
        out["recipe"] = {k: v for k, v in out["recipe"].items() if f"{'.'.join(RECIPE_PATH)}.{k}" not in
                         neutral_keys()}
        return out


def validate(config: dict, schema_: dict) -> None:
    """JSON-schema validation that fills in the schema's defaults (as Snakemake's `validate`
    does), without importing Snakemake: the DAG build and the driver stay light."""
    import copy

    import jsonschema
    from jsonschema import Draft202012Validator, validators

    def set_defaults(validator, properties, instance, node):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, node)

    validator = validators.extend(Draft202012Validator, {"properties": set_defaults})(schema_)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise DicebenchError(f"invalid config: {where}: {error.message}")
