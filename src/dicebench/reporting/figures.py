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
                v = g.dropna(subset=["val_dice"])  # validation runs less often than the loss is logged
                ax2.plot(v["iteration"], v["val_dice"], color="tab:blue", marker="o", ms=3, alpha=0.8,
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


def dice_gradient_autograd(probs, onehot):
    """dL/ds of the soft Dice loss, eq. (1) of Kervadec & de Bruijne 2023, read from autograd and
    multiplied by |K| (eq. (2) leaves the 1/|K| out). probs, onehot: (K, *spatial) tensors."""
    import torch

    s = probs.detach().clone().requires_grad_(True)
    dims = tuple(range(1, s.dim()))
    inter = (onehot * s).sum(dims)
    union = (onehot + s).sum(dims)
    loss = (1 - 2 * inter / union).mean()
    (grad,) = torch.autograd.grad(loss, s)
    return grad * s.shape[0]


def gradient_map(model_path: Path, data_dir: Path, outs: list[Path], title: str = "", case: str | None = None) -> dict:
    """Kervadec & de Bruijne 2023 eq. (2) on a real prediction: the gradient of the Dice loss with
    respect to the softmax on one test slice takes two values per class (a negative of y).

    Returns {class: (value where y=1, value where y=0, max |autograd - closed form|)}."""
    import SimpleITK as sitk
    import torch

    from dicebench.inference.predict import load_model, predict_probabilities
    from dicebench.io import read_image
    from dicebench.losses import dice_gradient_map

    torch.set_num_threads(1)
    data_dir = Path(data_dir)
    labels = sorted((data_dir / "labelsTs").glob("*.nii.gz"))
    if not labels:
        raise DicebenchError(f"{data_dir}/labelsTs: no test labels")
    gt_path = next((p for p in labels if case and p.name.startswith(case + ".")), labels[0])
    case = gt_path.name[: -len(".nii.gz")]
    model, meta = load_model(model_path)
    model.eval()
    channels = [sitk.GetArrayFromImage(read_image(data_dir / "imagesTs" / f"{case}_{c:04d}.nii.gz"))
                for c in range(int(meta["in_channels"]))]
    image = np.stack(channels).astype(np.float32)
    gt = sitk.GetArrayFromImage(read_image(gt_path)).astype(np.int64)
    probs = predict_probabilities(model, image, meta["patch_size"], 0.5, 4, "cpu")
    z = pick_slice(gt)
    k = probs.shape[0]
    s = torch.from_numpy(np.ascontiguousarray(probs[:, z])).double()
    y = torch.nn.functional.one_hot(torch.from_numpy(gt[z]).clamp(0, k - 1), k).movedim(-1, 0).double()
    grad = dice_gradient_autograd(s, y)
    closed = dice_gradient_map(s[None], y[None])[0]
    names = {int(v): n for n, v in meta.get("labels", {}).items()} if isinstance(meta.get("labels"), dict) else {}
    fig, axes = plt.subplots(1, k + 1, figsize=(2.6 * (k + 1), 2.8), squeeze=False)
    axes = axes[0]
    lo, hi = np.percentile(image[0, z], [1, 99])
    axes[0].imshow(image[0, z], cmap="gray", vmin=lo, vmax=hi)
    axes[0].set_title(f"{case}, slice {z}", fontsize=8)
    values = {}
    for c in range(k):
        g = grad[c].numpy()
        m = y[c].numpy() > 0.5
        a = float(g[m].mean()) if m.any() else float("nan")
        b = float(g[~m].mean()) if (~m).any() else float("nan")
        err = float((grad[c] - closed[c]).abs().max())
        name = names.get(c, f"class {c}")
        values[name] = (a, b, err)
        lim = float(np.abs(g).max()) or 1.0
        axes[c + 1].imshow(g, cmap="RdBu", vmin=-lim, vmax=lim)
        axes[c + 1].set_title(f"{name}\ny=1: {a:.2e}  y=0: {b:.2e}", fontsize=7)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title or "Dice loss gradient (Kervadec & de Bruijne 2023, eq. 2)", fontsize=9)
    fig.tight_layout()
    save(fig, outs)
    return values


def window_sums(mask: np.ndarray, patch: tuple[int, ...], stride: tuple[int, ...]) -> np.ndarray:
    """Sum of `mask` in every window of shape `patch` placed at multiples of `stride` (summed-area table)."""
    c = np.pad(mask.astype(np.int64), [(1, 0)] * mask.ndim).cumsum(0)
    for ax in range(1, mask.ndim):
        c = c.cumsum(ax)
    starts = [np.arange(0, n - p + 1, st) for n, p, st in zip(mask.shape, patch, stride)]
    total = 0
    for corner in np.ndindex(*(2,) * mask.ndim):  # inclusion-exclusion over the window's corners
        idx = np.ix_(*[st + (p if bit else 0) for st, p, bit in zip(starts, patch, corner)])
        sign = (-1) ** (mask.ndim - sum(corner))
        total = total + sign * c[idx]
    return total


def empty_patch_share(labels: list[np.ndarray], patch: tuple[int, ...], n_classes: int) -> np.ndarray:
    """Share of patches (stride = half the patch) in which each class is absent, over the volumes.
    A 2D patch is taken in each axial slice (depth 1), as the 2D trainers sample."""
    patch3 = (1, *patch) if len(patch) == 2 else tuple(patch)
    empty = np.zeros(n_classes)
    count = 0
    for lab in labels:
        # A patch larger than the volume is padded with background, as the trainer pads.
        lab = np.pad(lab, [(0, max(0, p - n)) for p, n in zip(patch3, lab.shape)])
        stride = tuple(max(1, p // 2) for p in patch3)
        for k in range(n_classes):
            sums = window_sums(lab == k, patch3, stride)
            empty[k] += np.count_nonzero(sums == 0)
        count += sums.size
    return empty / count if count else np.full(n_classes, np.nan)


def subpatch_points(per_case_paths: list[Path]) -> pd.DataFrame:
    """One row per trained cell and object class (and `all`, their mean per case): the cell's
    training patch, its line (`tables.loss_variant`), mean test DSC, and the share of its training
    patches that lacked the class (recorded by the trainer in cell.json)."""
    from dicebench.grid import patch_label
    from dicebench.reporting.results import loss_variant, read_cell

    rows = []
    for path in per_case_paths:
        cases, cell = read_cell(Path(path), "per-case metrics")
        settings = cell["settings"]
        objects = cases[cases["class_index"] > 0]
        if objects.empty:
            continue
        patch = settings["recipe"]["patch_size"]
        shares = cell.get("empty_patch_share") or {}
        per_class = objects.groupby("class", sort=False)["dsc"]
        means = {**per_class.mean().to_dict(), "all": objects.groupby("case")["dsc"].mean().mean()}
        for cls, dsc in means.items():
            share = (np.mean([shares[c] for c in per_class.groups if shares.get(c) is not None])
                     if cls == "all" and shares else shares.get(cls))
            rows.append({"patch": patch_label(patch), "voxels": int(np.prod(patch)),
                         "variant": loss_variant(settings), "seed": settings.get("seed", 0), "class": cls,
                         "dsc": float(dsc), "n_cases": int(objects["case"].nunique()),
                         "empty_share_trained": np.nan if share is None else float(share)})
    return pd.DataFrame(rows, columns=["patch", "voxels", "variant", "seed", "class", "dsc", "n_cases",
                                       "empty_share_trained"])


def subpatch_sweep(data_dir: Path, patches: list[tuple[int, ...]], per_case_paths: list[Path], outs: list[Path],
                   title: str = "", configured: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Kervadec & de Bruijne 2023 Sec. 2: smaller patches -> more patches without a class -> the
    Dice variants divide by zero, while Mime is said to be unaffected.

    Left: the share of training patches without each class against patch size, read from the
    training labels (lines, half-overlapping windows) and as the trained cells actually drew
    them (markers). Right: each loss's test DSC over the object classes against the training
    patch size of the cells the workflow trained (GDL once per empty-class policy). The table
    has one row per (patch, class, line): DSC averaged over seeds, both empty shares."""
    import SimpleITK as sitk

    from dicebench.grid import patch_label
    from dicebench.io import read_image

    data_dir = Path(data_dir)
    files = sorted((data_dir / "labelsTr").glob("*.nii.gz"))
    if not files:
        raise DicebenchError(f"{data_dir}/labelsTr: no training labels")
    meta = json.loads((data_dir / "dataset.json").read_text()) if (data_dir / "dataset.json").exists() else {}
    names = {int(v): k for k, v in meta.get("labels", {}).items()}
    labels = [sitk.GetArrayFromImage(read_image(f)) for f in files]
    n_classes = max(int(max(lab.max() for lab in labels)) + 1, len(names))
    scan = []
    for patch in patches:
        share = empty_patch_share(labels, tuple(patch), n_classes)
        for k in range(1, n_classes):
            scan.append({"patch": patch_label(patch), "voxels": int(np.prod(patch)),
                         "class": names.get(k, str(k)), "empty_share_scan": share[k]})
    scan = pd.DataFrame(scan)
    points = subpatch_points(per_case_paths)
    trained = (points.groupby(["patch", "voxels", "variant", "class"], sort=False)
               .agg(dsc=("dsc", "mean"), dsc_sd=("dsc", "std"), seeds=("seed", "nunique"),
                    n_cases=("n_cases", "sum"), empty_share_trained=("empty_share_trained", "mean"))
               .reset_index())
    table = scan.merge(trained, on=["patch", "voxels", "class"], how="outer")
    table = table.sort_values(["voxels", "variant", "class"], na_position="first", kind="stable")
    table = table[["patch", "voxels", "class", "variant", "empty_share_scan", "empty_share_trained", "dsc",
                   "dsc_sd", "seeds", "n_cases"]].reset_index(drop=True)

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    colours = {}
    for cls, g in scan.groupby("class", sort=False):
        line, = axes[0].plot(g["voxels"], g["empty_share_scan"], marker=".", label=f"{cls} (labels)")
        colours[cls] = line.get_color()
    drawn = points[points["class"] != "all"].groupby(["voxels", "class"], sort=False)["empty_share_trained"].mean()
    for (vox, cls), share in drawn.dropna().items():
        axes[0].plot([vox], [share], marker="x", ms=8, ls="none", color=colours.get(cls, "k"))
    if not drawn.dropna().empty:
        axes[0].plot([], [], marker="x", ls="none", color="k", label="drawn in training")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("patch size (voxels)")
    axes[0].set_ylabel("share of patches without the class")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7)
    overall = trained[trained["class"] == "all"]
    if overall.empty:
        axes[1].text(0.5, 0.5, "no trained cells", ha="center", transform=axes[1].transAxes)
    for variant, g in overall.groupby("variant", sort=False):
        g = g.sort_values("voxels")
        style = "--" if variant.startswith("gdl (") and variant != "gdl (max)" else "-"
        axes[1].errorbar(g["voxels"], 100 * g["dsc"], yerr=100 * g["dsc_sd"].fillna(0), marker="o", ls=style,
                         capsize=2, label=variant)
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("training patch size (voxels)")
    axes[1].set_ylabel("test DSC (%), object classes")
    axes[1].set_ylim(0, 100)
    if not overall.empty:
        axes[1].legend(fontsize=7)
    for ax in axes:
        if configured is not None:
            ax.axvline(int(np.prod(configured)), color="grey", ls=":", lw=1)
        ticks = sorted(set(scan["voxels"]) | set(overall["voxels"]))
        ax.set_xticks(ticks, [table.loc[table["voxels"] == v, "patch"].iloc[0] for v in ticks], fontsize=7,
                      rotation=30)
        ax.minorticks_off()
    fig.suptitle(title or "Sub-patching and empty patches", fontsize=9)
    fig.tight_layout()
    save(fig, outs)
    return table


def lr_sensitivity(cases_csv: Path, outs: list[Path], title: str = "") -> pd.DataFrame:
    """Sudre et al. 2017: DSC over the object classes against the learning rate, one line per loss,
    one panel per imbalance level (dataset; its rarest present class's voxel share)."""
    from dicebench.reporting.results import case_values, imbalance_level, load_cases

    cases = load_cases([cases_csv])
    if cases.empty:
        raise DicebenchError(f"{cases_csv}: no cases")
    rows = []
    for ds in dict.fromkeys(cases["dataset"]):
        level = imbalance_level(cases, ds)
        for loss in dict.fromkeys(cases["loss"]):
            for lr in sorted(set(cases.loc[(cases["dataset"] == ds) & (cases["loss"] == loss), "lr"]), key=float):
                v = case_values(cases, "all", dataset=ds, loss=loss, lr=lr)
                rows.append({"level": level, "loss": loss, "lr": float(lr), "dsc": 100 * float(v.mean()),
                             "sd": 100 * float(v.std(ddof=1)) if len(v) > 1 else 0.0})
    table = pd.DataFrame(rows)
    levels = list(dict.fromkeys(table["level"]))
    fig, axes = plt.subplots(1, len(levels), figsize=(3.6 * len(levels), 3.2), squeeze=False)
    for ax, level in zip(axes[0], levels):
        for loss, g in table[table["level"] == level].groupby("loss", sort=False):
            ax.errorbar(g["lr"], g["dsc"], yerr=g["sd"], marker="o", capsize=2, label=loss)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_title(level, fontsize=8)
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("test DSC (%), object classes")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title or "Learning-rate sensitivity by imbalance level", fontsize=9)
    fig.tight_layout()
    save(fig, outs)
    return table


FIGURES = {"learning-curves": learning_curves}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=sorted(FIGURES) + ["qualitative", "gradient-map", "subpatch",
                                                       "lr-sensitivity"])
    p.add_argument("--patches", nargs="+", default=[], help="subpatch: patch sizes as 64x64 or 32x32x32")
    p.add_argument("--configured", default=None, help="subpatch: the experiment's patch size (64x64)")
    p.add_argument("--cases", type=Path, default=None, help="lr-sensitivity: the experiment's cases.csv")
    p.add_argument("--per-case", nargs="*", type=Path, default=[],
                   help="subpatch: the trained cells' per_case.csv (cell.json beside each)")
    p.add_argument("--table", type=Path, default=None, help="subpatch, lr-sensitivity: also write the table (CSV)")
    p.add_argument("--dataset", default=None, help="subpatch: the dataset (for the title)")
    p.add_argument("--model", type=Path, default=None, help="gradient-map: a dice cell's model.pt")
    p.add_argument("--data-dir", type=Path, default=None, help="gradient-map: the preprocessed data folder")
    p.add_argument("--experiment", default="")
    p.add_argument("--logs", nargs="+", type=Path, default=[], help="learning-curves: the cells' log.csv")
    p.add_argument("--dataset-dir", type=Path, default=None, help="qualitative: the raw dataset folder")
    p.add_argument("--predictions", nargs="+", type=Path, default=[], help="qualitative: the cells' predictions/")
    p.add_argument("--render3d", action="store_true", help="qualitative: add 3D renderings (Shen Figs. 2-4)")
    p.add_argument("--out", required=True, type=Path, nargs="+", help="one or more of .png / .pdf")


def run(args: argparse.Namespace) -> int:
    if args.kind == "qualitative":
        if args.dataset_dir is None or not args.predictions:
            raise DicebenchError("figures qualitative: give --dataset-dir and --predictions")
        qualitative(args.dataset_dir, args.predictions, args.out, title=f"{args.experiment}: qualitative results",
                    render3d=args.render3d)
        return 0
    if args.kind == "lr-sensitivity":
        if args.cases is None:
            raise DicebenchError("figures lr-sensitivity: give --cases")
        table = lr_sensitivity(args.cases, args.out, title=f"{args.experiment}: learning-rate sensitivity "
                                                           f"by imbalance level (Sudre et al. 2017)")
        if args.table:
            with atomic_path(args.table) as tmp:
                table.to_csv(tmp, index=False)
        return 0
    if args.kind == "subpatch":
        if args.data_dir is None or not args.patches:
            raise DicebenchError("figures subpatch: give --data-dir and --patches")
        def parse(text: str) -> tuple[int, ...]:
            try:
                return tuple(int(v) for v in text.split("x"))
            except ValueError:
                raise DicebenchError(f"figures subpatch: '{text}' is not a patch size like 64x64") from None

        title = f"{args.experiment}{f' on {args.dataset}' if args.dataset else ''}: sub-patching and empty patches"
        table = subpatch_sweep(args.data_dir, [parse(t) for t in args.patches], args.per_case, args.out,
                               title=title, configured=parse(args.configured) if args.configured else None)
        if args.table:
            with atomic_path(args.table) as tmp:
                table.to_csv(tmp, index=False)
        return 0
    if args.kind == "gradient-map":
        if args.model is None or args.data_dir is None:
            raise DicebenchError("figures gradient-map: give --model and --data-dir")
        values = gradient_map(args.model, args.data_dir, args.out,
                              title=f"{args.experiment}: Dice loss gradient map (Kervadec & de Bruijne 2023, eq. 2)")
        for name, (a, b, err) in values.items():
            print(f"{name}: dL/ds = {a:.4e} where y=1, {b:.4e} where y=0; max |autograd - eq. 2| = {err:.2e}")
        return 0
    if not args.logs:
        raise DicebenchError("figures learning-curves: give --logs")
    FIGURES[args.kind](args.logs, args.out, title=f"{args.experiment}: learning curves")
    return 0
