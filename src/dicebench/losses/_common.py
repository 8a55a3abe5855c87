"""Shared plumbing for the losses: softmax + one-hot, reduction axes, dataset statistics.

Kept apart from the losses so that each loss module reads as its paper's equation.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from dicebench.errors import DicebenchError


def probs_and_onehot(logits: torch.Tensor, target: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over channels and a one-hot target of the same dtype and shape.

    logits (B, C, *spatial) float, target (B, *spatial) integer labels in [0, C).
    A shape or label mismatch is a configuration problem (wrong number of classes),
    hence a DicebenchError rather than an opaque indexing error.
    """
    check_inputs(logits, target, name)
    probs = torch.softmax(logits, dim=1)
    onehot = torch.zeros_like(probs).scatter_(1, target.unsqueeze(1).long(), 1.0)
    return probs, onehot


def check_inputs(logits: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if logits.dim() < 3:
        raise DicebenchError(f"loss '{name}': logits must be (B, C, *spatial), got shape {tuple(logits.shape)}")
    if target.dim() == logits.dim() and target.shape[1] == 1:
        raise DicebenchError(
            f"loss '{name}': target must be integer labels (B, *spatial) without a channel axis, got {tuple(target.shape)}"
        )
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise DicebenchError(
            f"loss '{name}': target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)} "
            "(expected (B, *spatial))"
        )
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise DicebenchError(f"loss '{name}': target must hold integer labels, got dtype {target.dtype}")
    if target.numel():
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= logits.shape[1]:
            raise DicebenchError(
                f"loss '{name}': target labels span [{lo}, {hi}] but logits have {logits.shape[1]} classes"
            )


def reduce_dims(x: torch.Tensor, batch_dice: bool) -> tuple[int, ...]:
    """Axes summed into one Dice: the spatial axes, plus the batch axis for nnU-Net's batch Dice."""
    spatial = tuple(range(2, x.dim()))
    return ((0,) + spatial) if batch_dice else spatial


def check_bool(value: Any, param: str, name: str) -> bool:
    if not isinstance(value, bool):
        raise DicebenchError(f"loss '{name}': parameter '{param}' must be true or false, got {value!r}")
    return value


def check_nonneg(value: Any, param: str, name: str) -> float:
    """A number >= 0. Numeric strings are accepted: PyYAML reads `1e-5` (no dot) as a string."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise DicebenchError(f"loss '{name}': parameter '{param}' must be a number >= 0, got {value!r}")
    return float(value)


def check_choice(value: Any, param: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise DicebenchError(
            f"loss '{name}': parameter '{param}' must be one of {', '.join(choices)}, got {value!r}"
        )
    return value


def require_stats(class_stats: dict | None, name: str, what: str) -> dict:
    """Dataset statistics, as written by `dicebench class-stats`; losses needing them cannot guess."""
    if class_stats is None:
        raise DicebenchError(
            f"loss '{name}' needs dataset class statistics for {what}: run `dicebench class-stats` "
            "and pass its JSON as class_stats"
        )
    for key in ("num_classes", "voxels_per_class", "total_voxels"):
        if key not in class_stats:
            raise DicebenchError(f"loss '{name}': class statistics lack the key '{key}'")
    if len(class_stats["voxels_per_class"]) != class_stats["num_classes"]:
        raise DicebenchError(f"loss '{name}': class statistics list {len(class_stats['voxels_per_class'])} "
                             f"voxel counts for {class_stats['num_classes']} classes")
    return class_stats


def check_num_classes(weights: torch.Tensor | None, channels: int, name: str) -> None:
    if weights is not None and weights.numel() != channels:
        raise DicebenchError(
            f"loss '{name}': class statistics describe {weights.numel()} classes but the network outputs {channels}"
        )


def class_sums(
    logits: torch.Tensor, target: torch.Tensor, name: str, squared: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image, per-class sums (B, C) of the soft Dice family, without a dense one-hot:

    inter_k = Σ_i y_ik s_ik (gather the true-class probability, scatter-add it per class),
    ground_k = Σ_i y_ik (= Σ y², a bincount of the labels, no gradient),
    pred_k = Σ_i s_ik, or Σ_i s_ik² with `squared` (V-Net).
    Same values as the one-hot products, in about a third fewer full-size passes, which is
    what puts the losses on par with MONAI in bench/bench_losses.py.
    """
    check_inputs(logits, target, name)
    probs = torch.softmax(logits, dim=1)
    b, c = probs.shape[:2]
    flat = probs.reshape(b, c, -1)
    idx = target.reshape(b, -1).long()
    s_true = flat.gather(1, idx.unsqueeze(1)).squeeze(1)
    inter = torch.zeros((b, c), dtype=probs.dtype, device=probs.device).scatter_add(1, idx, s_true)
    offsets = torch.arange(b, device=idx.device).unsqueeze(1) * c
    ground = (idx + offsets).flatten().bincount(minlength=b * c).view(b, c).to(probs.dtype)
    pred = (flat * flat).sum(2) if squared else flat.sum(2)
    return inter, ground, pred
