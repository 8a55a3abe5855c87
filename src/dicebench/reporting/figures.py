"""Figures. Learning curves in the layout of Shen et al. 2018, Fig. 1: one panel per
(learning rate, weighting/loss), training loss and validation Dice against iteration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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


def _label_cmap(n: int):
    from matplotlib.colors import ListedColormap

    colors = plt.get_cmap("tab10")(range(max(n, 1)))
    colors[0] = (0, 0, 0, 0)  # background transparent
    return ListedColormap(colors)


def pick_slice(label: np.ndarray) -> int:
    """The axial slice with the most foreground (the paper figures show a representative slice)."""
    return int(np.argmax((label > 0).reshape(label.shape[0], -1).sum(axis=1)))


def qualitative(dataset_dir: Path, prediction_dirs: list[Path], outs: list[Path], title: str = "",
                case: str | None = None, render3d: bool = False) -> None:
    """Kervadec & de Bruijne 2023 Fig. 1 / Shen et al. 2018 Figs. 2-4: one test slice with the
    image, the ground truth and each cell's prediction overlaid; with `render3d` a second row of
    3D renderings (marching cubes when scikit-image is present, else voxels)."""
    import SimpleITK as sitk

    from dicebench.io import read_image

    dataset_dir = Path(dataset_dir)
    labels = sorted((dataset_dir / "labelsTs").glob("*.nii.gz"))
    if not labels:
        raise DicebenchError(f"{dataset_dir}/labelsTs: no test labels")
    gt_path = next((p for p in labels if case and p.name.startswith(case + ".")), labels[0])
    case = gt_path.name[: -len(".nii.gz")]
    image = sitk.GetArrayFromImage(read_image(dataset_dir / "imagesTs" / f"{case}_0000.nii.gz")).astype(float)
    gt = sitk.GetArrayFromImage(read_image(gt_path))
    preds = []
    for d in prediction_dirs:
        d = Path(d)
        parts = d.parts  # .../{loss}-{weighting}/lr{lr}/seed{seed}/predictions
        preds.append((f"{parts[-4]} {parts[-3]}", sitk.GetArrayFromImage(read_image(d / f"{case}.nii.gz"))))
    z = pick_slice(gt)
    n_classes = int(max([gt.max()] + [p.max() for _, p in preds])) + 1
    cmap = _label_cmap(n_classes)
    panels = [("image", None), ("ground truth", gt)] + preds
    rows = 2 if render3d else 1
    fig = plt.figure(figsize=(2.6 * len(panels), 2.8 * rows))
    lo, hi = np.percentile(image[z], [1, 99])
    for j, (name, lab) in enumerate(panels):
        ax = fig.add_subplot(rows, len(panels), j + 1)
        ax.imshow(image[z], cmap="gray", vmin=lo, vmax=hi)
        if lab is not None:
            ax.imshow(np.ma.masked_equal(lab[z], 0), cmap=cmap, vmin=0, vmax=n_classes - 1, alpha=0.6,
                      interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.axis("off")
        if render3d and lab is not None:
            _render3d(fig.add_subplot(rows, len(panels), len(panels) + j + 1, projection="3d"), lab, cmap,
                      n_classes)
    fig.suptitle(title or f"{case}, slice {z}", fontsize=9)
    fig.tight_layout()
    save(fig, outs)


def _render3d(ax, lab: np.ndarray, cmap, n_classes: int) -> None:
    step = max(1, int(np.ceil(max(lab.shape) / 32)))  # keep the rendering cheap
    small = lab[::step, ::step, ::step]
    try:
        from skimage.measure import marching_cubes  # type: ignore
    except ModuleNotFoundError:
        marching_cubes = None
    for k in range(1, n_classes):
        mask = small == k
        if mask.sum() < 2:
            continue
        color = cmap(k)
        if marching_cubes is not None:
            verts, faces, _, _ = marching_cubes(mask.astype(float), 0.5)
            ax.plot_trisurf(verts[:, 2], verts[:, 1], faces, verts[:, 0], color=color, lw=0, alpha=0.8)
        else:
            ax.voxels(mask.transpose(2, 1, 0), facecolors=color, edgecolor=None, alpha=0.8)
    ax.set_axis_off()


FIGURES = {"learning-curves": learning_curves}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=sorted(FIGURES) + ["qualitative"])
    p.add_argument("--experiment", default="")
    p.add_argument("--logs", nargs="+", type=Path, default=[], help="learning-curves: the cells' log.csv")
    p.add_argument("--dataset-dir", type=Path, default=None, help="qualitative: the raw dataset folder")
    p.add_argument("--predictions", nargs="+", type=Path, default=[], help="qualitative: the cells' predictions/")
    p.add_argument("--render3d", action="store_true", help="qualitative: add 3D renderings (Shen Figs. 2-4)")
    p.add_argument("--root", type=Path, default=Path("results"))
    p.add_argument("--out", required=True, type=Path, nargs="+", help="one or more of .png / .pdf")


def run(args: argparse.Namespace) -> int:
    if args.kind == "qualitative":
        if args.dataset_dir is None or not args.predictions:
            raise DicebenchError("figures qualitative: give --dataset-dir and --predictions")
        qualitative(args.dataset_dir, args.predictions, args.out, title=f"{args.experiment}: qualitative results",
                    render3d=args.render3d)
        return 0
    if not args.logs:
        raise DicebenchError("figures learning-curves: give --logs")
    FIGURES[args.kind](args.logs, args.out, title=f"{args.experiment}: learning curves")
    return 0
