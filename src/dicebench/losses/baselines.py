"""Baselines the papers compare against: cross-entropy, weighted cross-entropy,
Brosch et al. 2015's sensitivity-specificity loss (as in Sudre 2017) and nnU-Net's Dice + CE.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dicebench.errors import DicebenchError
from dicebench.losses._common import (
    check_bool,
    check_inputs,
    check_nonneg,
    check_num_classes,
    probs_and_onehot,
    reduce_dims,
    require_stats,
)
from dicebench.losses.dice import DEFAULT_SMOOTH, SoftDiceLoss


class CrossEntropyLoss(nn.Module):
    r"""Voxel-wise cross-entropy, L = -1/|Ω| Σ_i log s_{i, y_i}, averaged over the batch."""

    def __init__(self, name: str = "ce") -> None:
        super().__init__()
        self.name = name

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_inputs(logits, target, self.name)
        return F.cross_entropy(logits, target.long())


def frequency_weights(class_stats: dict | None, name: str = "wce") -> torch.Tensor:
    r"""Balanced class weights w_k = N / (C·|R_k|) from training-set voxel counts.

    The inverse class frequency, scaled so that a perfectly balanced set has w_k = 1 (the
    "balanced" weight also used by Shen et al.'s W_s, without their ε).
    """
    stats = require_stats(class_stats, name, "class-frequency weights")
    counts = torch.tensor([float(c) for c in stats["voxels_per_class"]], dtype=torch.float64)
    if (counts <= 0).any():
        bad = [k for k, c in enumerate(counts.tolist()) if c <= 0]
        raise DicebenchError(f"loss '{name}': class(es) {bad} never appear in the training set; weight infinite")
    return float(stats["total_voxels"]) / (len(counts) * counts)


class WeightedCrossEntropyLoss(nn.Module):
    r"""Weighted cross-entropy, L = -Σ_i w_{y_i} log s_{i, y_i} / Σ_i w_{y_i}.

    Weights from `frequency_weights` (inverse class frequency over the training set) or given as
    the list `weights`. Normalised by the summed weights of the target voxels (PyTorch's
    convention), so the value stays on the CE scale.
    """

    def __init__(self, class_stats: dict | None = None, weights: Sequence[float] | None = None, name: str = "wce") -> None:
        super().__init__()
        self.name = name
        if weights is None:
            w = frequency_weights(class_stats, name)
        else:
            w = torch.as_tensor(weights, dtype=torch.float64)
            if w.dim() != 1 or (w < 0).any() or not torch.isfinite(w).all():
                raise DicebenchError(f"loss '{name}': 'weights' must be a list of finite numbers >= 0")
        self.register_buffer("weights", w.float(), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_inputs(logits, target, self.name)
        check_num_classes(self.weights, logits.shape[1], self.name)
        return F.cross_entropy(logits, target.long(), weight=self.weights.to(logits.dtype))


class SensitivitySpecificityLoss(nn.Module):
    r"""Sensitivity-specificity loss, Brosch et al. 2015, as compared in Sudre et al. 2017:

        L_k = r · Σ_i (y_ik - s_ik)² y_ik / (Σ_i y_ik + ε)
              + (1 - r) · Σ_i (y_ik - s_ik)² (1 - y_ik) / (Σ_i (1 - y_ik) + ε),

    averaged over classes and images (NiftyNet sums over classes; the mean keeps the range [0, 1]
    for any class count). r = 0.05 (Brosch's sensitivity weight), ε = 1e-5 keeps empty classes
    finite. Perfect prediction gives 0.
    """

    def __init__(
        self,
        r: float = 0.05,
        include_background: bool = True,
        batch_dice: bool = False,
        smooth: float = DEFAULT_SMOOTH,
        name: str = "sensitivity_specificity",
    ) -> None:
        super().__init__()
        self.name = name
        r = check_nonneg(r, "r", name)
        if r > 1:
            raise DicebenchError(f"loss '{name}': parameter 'r' must lie in [0, 1], got {r}")
        self.r = r
        self.include_background = check_bool(include_background, "include_background", name)
        self.batch_dice = check_bool(batch_dice, "batch_dice", name)
        self.smooth = check_nonneg(smooth, "smooth", name)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, onehot = probs_and_onehot(logits, target, self.name)
        if not self.include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        dims = reduce_dims(probs, self.batch_dice)
        sq = (onehot - probs) ** 2
        fg = onehot.sum(dims)
        n = float(probs[0, 0].numel() * (probs.shape[0] if self.batch_dice else 1))
        sens = (sq * onehot).sum(dims) / (fg + self.smooth)
        spec = (sq * (1.0 - onehot)).sum(dims) / (n - fg + self.smooth)
        return (self.r * sens + (1.0 - self.r) * spec).mean()


class DiceCELoss(nn.Module):
    r"""nnU-Net's default loss: L = λ_dice · L_DSC + λ_ce · CE.

    L_DSC is `SoftDiceLoss` (eq. 1 of Kervadec & de Bruijne) with nnU-Net's defaults: background
    excluded, ε = 1e-5. nnU-Net adds -DSC rather than 1 - DSC: same gradient, values shifted
    by λ_dice. `batch_dice` as in nnU-Net's plans (False by default here: per-image Dice like the
    papers). Range [0, ∞).
    """

    def __init__(
        self,
        weight_dice: float = 1.0,
        weight_ce: float = 1.0,
        include_background: bool = False,
        batch_dice: bool = False,
        smooth_nr: float = DEFAULT_SMOOTH,
        smooth_dr: float = DEFAULT_SMOOTH,
        name: str = "dice_ce",
    ) -> None:
        super().__init__()
        self.name = name
        self.weight_dice = check_nonneg(weight_dice, "weight_dice", name)
        self.weight_ce = check_nonneg(weight_ce, "weight_ce", name)
        self.dice = SoftDiceLoss(False, include_background, batch_dice, smooth_nr, smooth_dr, name=name)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dice = self.dice(logits, target)
        ce = F.cross_entropy(logits, target.long())
        return self.weight_dice * dice + self.weight_ce * ce
