"""The Mime loss of Kervadec & de Bruijne 2023 eq. (3): a linear loss that mimics the Dice gradient."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dicebench.errors import DicebenchError
from dicebench.losses._common import check_bool, check_num_classes, class_sums, require_stats


def mime_coefficients(class_stats: dict | None, name: str = "mime") -> tuple[torch.Tensor, torch.Tensor]:
    r"""a_k and b_k of eq. (3) from the training set's per-case class counts.

    Reading implemented: the inverse of the MEAN per-case count,
        a_k = |D| / Σ_n |Ω_{y_n}^(k)|,   b_k = |D| / Σ_n (|Ω_n| - |Ω_{y_n}^(k)|),
    i.e. 1 / (mean foreground voxels of class k) and 1 / (mean background voxels of class k).
    The paper typesets |D| outside the sum in the denominator, 1 / (|D| Σ_n ...); the two readings
    differ by the common factor |D|² on both a and b, so the ratio a_k/b_k, the only thing that
    matters under Adam's scale invariance, is the same.
    |Ω_n| is the case's voxel count (sum of its class counts); needs `voxels_per_case`.
    """
    stats = require_stats(class_stats, name, "the coefficients a, b (voxels_per_case)")
    if "voxels_per_case" not in stats or not stats["voxels_per_case"]:
        raise DicebenchError(f"loss '{name}': class statistics lack 'voxels_per_case'")
    per_case = torch.tensor(stats["voxels_per_case"], dtype=torch.float64)  # (N, C)
    if per_case.dim() != 2 or per_case.shape[1] != stats["num_classes"]:
        raise DicebenchError(f"loss '{name}': 'voxels_per_case' must list {stats['num_classes']} counts per case")
    fg = per_case.mean(0)
    bg = (per_case.sum(1, keepdim=True) - per_case).mean(0)
    if (fg <= 0).any() or (bg <= 0).any():
        bad = [k for k in range(per_case.shape[1]) if fg[k] <= 0 or bg[k] <= 0]
        raise DicebenchError(
            f"loss '{name}': class(es) {bad} never appear (or fill every voxel) in the training set, "
            "so a_k or b_k of the Mime loss is infinite"
        )
    return 1.0 / fg, 1.0 / bg


class MimeLoss(nn.Module):
    r"""Mime loss, Kervadec & de Bruijne 2023 eq. (3):

        L = ω_yᵀ s,   ω_y = -y·a + (1 - y)·b,

    summed over voxels and classes of each image, then averaged over the batch (a_k, b_k from
    `mime_coefficients`, or given explicitly as lists `a`, `b`). It is the Dice gradient map of
    eq. (2) frozen at dataset-level values: linear in s, so it needs no smoothing and is finite
    on empty patches. Its minimum over s, -Σ_k a_k |Ω_y^(k)|, is reached at s = y; the range is
    [-Σ_k a_k |Ω_y^(k)|, Σ_k b_k (|Ω| - |Ω_y^(k)|)] (not [0, 1]: values scale with patch size).
    `include_background=False` drops class 0's term.
    """

    def __init__(
        self,
        class_stats: dict | None = None,
        a: Sequence[float] | None = None,
        b: Sequence[float] | None = None,
        include_background: bool = True,
        name: str = "mime",
    ) -> None:
        super().__init__()
        self.name = name
        self.include_background = check_bool(include_background, "include_background", name)
        if (a is None) != (b is None):
            raise DicebenchError(f"loss '{name}': give both 'a' and 'b', or neither")
        if a is None:
            a_t, b_t = mime_coefficients(class_stats, name)
        else:
            a_t = torch.as_tensor(a, dtype=torch.float64)
            b_t = torch.as_tensor(b, dtype=torch.float64)
            if a_t.shape != b_t.shape or a_t.dim() != 1 or (a_t <= 0).any() or (b_t <= 0).any():
                raise DicebenchError(f"loss '{name}': 'a' and 'b' must be equal-length lists of positive numbers")
        self.register_buffer("a", a_t.float(), persistent=False)
        self.register_buffer("b", b_t.float(), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_num_classes(self.a, logits.shape[1], self.name)
        # ωᵀs = Σ_k [b_k Σ_i s_ik - (a_k + b_k) Σ_i y_ik s_ik]: two per-class sums, no dense ω.
        inter, _, pred = class_sums(logits, target, self.name)
        a, b = self.a.to(pred.dtype), self.b.to(pred.dtype)
        per_class = b * pred - (a + b) * inter  # (B, C)
        if not self.include_background:
            per_class = per_class[:, 1:]
        return per_class.sum(1).mean()
