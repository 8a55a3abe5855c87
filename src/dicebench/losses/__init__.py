"""The Dice-loss family studied by the four papers, each written from its paper's equation.

`LOSSES` is the one registry of loss names: the config schema's vocabulary, the DAG-build
check of `loss_params`, `get_loss`, the wildcard constraint, the docs table and the tests
over every loss all read it. It is torch-free: each entry names its class by module and
attribute, and the class's keyword parameters (names, types, defaults, choices) are read
from the class's own signature in its source file (`loss_parameters`), so a default lives
in exactly one place and the DAG build needs no torch.

Adding a loss: write its class (formula and citation in the docstring) in a module of this
package, add one `LossSpec` line below, and test it (tests/test_losses.py runs its generic
checks over every registry entry).

`get_loss(name, class_stats=None, **params)` builds any of them by name from the config;
called as `loss(logits, target)` with logits (B, C, *spatial) and integer labels (B, *spatial).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicebench.errors import DicebenchError

__all__ = [
    "LOSSES",
    "WEIGHTINGS",
    "LossSpec",
    "LossParam",
    "get_loss",
    "loss_parameters",
    "check_loss_params",
    "dice_gradient_map",
    "shen_weights",
    "gdl_weights",
    "mime_coefficients",
    "frequency_weights",
    "SoftDiceLoss",
    "WeightedDiceLoss",
    "GeneralizedDiceLoss",
    "MimeLoss",
    "CrossEntropyLoss",
    "WeightedCrossEntropyLoss",
    "SensitivitySpecificityLoss",
    "DiceCELoss",
]

# Shen et al. 2018's class weightings (eqs. 3-5), for losses with `uses_weighting`.
WEIGHTINGS = ("uniform", "simple", "square")
_NO_WEIGHTING = (None, "none")
# Arguments the registry supplies, never the config.
_INTERNAL = ("self", "class_stats", "name", "weighting")


@dataclass(frozen=True)
class LossSpec:
    """How a config name maps to a class: `module:Class`, fixed arguments, whether it takes a
    class weighting (Shen et al.'s uniform/simple/square), which class statistics it reads
    (keys of class_stats.json), and the paper it comes from (for the docs table)."""

    target: str
    fixed: dict[str, Any] = field(default_factory=dict)
    uses_weighting: bool = False
    needs_stats: tuple[str, ...] = ()
    source: str = ""

    @property
    def module(self) -> str:
        return f"dicebench.losses.{self.target.split(':')[0]}"

    @property
    def class_name(self) -> str:
        return self.target.split(":")[1]


LOSSES: dict[str, LossSpec] = {
    "dice": LossSpec("dice:SoftDiceLoss", {"squared": False}, source="Kervadec & de Bruijne 2023 eq. (1)"),
    "vnet": LossSpec("dice:SoftDiceLoss", {"squared": True}, source="Milletari et al. 2016; Kervadec eq. (5); Liu & Fu"),
    "gdl": LossSpec("gdl:GeneralizedDiceLoss", source="Sudre et al. 2017; Kervadec eq. (4)"),
    "mime": LossSpec("mime:MimeLoss", needs_stats=("voxels_per_case",), source="Kervadec & de Bruijne 2023 eq. (3)"),
    "weighted_dice": LossSpec("dice:WeightedDiceLoss", uses_weighting=True, needs_stats=("voxels_per_class",),
                              source="Shen et al. 2018 eqs. (3)-(6)"),
    "ce": LossSpec("baselines:CrossEntropyLoss", source="cross-entropy"),
    "wce": LossSpec("baselines:WeightedCrossEntropyLoss", needs_stats=("voxels_per_class",),
                    source="weighted cross-entropy (Sudre et al. 2017's baseline)"),
    "sensitivity_specificity": LossSpec("baselines:SensitivitySpecificityLoss",
                                        source="Brosch et al. 2015 (Sudre et al. 2017's baseline)"),
    "dice_ce": LossSpec("baselines:DiceCELoss", source="nnU-Net's Dice + CE"),
}


@dataclass(frozen=True)
class LossParam:
    """A keyword parameter of a loss class, as its signature declares it."""

    name: str
    annotation: str
    default: Any
    choices: tuple = ()

    def check(self, value: Any) -> str | None:
        """Why `value` does not fit, or None."""
        a = self.annotation
        if self.choices:
            return None if value in self.choices else f"must be one of {', '.join(map(str, self.choices))}"
        if a == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if a in ("float", "int"):
            if isinstance(value, str):  # PyYAML reads 1e-5 as a string; the classes accept it
                try:
                    float(value)
                    return None
                except ValueError:
                    return "must be a number"
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return None if ok else "must be a number"
        if a.startswith("Sequence[float]"):
            ok = value is None or (isinstance(value, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
            return None if ok else "must be a list of numbers"
        if a == "str":
            return None if isinstance(value, str) else "must be a string"
        return None


def _module_constants(tree: ast.Module) -> dict[str, ast.AST]:
    return {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


@functools.cache
def _module_tree(module: str) -> tuple[ast.Module, dict[str, ast.AST], dict[str, str]]:
    """A loss module's AST, its module-level constants and the names it imports from siblings."""
    path = Path(__file__).parent / f"{module.rsplit('.', 1)[-1]}.py"
    tree = ast.parse(path.read_text())
    imports = {alias.asname or alias.name: node.module for node in tree.body
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dicebench.losses")
               for alias in node.names}
    return tree, _module_constants(tree), imports


def _resolve(node: ast.AST, module: str) -> ast.AST:
    """Follow a name to its module-level value (in this module or a sibling it imports from)."""
    seen = 0
    while isinstance(node, ast.Name) and seen < 8:
        _, consts, imports = _module_tree(module)
        if node.id in consts:
            node = consts[node.id]
        elif node.id in imports:
            module = imports[node.id]
            node = ast.Name(node.id)
            _, consts, _ = _module_tree(module)
            node = consts.get(node.id, node)
        else:
            break
        seen += 1
    return node


@functools.cache
def loss_parameters(name: str) -> dict[str, LossParam]:
    """The config-settable parameters of loss `name`, read from its class's signature without
    importing torch: name -> LossParam (annotation text, default, choices of a Literal)."""
    spec = LOSSES[name]
    tree, _, _ = _module_tree(spec.module)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == spec.class_name), None)
    init = next((n for n in (cls.body if cls else []) if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
                None)
    if init is None:
        raise DicebenchError(f"loss registry: {spec.target} has no __init__ in {spec.module}")
    args = init.args.args
    defaults = [None] * (len(args) - len(init.args.defaults)) + list(init.args.defaults)
    out = {}
    for arg, default in zip(args, defaults):
        if arg.arg in _INTERNAL or arg.arg in spec.fixed:
            continue
        annotation = _resolve(arg.annotation, spec.module) if arg.annotation is not None else None
        choices: tuple = ()
        if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Literal":
            choices = tuple(ast.literal_eval(annotation.slice))
            choices = choices if isinstance(choices, tuple) else (choices,)
            text = "str"
        else:
            text = ast.unparse(annotation) if annotation is not None else ""
        value = ast.literal_eval(_resolve(default, spec.module)) if default is not None else None
        out[arg.arg] = LossParam(arg.arg, text, value, choices)
    return out


def check_loss_params(name: str, params: dict, where: str = "") -> None:
    """Refuse an unknown loss, an unknown parameter or a value of the wrong type, naming the key."""
    where = where or f"loss '{name}'"
    if name not in LOSSES:
        raise DicebenchError(f"{where}: unknown loss '{name}'; valid choices: {', '.join(sorted(LOSSES))}")
    allowed = loss_parameters(name)
    for key, value in (params or {}).items():
        if key not in allowed:
            raise DicebenchError(f"{where}.{key}: unknown parameter of loss '{name}'; "
                                 f"valid: {', '.join(sorted(allowed)) or 'none'}")
        problem = allowed[key].check(value)
        if problem:
            raise DicebenchError(f"{where}.{key}: {problem}, got {value!r}")


def get_loss(name: str, class_stats: dict | None = None, **params: Any):
    """The loss `name` with its parameters; unknown names or parameters are a DicebenchError.

    `weighting` is accepted by every loss: `none` (or absent) for losses without a class
    weighting; a real weighting on such a loss is refused rather than silently ignored.
    """
    if name not in LOSSES:
        raise DicebenchError(f"unknown loss '{name}'; valid choices: {', '.join(sorted(LOSSES))}")
    spec = LOSSES[name]
    weighting = params.pop("weighting", None)
    if spec.uses_weighting:
        if weighting in _NO_WEIGHTING:
            raise DicebenchError(
                f"loss '{name}' needs a class weighting (uniform, simple, square), got {weighting!r}"
            )
        params["weighting"] = weighting
    elif weighting not in _NO_WEIGHTING:
        raise DicebenchError(
            f"loss '{name}' takes no class weighting (weighting must be 'none'), got {weighting!r}; "
            "use weighted_dice for Shen et al.'s weightings"
        )
    unknown = sorted(set(params) - set(loss_parameters(name)) - {"weighting"})
    if unknown:
        raise DicebenchError(
            f"loss '{name}': unknown parameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(loss_parameters(name)))}"
        )
    cls = getattr(importlib.import_module(spec.module), spec.class_name)
    kwargs = {**spec.fixed, **params, "name": name}
    if "class_stats" in inspect.signature(cls).parameters:
        kwargs["class_stats"] = class_stats
    return cls(**kwargs)


def markdown_table() -> str:
    """The registry as config/README.md shows it (between its `losses` markers; tests/test_losses.py
    checks they agree): `python -m dicebench.losses` prints it (losses/__main__.py)."""
    lines = ["| loss | class | parameters (default) | class weighting | reads from class_stats.json | from |",
             "|---|---|---|---|---|---|"]
    for name, spec in LOSSES.items():
        params = ", ".join(f"`{p.name}` ({p.default!r})" for p in loss_parameters(name).values()) or "–"
        lines.append(f"| `{name}` | `{spec.class_name}` | {params} | {'uniform/simple/square' if spec.uses_weighting else '–'} "
                     f"| {', '.join(spec.needs_stats) or '–'} | {spec.source} |")
    return "\n".join(lines) + "\n"


# The classes and helpers import torch: loaded on first use, so `import dicebench.losses`
# (the registry) stays cheap for the DAG build.
_LAZY = {
    "SoftDiceLoss": "dice", "WeightedDiceLoss": "dice", "dice_gradient_map": "dice", "shen_weights": "dice",
    "GeneralizedDiceLoss": "gdl", "gdl_weights": "gdl", "MimeLoss": "mime", "mime_coefficients": "mime",
    "CrossEntropyLoss": "baselines", "WeightedCrossEntropyLoss": "baselines",
    "SensitivitySpecificityLoss": "baselines", "DiceCELoss": "baselines", "frequency_weights": "baselines",
}


def __getattr__(attr: str):
    if attr in _LAZY:
        return getattr(importlib.import_module(f"dicebench.losses.{_LAZY[attr]}"), attr)
    raise AttributeError(f"module 'dicebench.losses' has no attribute '{attr}'")
