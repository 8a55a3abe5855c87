"""Soft Dice (Kervadec & de Bruijne 2023 eq. 1), V-Net Dice (eq. 5 / Liu & Fu 2018) and
Shen et al. 2018's class-weighted Dice (eqs. 3-6), plus the closed-form gradient of eq. (2).
"""

from __future__ import annotations

import torch
from torch import nn

from dicebench.errors import DicebenchError
from dicebench.losses._common import (
    check_bool,
    check_choice,
    check_nonneg,
    check_num_classes,
    class_sums,
    reduce_dims,
    require_stats,
)

DEFAULT_SMOOTH = 1e-5


def per_class_dice_loss(
    probs: torch.Tensor,
    onehot: torch.Tensor,
    squared: bool,
    batch_dice: bool,
    smooth_nr: float,
    smooth_dr: float,
) -> torch.Tensor:
    """1 - (2 Σ y·s + smooth_nr) / (Σ (y + s) + smooth_dr), one value per (image, class).

    Shape (B, C), or (1, C) with `batch_dice` (sums over the batch as nnU-Net's batch Dice).
    With `squared`, the denominator is Σ (y² + s²) (Milletari's V-Net Dice).
    The one-hot form of `SoftDiceLoss.per_class`, for probabilities given directly (gradient
    studies, figures); the module itself uses the faster `class_sums`.
    """
    dims = reduce_dims(probs, batch_dice)
    inter = (onehot * probs).sum(dims)
    if squared:
        denom = (onehot * onehot).sum(dims) + (probs * probs).sum(dims)
    else:
        denom = onehot.sum(dims) + probs.sum(dims)
    loss = 1.0 - (2.0 * inter + smooth_nr) / (denom + smooth_dr)
    return loss.unsqueeze(0) if batch_dice else loss


class SoftDiceLoss(nn.Module):
    r"""Soft Dice loss, Kervadec & de Bruijne 2023 eq. (1), and Milletari's V-Net variant, eq. (5).

    dice:  L = 1/|K| Σ_k [1 - (2 Σ_i y_ik s_ik + ε_n) / (Σ_i (y_ik + s_ik) + ε_d)]
    vnet:  L = 1/|K| Σ_k [1 - (2 Σ_i y_ik s_ik + ε_n) / (Σ_i (y_ik² + s_ik²) + ε_d)]
    The V-Net form is also Liu & Fu 2018's "DSC loss" 1 - 2PᵀR / (‖P‖² + ‖R‖²) applied per class.

    s = softmax(logits) over the channel axis, y = one-hot target. The Dice is computed per
    image and averaged over images and classes (background included by default, as in eq. 1);
    `batch_dice=True` sums over the whole batch first (nnU-Net's batch Dice).
    ε_n = ε_d = 1e-5 by default (the papers have none; they keep an empty class, Σy = Σs = 0,
    from dividing 0 by 0: such a class then scores loss ≈ 0). These defaults equal MONAI's
    `DiceLoss(softmax=True, to_onehot_y=True[, squared_pred=True])`, which this matches to 1e-5.
    Range [0, 1] for ε_n ≤ ε_d.
    """

    def __init__(
        self,
        squared: bool = False,
        include_background: bool = True,
        batch_dice: bool = False,
        smooth_nr: float = DEFAULT_SMOOTH,
        smooth_dr: float = DEFAULT_SMOOTH,
        name: str = "dice",
    ) -> None:
        super().__init__()
        self.name = name
        self.squared = check_bool(squared, "squared", name)
        self.include_background = check_bool(include_background, "include_background", name)
        self.batch_dice = check_bool(batch_dice, "batch_dice", name)
        self.smooth_nr = check_nonneg(smooth_nr, "smooth_nr", name)
        self.smooth_dr = check_nonneg(smooth_dr, "smooth_dr", name)

    def per_class(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss per (image, class), (B, C'); (1, C') with batch Dice."""
        inter, ground, pred = class_sums(logits, target, self.name, self.squared)
        if not self.include_background:
            inter, ground, pred = inter[:, 1:], ground[:, 1:], pred[:, 1:]
        if self.batch_dice:
            inter, ground, pred = inter.sum(0, keepdim=True), ground.sum(0, keepdim=True), pred.sum(0, keepdim=True)
        return 1.0 - (2.0 * inter + self.smooth_nr) / (ground + pred + self.smooth_dr)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.per_class(logits, target).mean()


def dice_gradient_map(
    probs: torch.Tensor,
    onehot: torch.Tensor,
    smooth_nr: float = 0.0,
    smooth_dr: float = 0.0,
) -> torch.Tensor:
    r"""Closed-form ∂L_DSC/∂s of Kervadec & de Bruijne 2023 eq. (2), per image.

    With I_k = Σ_i y_ik s_ik and U_k = Σ_i (y_ik + s_ik):
        ∂/∂s_ik = -2 (U_k - I_k) / U_k²   where y_ik = 1,
                  2 I_k / U_k²            elsewhere,
    i.e. only two values per class: a weighted negative of y (the basis of the Mime loss).
    With smoothing (I → 2I + ε_n in the numerator, U → U + ε_d) the same derivation gives
    -(2(U+ε_d) - (2I+ε_n)) / (U+ε_d)² and (2I+ε_n) / (U+ε_d)².
    As in eq. (2), the 1/|K| of eq. (1) is left out: the gradient of `SoftDiceLoss` (mean over
    B images and C classes) is this map divided by B·C.
    probs, onehot: (B, C, *spatial); returns the same shape.
    """
    dims = tuple(range(2, probs.dim()))
    inter = (onehot * probs).sum(dims, keepdim=True)
    union = (onehot + probs).sum(dims, keepdim=True)
    num = 2.0 * inter + smooth_nr
    den = union + smooth_dr
    fg = -(2.0 * den - num) / den**2
    bg = num / den**2
    return torch.where(onehot > 0.5, fg, bg)


from dicebench.losses import WEIGHTINGS  # noqa: E402 (the registry, torch-free)


def shen_weights(class_stats: dict | None, weighting: str, eps: float = 1.0, name: str = "weighted_dice") -> torch.Tensor | None:
    r"""Class weights of Shen et al. 2018 eqs. (3)-(5), from training-set voxel counts.

    W_u = 1,  W_s = N / (L·|R_l| + ε),  W_q = N / (L·|R_l|² + ε),  ε = 1,
    |R_l| the voxel count of class l over the whole training set (raw counts, as in the paper),
    N the total voxel count, L the number of labels (background included).
    `None` for uniform (no statistics needed).
    """
    if weighting == "uniform":
        return None
    stats = require_stats(class_stats, name, f"weighting '{weighting}'")
    counts = torch.tensor([float(c) for c in stats["voxels_per_class"]], dtype=torch.float64)
    n_total = float(stats["total_voxels"])
    n_labels = float(stats["num_classes"])
    power = 1.0 if weighting == "simple" else 2.0
    return n_total / (n_labels * counts**power + eps)


class WeightedDiceLoss(nn.Module):
    r"""Shen et al. 2018's weighted multi-class Dice, eq. (6): L_MD = 1/L Σ_l w_l L_DSC,l.

    Our reading: L_DSC,l is the per-class soft Dice loss 1 - (2Σ s r + ε_n)/(Σ s + Σ r + ε_d),
    i.e. Shen's eq. (2) -DSC plus 1. The constant shifts the value by (1/L) Σ_l w_l and leaves
    every gradient unchanged, but keeps the loss ≥ 0 (range [0, mean w]).
    w_l from `weighting`: uniform (W_u = 1, then this is exactly `dice`), simple (W_s) or square
    (W_q), computed by `shen_weights` from the training-set class counts with ε = 1. The weights
    are NOT normalised (raw counts give W_q of order 1e-7 on CT volumes, as in the paper, which
    interacts with the learning rate: that interaction is what Shen et al. study);
    `normalize_weights=True` rescales them to mean 1.
    With `include_background=False` the background term is dropped and L counts the remaining
    classes; the weights still use L = all labels, as computed over the dataset.
    """

    def __init__(
        self,
        weighting: str = "uniform",
        class_stats: dict | None = None,
        include_background: bool = True,
        batch_dice: bool = False,
        smooth_nr: float = DEFAULT_SMOOTH,
        smooth_dr: float = DEFAULT_SMOOTH,
        eps: float = 1.0,
        normalize_weights: bool = False,
        name: str = "weighted_dice",
    ) -> None:
        super().__init__()
        self.name = name
        self.weighting = check_choice(weighting, "weighting", WEIGHTINGS, name)
        self.dice = SoftDiceLoss(False, include_background, batch_dice, smooth_nr, smooth_dr, name=name)
        self.eps = check_nonneg(eps, "eps", name)
        normalize = check_bool(normalize_weights, "normalize_weights", name)
        w = shen_weights(class_stats, weighting, self.eps, name)
        if w is not None:
            if not torch.isfinite(w).all():
                raise DicebenchError(f"loss '{name}': class weights are not finite ({w.tolist()})")
            if normalize:
                w = w / w.mean()
        self.register_buffer("weights", None if w is None else w.float(), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_class = self.dice.per_class(logits, target)  # (B, C')
        if self.weights is None:
            return per_class.mean()
        check_num_classes(self.weights, logits.shape[1], self.name)
        w = self.weights.to(per_class.dtype)
        if not self.dice.include_background:
            w = w[1:]
        return (per_class * w).mean()
