"""Figures. Learning curves in the layout of Shen et al. 2018, Fig. 1: one panel per
(learning rate, weighting/loss), training loss and validation Dice against iteration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from dicebench.errors import DicebenchError  # noqa: E402
from dicebench.io import atomic_path  # noqa: E402


def load_logs(log_paths: list[Path]) -> pd.DataFrame:
    frames = []
    for path in log_paths:
        path = Path(path)
        try:
            settings = json.loads((path.parent / "cell.json").read_text())["settings"]
        except (OSError, KeyError, json.JSONDecodeError):
            settings = {}
        try:
            df = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DicebenchError(f"{path}: cannot read training log ({exc})") from None
        parts = path.parent.parts  # .../{dataset}/{network}/{loss}-{weighting}/lr{lr}/seed{seed}
        df = df.assign(dataset=settings.get("dataset", parts[-5]), network=settings.get("network", parts[-4]),
                       variant=parts[-3], lr=parts[-2][2:], seed=parts[-1][4:])
        frames.append(df)
    if not frames:
        raise DicebenchError("no training logs given")
    return pd.concat(frames, ignore_index=True)


def save(fig, outs: list[Path], dpi: int = 110) -> None:
    """Write one figure to every path given (PNG for the report, PDF for the paper), atomically."""
    for out in outs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)


def learning_curves(log_paths: list[Path], out: Path | list[Path], title: str = "") -> None:
    logs = load_logs(log_paths)
    lrs = sorted(logs["lr"].unique(), key=float)
    variants = list(dict.fromkeys(logs["variant"]))
    fig, axes = plt.subplots(len(lrs), len(variants), figsize=(3.2 * len(variants), 2.6 * len(lrs)),
                             squeeze=False, sharex=True)
    for i, lr in enumerate(lrs):
        for j, variant in enumerate(variants):
            ax = axes[i][j]
            sub = logs[(logs["lr"] == lr) & (logs["variant"] == variant)]
            ax2 = ax.twinx()
            for (ds, net, seed), g in sub.groupby(["dataset", "network", "seed"]):
                ax.plot(g["iteration"], g["train_loss"], color="tab:red", alpha=0.8, label="training loss")
                ax2.plot(g["iteration"], g["val_dice"], color="tab:blue", marker="o", ms=3, alpha=0.8,
                         label=f"validation DSC ({ds})")
            ax.set_title(f"lr = {lr}, {variant}", fontsize=9)
            ax2.set_ylim(0, 1)
            if j == 0:
                ax.set_ylabel("training loss", color="tab:red")
            if j == len(variants) - 1:
                ax2.set_ylabel("validation DSC", color="tab:blue")
            if i == len(lrs) - 1:
                ax.set_xlabel("iteration")
    fig.suptitle(title or "Learning curves")
    fig.tight_layout()
    save(fig, out if isinstance(out, list) else [out])


FIGURES = {"learning-curves": learning_curves}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=sorted(FIGURES))
    p.add_argument("--experiment", default="")
    p.add_argument("--logs", nargs="+", type=Path, required=True)
    p.add_argument("--root", type=Path, default=Path("results"))
    p.add_argument("--out", required=True, type=Path, nargs="+", help="one or more of .png / .pdf")


def run(args: argparse.Namespace) -> int:
    FIGURES[args.kind](args.logs, args.out, title=f"{args.experiment}: learning curves")
    return 0
