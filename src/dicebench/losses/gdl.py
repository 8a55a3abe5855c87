"""Generalised Dice loss (Sudre et al. 2017; Kervadec & de Bruijne 2023 eq. 4)."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from dicebench.losses._common import check_bool, check_choice, check_nonneg, class_sums
from dicebench.losses.dice import DEFAULT_SMOOTH

WType = Literal["square", "simple", "uniform"]
EmptyPolicy = Literal["max", "epsilon", "zero"]
W_TYPES = get_args(WType)
EMPTY_POLICIES = get_args(EmptyPolicy)


def gdl_weights(ground: torch.Tensor, w_type: str, empty_policy: str, weight_eps: float, batch_dice: bool) -> torch.Tensor:
    """Class weights w_k from the per-class target volumes `ground` (B, C) or (1, C).

    square: 1/(Σy)², simple: 1/Σy, uniform: 1. A class absent from the target (Σy = 0) gives
    an infinite weight, handled by `empty_policy`:
      max     -> the largest finite weight of the same sample (NiftyNet's policy; MONAI applies it
                 per sample, or over the whole batch with batch Dice). Default.
      epsilon -> 1/(Σy + weight_eps)^p, Kervadec's code (weight_eps = 1e-10): the absent class's
                 weight explodes to ~1e20 and dominates the denominator.
      zero    -> weight 0: the absent class is dropped from both sums.
    """
    if w_type == "uniform":
        return torch.ones_like(ground)
    power = 2.0 if w_type == "square" else 1.0
    if empty_policy == "epsilon":
        return 1.0 / (ground + weight_eps) ** power
    w = 1.0 / ground**power
    infs = torch.isinf(w)
    w = w.masked_fill(infs, 0.0)
    if empty_policy == "max":
        fill = w.max() if batch_dice else w.max(dim=1, keepdim=True).values
        w = w + infs * fill
    return w


class GeneralizedDiceLoss(nn.Module):
    r"""Generalised Dice loss, Sudre et al. 2017; Kervadec & de Bruijne 2023 eq. (4):

        L = 1 - (2 Σ_k w_k Σ_i y_ik s_ik + ε_n) / (Σ_k w_k Σ_i (y_ik + s_ik) + ε_d),
        w_k = 1 / (Σ_i y_ik)²   (w_type="square", the paper's; "simple" 1/Σy, "uniform" 1)

    computed per image and averaged over the batch (`batch_dice=True`: one GDL over the batch).
    Absent classes: see `gdl_weights` (`empty_policy` max | epsilon | zero; default max, as
    NiftyNet and MONAI): the sub-patching experiment compares these policies.
    ε_n = ε_d = 1e-5 (the paper has none). With the default policy this equals MONAI's
    `GeneralizedDiceLoss(softmax=True, to_onehot_y=True, w_type=...)`. Range [0, 1].
    """

    def __init__(
        self,
        w_type: WType = "square",
        empty_policy: EmptyPolicy = "max",
        weight_eps: float = 1e-10,
        include_background: bool = True,
        batch_dice: bool = False,
        smooth_nr: float = DEFAULT_SMOOTH,
        smooth_dr: float = DEFAULT_SMOOTH,
        name: str = "gdl",
    ) -> None:
        super().__init__()
        self.name = name
        self.w_type = check_choice(w_type, "w_type", W_TYPES, name)
        self.empty_policy = check_choice(empty_policy, "empty_policy", EMPTY_POLICIES, name)
        self.weight_eps = check_nonneg(weight_eps, "weight_eps", name)
        self.include_background = check_bool(include_background, "include_background", name)
        self.batch_dice = check_bool(batch_dice, "batch_dice", name)
        self.smooth_nr = check_nonneg(smooth_nr, "smooth_nr", name)
        self.smooth_dr = check_nonneg(smooth_dr, "smooth_dr", name)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        inter, ground, pred = class_sums(logits, target, self.name)
        if not self.include_background:
            inter, ground, pred = inter[:, 1:], ground[:, 1:], pred[:, 1:]
        if self.batch_dice:
            inter, ground, pred = inter.sum(0, keepdim=True), ground.sum(0, keepdim=True), pred.sum(0, keepdim=True)
        union = ground + pred
        w = gdl_weights(ground, self.w_type, self.empty_policy, self.weight_eps, self.batch_dice)
        numer = 2.0 * (w * inter).sum(1) + self.smooth_nr
        denom = (w * union).sum(1) + self.smooth_dr
        return (1.0 - numer / denom).mean()
