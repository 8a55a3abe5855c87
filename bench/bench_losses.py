"""Forward + backward time of each Dice variant beside MONAI's counterpart, same run, same input.

    .venv/bin/python bench/bench_losses.py [--quick] [--threads N]

Prints median milliseconds over repeats (ours and MONAI interleaved, so both see the same machine
load), the ratio ours/MONAI of the medians and of the minima (the minimum is the steadier
estimate on a shared machine): below 1 means faster. Not a test: no assertion on time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from monai.losses import DiceLoss, GeneralizedDiceLoss

from dicebench.losses import get_loss


def time_fwd_bwd(loss, logits: torch.Tensor, target: torch.Tensor) -> float:
    x = logits.detach().requires_grad_(True)
    t0 = time.perf_counter()
    loss(x, target).backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="(2, 8, 32, 32, 32) and 5 repeats")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape = (2, 8, 32, 32, 32) if args.quick else (2, 8, 64, 64, 64)
    repeats = args.repeats or (5 if args.quick else 11)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=g, dtype=torch.float32)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    target_ch = target.unsqueeze(1)
    counts = torch.bincount(target.flatten(), minlength=shape[1]).tolist()
    stats = {"num_classes": shape[1], "voxels_per_class": counts, "total_voxels": sum(counts),
             "voxels_per_case": [torch.bincount(t.flatten(), minlength=shape[1]).tolist() for t in target]}
    w_square = get_loss("weighted_dice", class_stats=stats, weighting="square").weights
    pairs = [
        ("dice", get_loss("dice"), DiceLoss(softmax=True, to_onehot_y=True)),
        ("vnet", get_loss("vnet"), DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True)),
        ("gdl (square)", get_loss("gdl"), GeneralizedDiceLoss(softmax=True, to_onehot_y=True)),
        ("weighted_dice (square)", get_loss("weighted_dice", class_stats=stats, weighting="square"),
         DiceLoss(softmax=True, to_onehot_y=True, weight=w_square)),
        ("mime", get_loss("mime", class_stats=stats), None),
        ("dice_ce", get_loss("dice_ce"), None),
    ]
    print(f"shape {shape} float32, CPU, torch threads {args.threads}, median of {repeats} (ms)")
    print(f"{'loss':<24}{'ours':>10}{'MONAI':>10}{'ours/MONAI':>12}{'min ratio':>11}")
    for _, ours, ref in pairs:  # warm every path first: the allocator's first big blocks are slow
        for _ in range(2):
            time_fwd_bwd(ours, logits, target)
            if ref is not None:
                time_fwd_bwd(ref, logits, target_ch)
    for name, ours, ref in pairs:
        t_ours, t_ref = [], []
        for i in range(repeats):  # alternate who goes first
            if ref is not None and i % 2:
                t_ref.append(time_fwd_bwd(ref, logits, target_ch))
            t_ours.append(time_fwd_bwd(ours, logits, target))
            if ref is not None and not i % 2:
                t_ref.append(time_fwd_bwd(ref, logits, target_ch))
        mo = statistics.median(t_ours) * 1e3
        if ref is None:
            print(f"{name:<24}{mo:>10.1f}{'-':>10}{'-':>12}{'-':>11}")
        else:
            mr = statistics.median(t_ref) * 1e3
            print(f"{name:<24}{mo:>10.1f}{mr:>10.1f}{mo / mr:>12.2f}{min(t_ours) / min(t_ref):>11.2f}")


if __name__ == "__main__":
    main()
