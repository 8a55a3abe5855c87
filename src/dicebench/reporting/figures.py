"""Figures: drawing only. The numbers come from `reporting.analysis` as DataFrames; the look
(colour per loss, panel sizes, fonts) from `reporting.style`. One CLI subcommand per figure:
`dicebench figures learning-curves | qualitative | gradient-map | subpatch | lr-sensitivity | claims`."""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from dicebench.errors import DicebenchError  # noqa: E402
from dicebench.io import atomic_path  # noqa: E402
from dicebench.reporting import analysis, style  # noqa: E402

matplotlib.rcParams.update(style.RC)


def save(fig, outs: list[Path], dpi: int = style.DPI) -> None:
    """Write one figure to every path given (PNG for the report, PDF for the paper), atomically."""
    for out in outs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)


def _finish(fig, title: str, outs: list[Path], key: list | None = None, bottom: float = 0.0,
            w_pad: float | None = None) -> None:
    """The title and a figure-level key (legend handles) above the panels, `bottom` inches left
    free below them for notes; lay out and save. The figure was sized by `style.grid_size`."""
    width, height = fig.get_size_inches()
    fig.suptitle(title, y=1 - 0.05 / height, va="top")
    below_title = style.TITLE_LINE * (title.count("\n") + 1) + 0.1
    reserved = 0.0
    if key:
        fig.legend(handles=key, loc="upper center", ncol=style.key_columns(len(key), width), frameon=False,
                   bbox_to_anchor=(0.5, 1 - below_title / height))
        reserved = style.key_height(len(key), width)
    # tight_layout leaves room for the suptitle itself; the rect keeps the key's room free too.
    fig.tight_layout(pad=0.4, w_pad=w_pad, rect=(0, bottom / height, 1, 1 - reserved / height))
    save(fig, outs)


def _image_axes(ax) -> None:
    """No axis lines; an image shrunk to its aspect keeps to the top of its slot, where
    tight_layout expects its title (else the title can slide into the figure's title)."""
    ax.axis("off")
    ax.set_anchor("N")


# ---------------------------------------------------------------- learning curves


def _convergence_title(panel: pd.DataFrame) -> str:
    """Which seeds of a panel converged, from `run_summary`'s status: the seeds by name when
    there are few, else counts."""
    groups = panel.groupby("status", sort=False)["seed"].apply(list)
    if len(panel) == 1:
        return f"seed {panel['seed'].iloc[0]}: {panel['status'].iloc[0]}"
    if len(panel) <= 4:
        return "; ".join(f"{status}: seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
                         for status, seeds in groups.items())
    return "; ".join(f"{status}: {len(seeds)} of {len(panel)} seeds" for status, seeds in groups.items())


def learning_curves(curves: pd.DataFrame, runs: pd.DataFrame, outs: list[Path], title: str = "") -> None:
    """Shen et al. 2018 Fig. 1, one panel per (dataset, lr, loss variant; network where several):
    every seed's training loss (left axis, faint) and validation DSC (right axis, markers), in
    the loss's colour, one marker shape per seed (the key above the panels). Convergence from
    cell.json: a star at each run's best validation point, dashed lines for a run that did not
    converge, which seeds converged in the panel title, the rule under the figure.
    `curves`, `runs`: `analysis.learning_curve_data` and `analysis.run_summary`."""
    datasets, networks = list(dict.fromkeys(runs["dataset"])), list(dict.fromkeys(runs["network"]))
    row_keys = sorted(set(runs[["dataset", "network", "lr"]].itertuples(index=False, name=None)),
                      key=lambda r: (datasets.index(r[0]), networks.index(r[1]), float(r[2])))
    variants = list(dict.fromkeys(runs["loss_variant"]))
    seeds = sorted(set(runs["seed"]), key=lambda s: int(s) if str(s).isdigit() else str(s))
    marker = {s: style.seed_marker(i) for i, s in enumerate(seeds)}
    key = _learning_curve_key(marker, dashed=bool((runs["status"] == "not converged").any()))
    width, height = style.grid_size(len(row_keys), len(variants), key_entries=len(key))
    rules = list(dict.fromkeys(runs["convergence_rule"].dropna()))
    note, note_height = style.wrap_note("Convergence rule: " + " / ".join(rules) if rules else "", width)
    fig, axes = plt.subplots(len(row_keys), len(variants), squeeze=False, figsize=(width, height + note_height))
    for i, (ds, net, lr) in enumerate(row_keys):
        for j, variant in enumerate(variants):
            ax = axes[i][j]
            panel = runs[(runs["dataset"] == ds) & (runs["network"] == net) & (runs["lr"] == lr)
                         & (runs["loss_variant"] == variant)]
            if panel.empty:
                ax.axis("off")
                continue
            ax2 = ax.twinx()
            colour = style.loss_colour(variant)
            for run in panel.sort_values("seed").itertuples(index=False):
                g = curves[curves["cell"] == run.cell].sort_values("iteration")
                line = style.NOT_CONVERGED_LINE if run.status == "not converged" else style.CONVERGED_LINE
                ax.plot(g["iteration"], g["train_loss"], color=colour, alpha=style.TRAIN_LOSS_ALPHA, lw=1, ls=line)
                v = g.dropna(subset=["val_dice"])  # validation runs less often than the loss is logged
                ax2.plot(v["iteration"], v["val_dice"], color=colour, marker=marker[run.seed], ms=3.5, lw=1.4,
                         ls=line, label=f"seed {run.seed}: {run.status}")
                if not pd.isna(run.best_iteration):
                    ax2.plot([run.best_iteration], [run.best_val_dice], marker=style.BEST_MARKER, ms=11,
                             color=colour, mec="black", mew=0.6, ls="none", zorder=5)
            where = f"{ds}{f', {net}' if len(networks) > 1 else ''}, lr {lr}"
            ax.set_title(f"{variant}: {where}\n{_convergence_title(panel)}")
            ax2.set_ylim(0, 1)
            if j == 0:
                ax.set_ylabel("training loss")
            if j == len(variants) - 1:
                ax2.set_ylabel("validation DSC")
            ax.set_xlabel("iteration")
    if note:
        fig.text(0.01, 0.05 / (height + note_height), note, ha="left", va="bottom", fontsize=7)
    # tight_layout does not see the twin axes' right-hand ticks: w_pad keeps room for them.
    _finish(fig, title or "Learning curves", outs, key=key, bottom=note_height, w_pad=3.0)


def _learning_curve_key(marker: dict, dashed: bool) -> list:
    """What the line styles and markers of the learning curves mean (the colour is the loss's)."""
    grey = "0.3"
    return [Line2D([], [], color=grey, alpha=style.TRAIN_LOSS_ALPHA, lw=1, label="training loss (left axis)"),
            Line2D([], [], color=grey, lw=1.4, label="validation DSC (right axis)"),
            Line2D([], [], color=grey, marker=style.BEST_MARKER, ms=11, mec="black", mew=0.6, ls="none",
                   label="best validation DSC"),
            *([Line2D([], [], color=grey, ls=style.NOT_CONVERGED_LINE, label="dashed: not converged")]
              if dashed else []),
            *[Line2D([], [], color=grey, marker=m, ms=4, ls="none", label=f"seed {s}") for s, m in marker.items()]]


# ---------------------------------------------------------------- qualitative


def _label_cmap(n: int):
    from matplotlib.colors import ListedColormap

    colours = [(0, 0, 0, 0)] + [style.class_colour(k) for k in range(1, max(n, 2))]  # background transparent
    return ListedColormap(colours)


def qualitative(q: analysis.Qualitative, outs: list[Path], title: str = "", render3d: bool = False) -> None:
    """Kervadec & de Bruijne 2023 Fig. 1 / Shen et al. 2018 Figs. 2-4: one test slice with the
    image, the ground truth and each cell's prediction overlaid; with `render3d` a second row of
    3D renderings (marching cubes when scikit-image is present, else voxels)."""
    z = q.z
    n_classes = int(max([q.label.max()] + [p.max() for _, p in q.predictions])) + 1
    cmap = _label_cmap(n_classes)
    panels = [("image", None), ("ground truth", q.label)] + q.predictions
    rows = 2 if render3d else 1
    present = sorted({int(v) for lab in [q.label] + [p for _, p in q.predictions] for v in np.unique(lab)} - {0})
    key = [Patch(color=style.class_colour(k), alpha=0.6, label=q.class_names.get(k, f"class {k}")) for k in present]
    fig = plt.figure(figsize=style.grid_size(rows, len(panels), style.IMAGE_PANEL, key_entries=len(key)))
    lo, hi = np.percentile(q.image[z], [1, 99])
    for j, (name, lab) in enumerate(panels):
        ax = fig.add_subplot(rows, len(panels), j + 1)
        ax.imshow(q.image[z], cmap="gray", vmin=lo, vmax=hi)
        if lab is not None:
            ax.imshow(np.ma.masked_equal(lab[z], 0), cmap=cmap, vmin=0, vmax=cmap.N - 1, alpha=0.6,
                      interpolation="nearest")
        ax.set_title(name)
        _image_axes(ax)
        if render3d and lab is not None:
            _render3d(fig.add_subplot(rows, len(panels), len(panels) + j + 1, projection="3d"), lab, cmap,
                      n_classes)
    _finish(fig, title or f"{q.case}, slice {z}", outs, key=key)


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
        colour = cmap(k)
        if marching_cubes is not None:
            verts, faces, _, _ = marching_cubes(mask.astype(float), 0.5)
            ax.plot_trisurf(verts[:, 2], verts[:, 1], faces, verts[:, 0], color=colour, lw=0, alpha=0.8)
        else:
            ax.voxels(mask.transpose(2, 1, 0), facecolors=colour, edgecolor=None, alpha=0.8)
    ax.set_axis_off()


# ---------------------------------------------------------------- gradient map


def gradient_map(gm: analysis.GradientMap, outs: list[Path], title: str = "") -> None:
    """Kervadec & de Bruijne 2023 eq. (2): the Dice loss gradient with respect to the softmax on
    one test slice, one panel per class, titled with its two values (where y = 1, where y = 0)."""
    k = gm.gradient.shape[0]
    fig, axes = plt.subplots(1, k + 1, figsize=style.grid_size(1, k + 1, style.IMAGE_PANEL), squeeze=False)
    axes = axes[0]
    lo, hi = np.percentile(gm.image, [1, 99])
    axes[0].imshow(gm.image, cmap="gray", vmin=lo, vmax=hi)
    axes[0].set_title(f"{gm.case}, slice {gm.z}")
    t = gm.table
    for c, name, y1, y0 in zip(t["class_index"], t["class"], t["grad_where_y1"], t["grad_where_y0"]):
        lim = float(np.abs(gm.gradient[c]).max()) or 1.0
        axes[c + 1].imshow(gm.gradient[c], cmap="RdBu", vmin=-lim, vmax=lim)  # red < 0 < blue
        axes[c + 1].set_title(f"{name}\ny=1: {y1:.2e}  y=0: {y0:.2e}", fontsize=7)
    for ax in axes:
        _image_axes(ax)
    _finish(fig, title or "Dice loss gradient (Kervadec & de Bruijne 2023, eq. 2)", outs)


# ---------------------------------------------------------------- sub-patching


def subpatch(table: pd.DataFrame, drawn: pd.DataFrame, outs: list[Path], title: str = "",
             configured: tuple[int, ...] | None = None) -> None:
    """Kervadec & de Bruijne 2023 Sec. 2: smaller patches -> more patches without a class -> the
    Dice variants divide by zero, while Mime is said to be unaffected.

    Left: the share of training patches without each class against patch size, read from the
    training labels (lines) and as the trained cells drew them (crosses). Right: each loss
    variant's test DSC over the object classes (mean ± SD over seeds) against the training
    patch. `table`: `analysis.subpatch_table`; `drawn`: `analysis.drawn_empty_share`."""
    scan = (table[table["class"] != "all"].dropna(subset=["empty_share_scan"])
            .drop_duplicates(["patch", "class"]).sort_values(["class_index", "voxels"]))
    classes = list(dict.fromkeys(scan["class"]))
    colour = {row["class"]: style.class_colour(int(row["class_index"]))
              for _, row in scan.drop_duplicates("class").iterrows()}
    fig, axes = plt.subplots(1, 2, figsize=style.grid_size(1, 2))
    for cls in classes:
        g = scan[scan["class"] == cls].sort_values("voxels")
        axes[0].plot(g["voxels"], g["empty_share_scan"], marker=".", color=colour[cls], label=f"{cls} (labels)")
    for voxels, cls, share in zip(drawn["voxels"], drawn["class"], drawn["empty_share_trained"]):
        axes[0].plot([voxels], [share], marker="x", ms=8, ls="none", color=colour.get(cls, "k"))
    if not drawn.empty:
        axes[0].plot([], [], marker="x", ls="none", color="k", label="drawn in training")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("patch size (voxels)")
    axes[0].set_ylabel("share of patches without the class")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend()
    overall = table[(table["class"] == "all")].dropna(subset=["variant"])
    if overall.empty:
        axes[1].text(0.5, 0.5, "no trained cells", ha="center", transform=axes[1].transAxes)
    for variant, g in overall.groupby("variant", sort=False):
        g = g.sort_values("voxels")
        axes[1].errorbar(g["voxels"], 100 * g["dsc"], yerr=100 * g["dsc_sd"].fillna(0), marker="o", capsize=2,
                         color=style.loss_colour(variant), label=variant)
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("training patch size (voxels)")
    axes[1].set_ylabel("test DSC (%), object classes")
    axes[1].set_ylim(0, 100)
    if not overall.empty:
        axes[1].legend()
    labels = table.drop_duplicates("voxels").set_index("voxels")["patch"]
    for ax in axes:
        if configured is not None:
            ax.axvline(int(np.prod(configured)), color="grey", ls=":", lw=1)
        ticks = sorted(set(scan["voxels"]) | set(overall["voxels"]))
        ax.set_xticks(ticks, [labels[v] for v in ticks], fontsize=7, rotation=30)
        ax.minorticks_off()
    _finish(fig, title or "Sub-patching and empty patches", outs)


# ---------------------------------------------------------------- learning-rate sensitivity


def lr_sensitivity(table: pd.DataFrame, outs: list[Path], title: str = "") -> None:
    """Sudre et al. 2017: test DSC over the object classes against the learning rate, one line
    per loss variant (its fixed colour), one panel per imbalance level; error bars are the SD
    over seeds, absent where a point has one seed (said in the title). `table`:
    `analysis.lr_sensitivity_table`."""
    if table.empty:
        raise DicebenchError("lr-sensitivity: no object-class results to plot")
    levels = list(dict.fromkeys(table["level"]))
    several_networks = table["network"].nunique() > 1
    lines = table[["loss_variant", "network"]].drop_duplicates()
    fig, axes = plt.subplots(1, len(levels), squeeze=False,
                             figsize=style.grid_size(1, len(levels), key_entries=len(lines), title_lines=2))
    handles = {}
    for ax, level in zip(axes[0], levels):
        groups = table[table["level"] == level].groupby(["loss_variant", "network"], sort=False)
        for i, ((variant, net), g) in enumerate(groups):
            g = g.sort_values("lr")
            label = f"{variant} ({net})" if several_networks else variant
            sd = g["sd"].to_numpy(dtype=float)
            nudge = 10 ** (0.015 * (i - (groups.ngroups - 1) / 2))  # side by side, so the bars do not overlap
            yerr = None if np.isnan(sd).all() else np.nan_to_num(sd)
            handles[label] = ax.errorbar(g["lr"] * nudge, g["dsc"], yerr=yerr, marker="o", capsize=2,
                                         color=style.loss_colour(variant), label=label)
        ax.set_xscale("log")
        ax.set_xticks(sorted(set(table["lr"])), [f"{v:g}" for v in sorted(set(table["lr"]))])
        ax.minorticks_off()
        ax.set_xlabel("learning rate")
        ax.set_title(level)
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("test DSC (%), object classes")
    n = sorted(set(table["n_seeds"]))
    spread = ("one seed per point: no spread over seeds shown" if n == [1]
              else f"mean ± SD over {n[0]}{f'-{n[-1]}' if len(n) > 1 else ''} seeds per point"
                   f"{' (a point with one seed has no bar)' if n[0] == 1 else ''}")
    _finish(fig, f"{title or 'Learning-rate sensitivity by imbalance level'}\n{spread}", outs,
            key=list(handles.values()))


# ---------------------------------------------------------------- claims


def claims_forest(forest: pd.DataFrame, outs: list[Path], title: str = "") -> None:
    """Every claim's estimate with its interval, on the scale where 0 is its threshold and a
    claim that holds lies right of 0; colour = verdict, n = seeds x test cases at the right."""
    if forest.empty:
        forest = pd.DataFrame([{"label": "no claim has an estimate", "paper": "", "estimate": np.nan, "lo": np.nan,
                                "hi": np.nan, "verdict": "not run", "n": ""}])
    height = 0.9 + 0.22 * len(forest)
    fig, ax = plt.subplots(figsize=(style.MIN_WIDTH, height))
    y = np.arange(len(forest))[::-1]
    for yi, (_, r) in zip(y, forest.iterrows()):
        colour = style.VERDICT_COLOURS.get(r["verdict"], "k")
        if np.isfinite(r["lo"]) and np.isfinite(r["hi"]):
            ax.plot([r["lo"], r["hi"]], [yi, yi], color=colour, lw=2)
        ax.plot([r["estimate"]], [yi], "o", color=colour, ms=4)
        ax.annotate(r["n"], (1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, forest["label"], fontsize=7)
    ax.set_xlabel("DSC points beyond the claim's threshold (right of 0: the claim holds)")
    key = [Line2D([], [], color=c, marker="o", lw=2, label=v) for v, c in style.VERDICT_COLOURS.items()
           if v in set(forest["verdict"])]
    _finish(fig, title or "Claims: estimate and interval against each claim's threshold", outs, key=key)


# ---------------------------------------------------------------- command line


def _parse_patch(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split("x"))
    except ValueError:
        raise DicebenchError(f"figures subpatch: '{text}' is not a patch size like 64x64") from None


def _write_table(table: pd.DataFrame, path: Path | None) -> None:
    if path is not None:
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)


def run_learning_curves(args: argparse.Namespace) -> int:
    curves = analysis.learning_curve_data(args.logs)
    learning_curves(curves, analysis.run_summary(curves), args.out, title=f"{args.experiment}: learning curves")
    return 0


def run_qualitative(args: argparse.Namespace) -> int:
    q = analysis.qualitative_data(args.dataset_dir, args.predictions, args.case)
    qualitative(q, args.out, title=f"{args.experiment}: qualitative results ({q.case}, slice {q.z})",
                render3d=args.render3d)
    return 0


def run_gradient_map(args: argparse.Namespace) -> int:
    gm = analysis.gradient_map_data(args.model, args.data_dir, args.case)
    gradient_map(gm, args.out, title=f"{args.experiment}: Dice loss gradient map (Kervadec & de Bruijne 2023, eq. 2)")
    for row in gm.table.to_dict("records"):
        print(f"{row['class']}: dL/ds = {row['grad_where_y1']:.4e} where y=1, {row['grad_where_y0']:.4e} where y=0 "
              f"({row['distinct_values']} distinct values); "
              f"max |autograd - eq. 2| = {row['max_abs_autograd_minus_eq2']:.2e}")
    return 0


def run_subpatch(args: argparse.Namespace) -> int:
    patches = [_parse_patch(t) for t in args.patches]
    configured = _parse_patch(args.configured) if args.configured else None
    points = analysis.subpatch_points(args.per_case)
    table = analysis.subpatch_table(analysis.label_scan(args.data_dir, patches), points)
    title = f"{args.experiment}{f' on {args.dataset}' if args.dataset else ''}: sub-patching and empty patches"
    subpatch(table, analysis.drawn_empty_share(points), args.out, title=title, configured=configured)
    _write_table(table, args.table)
    return 0


def run_lr_sensitivity(args: argparse.Namespace) -> int:
    from dicebench.reporting.results import load_cases

    cases = load_cases([args.cases])
    if cases.empty:
        raise DicebenchError(f"{args.cases}: no cases")
    table = analysis.lr_sensitivity_table(cases)
    if table.empty:
        raise DicebenchError(f"{args.cases}: no object-class DSC to plot")
    lr_sensitivity(table, args.out,
                   title=f"{args.experiment}: learning-rate sensitivity by imbalance level (Sudre et al. 2017)")
    _write_table(table, args.table)
    return 0


def run_claims(args: argparse.Namespace) -> int:
    try:
        claims = pd.read_csv(args.claims)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DicebenchError(f"{args.claims}: cannot read the claims table ({exc})") from None
    claims_forest(analysis.claims_forest(claims), args.out)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", default="", help="the experiment's name (for the title)")
    p.add_argument("--out", required=True, type=Path, nargs="+", help="one or more of .png / .pdf")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)

    lc = sub.add_parser("learning-curves", help="training loss and validation DSC per run, with convergence")
    lc.add_argument("--logs", required=True, nargs="+", type=Path, help="the cells' log.csv (cell.json beside each)")
    _common(lc)
    lc.set_defaults(_figure=run_learning_curves)

    q = sub.add_parser("qualitative", help="a test slice with the ground truth and each cell's prediction")
    q.add_argument("--dataset-dir", required=True, type=Path, help="the raw dataset folder (imagesTs, labelsTs)")
    q.add_argument("--predictions", required=True, nargs="+", type=Path,
                   help="the cells' predictions/ folders (named from the cell.json of the folder above)")
    q.add_argument("--case", default=None, help="the test case (default: the first)")
    q.add_argument("--render3d", action="store_true", help="add 3D renderings (Shen et al. 2018, Figs. 2-4)")
    _common(q)
    q.set_defaults(_figure=run_qualitative)

    g = sub.add_parser("gradient-map", help="the Dice loss gradient on a real prediction (Kervadec eq. 2)")
    g.add_argument("--model", required=True, type=Path, help="a dice cell's model.pt")
    g.add_argument("--data-dir", required=True, type=Path, help="the preprocessed data folder")
    g.add_argument("--case", default=None, help="the test case (default: the first)")
    _common(g)
    g.set_defaults(_figure=run_gradient_map)

    s = sub.add_parser("subpatch", help="empty-patch share and test DSC against the training patch size")
    s.add_argument("--data-dir", required=True, type=Path, help="the preprocessed data folder (labelsTr)")
    s.add_argument("--patches", required=True, nargs="+", help="patch sizes to scan, as 64x64 or 32x32x32")
    s.add_argument("--per-case", nargs="*", type=Path, default=[],
                   help="the trained cells' per_case.csv (cell.json beside each)")
    s.add_argument("--configured", default=None, help="the experiment's patch size (a dotted line)")
    s.add_argument("--dataset", default=None, help="the dataset (for the title)")
    s.add_argument("--table", type=Path, default=None, help="also write the table (CSV)")
    _common(s)
    s.set_defaults(_figure=run_subpatch)

    lr = sub.add_parser("lr-sensitivity", help="test DSC against the learning rate per loss and imbalance level")
    lr.add_argument("--cases", required=True, type=Path, help="the experiment's cases.csv")
    lr.add_argument("--table", type=Path, default=None, help="also write the table (CSV)")
    _common(lr)
    lr.set_defaults(_figure=run_lr_sensitivity)


    c = sub.add_parser("claims", help="every claim's estimate and interval against its threshold, by verdict")
    c.add_argument("--claims", required=True, type=Path, help="figures/claims.csv")
    _common(c)
    c.set_defaults(_figure=run_claims)


def run(args: argparse.Namespace) -> int:
    return args._figure(args)
