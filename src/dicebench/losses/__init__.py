"""The Dice-loss family studied by the four papers, each written from its paper's equation.

`get_loss(name, class_stats=None, **params)` builds any of them by name from the config;
called as `loss(logits, target)` with logits (B, C, *spatial) and integer labels (B, *spatial).
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

from torch import nn

from dicebench.errors import DicebenchError
from dicebench.losses.baselines import (
    CrossEntropyLoss,
    DiceCELoss,
    SensitivitySpecificityLoss,
    WeightedCrossEntropyLoss,
    frequency_weights,
)
from dicebench.losses.dice import SoftDiceLoss, WeightedDiceLoss, dice_gradient_map, shen_weights
from dicebench.losses.gdl import GeneralizedDiceLoss, gdl_weights
from dicebench.losses.mime import MimeLoss, mime_coefficients

__all__ = [
    "LOSSES",
    "get_loss",
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

_NO_WEIGHTING = (None, "none")


class LossSpec(NamedTuple):
    """How a config name maps to a module: its class, fixed arguments, whether it is weighted."""

    cls: type[nn.Module]
    fixed: dict[str, Any]
    uses_weighting: bool
    needs: str  # what statistics it reads from class_stats, for the docs ("" if none)


LOSSES: dict[str, LossSpec] = {
    "dice": LossSpec(SoftDiceLoss, {"squared": False, "name": "dice"}, False, ""),
    "vnet": LossSpec(SoftDiceLoss, {"squared": True, "name": "vnet"}, False, ""),
    "gdl": LossSpec(GeneralizedDiceLoss, {}, False, ""),
    "mime": LossSpec(MimeLoss, {}, False, "voxels_per_case"),
    "weighted_dice": LossSpec(WeightedDiceLoss, {}, True, "voxels_per_class (simple, square)"),
    "ce": LossSpec(CrossEntropyLoss, {}, False, ""),
    "wce": LossSpec(WeightedCrossEntropyLoss, {}, False, "voxels_per_class"),
    "sensitivity_specificity": LossSpec(SensitivitySpecificityLoss, {}, False, ""),
    "dice_ce": LossSpec(DiceCELoss, {}, False, ""),
}


def _param_names(spec: LossSpec) -> set[str]:
    sig = inspect.signature(spec.cls)
    return {n for n in sig.parameters if n not in ("class_stats", "name", *spec.fixed)}


def get_loss(name: str, class_stats: dict | None = None, **params: Any) -> nn.Module:
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
    allowed = _param_names(spec)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise DicebenchError(
            f"loss '{name}': unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}"
        )
    kwargs = dict(spec.fixed, **params)
    if "class_stats" in inspect.signature(spec.cls).parameters:
        kwargs["class_stats"] = class_stats
    return spec.cls(**kwargs)
