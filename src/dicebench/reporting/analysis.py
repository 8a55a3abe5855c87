"""The numbers behind the figures, as DataFrames the drawing code (`reporting.figures`) only plots.

Every result is named by its cell's `cell.json` (`results.cell_identity`), never by positions
in its path. Nothing here imports matplotlib or the figure module: figures import this module,
not the other way round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dicebench.errors import DicebenchError
from dicebench.grid import patch_label
from dicebench.reporting.results import (
    cell_identity,
    imbalance_level,
    load_cell,
    per_case,
    per_seed,
    read_cell,
)

# ---------------------------------------------------------------- learning curves

LOG_COLUMNS = ["iteration", "train_loss", "val_dice"]
# What the trainer records in cell.json["convergence"] (absent in cells trained before it did).
CONVERGENCE_COLUMNS = {"converged": "converged", "rule": "convergence_rule",
                       "best_val_dice": "recorded_best_val_dice",
                       "best_val_dice_last_quarter": "best_val_dice_last_quarter",
                       "loss_drop_last_quarter": "loss_drop_last_quarter"}
RUN_KEYS = ["experiment", "dataset", "network", "loss", "weighting", "loss_variant", "lr", "seed", "patch"]


def learning_curve_data(log_paths: list[Path]) -> pd.DataFrame:
    """Every cell's `log.csv` rows (iteration, train_loss, val_dice; val_dice NaN where only the
    loss was logged) with the cell's identity and its convergence record from the cell.json
    beside it (NaN / <NA> where the cell has none), and the cell folder as `cell`."""
    frames = []
    for path in log_paths:
        log, cell = read_cell(Path(path), "training log")
        missing = [c for c in LOG_COLUMNS if c not in log.columns]
        if missing:
            raise DicebenchError(f"{path}: training log lacks column(s) {', '.join(missing)}")
        for c in LOG_COLUMNS:
            if not pd.api.types.is_numeric_dtype(log[c]):
                raise DicebenchError(f"{path}: training log column '{c}' is not numeric")
        record = cell.get("convergence") or {}
        if not isinstance(record, dict):
            raise DicebenchError(f"{Path(path).parent / 'cell.json'}: 'convergence' is not an object")
        convergence = {col: record.get(key) for key, col in CONVERGENCE_COLUMNS.items()}
        frames.append(log[LOG_COLUMNS].assign(**cell_identity(cell), cell=str(Path(path).parent), **convergence))
    if not frames:
        raise DicebenchError("no training logs given")
    curves = pd.concat(frames, ignore_index=True)
    curves["converged"] = curves["converged"].astype("boolean")
    for col in ("recorded_best_val_dice", "best_val_dice_last_quarter", "loss_drop_last_quarter"):
        curves[col] = pd.to_numeric(curves[col])
    return curves


def run_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per training run (cell) of `learning_curve_data`: its identity, the best
    validation point read from the log (iteration, DSC), how many validation points the log
    has, the last logged training loss, the convergence record and its `status` in words."""
    rows = []
    for cell, g in curves.groupby("cell", sort=False):
        first = g.iloc[0]
        val = g.dropna(subset=["val_dice"])
        best = val.loc[val["val_dice"].idxmax()] if not val.empty else None
        rows.append({**{k: first[k] for k in RUN_KEYS}, "cell": cell,
                     "best_iteration": np.nan if best is None else int(best["iteration"]),
                     "best_val_dice": np.nan if best is None else float(best["val_dice"]),
                     "n_val_points": len(val),
                     "final_train_loss": float(g.sort_values("iteration")["train_loss"].iloc[-1]),
                     **{col: first[col] for col in CONVERGENCE_COLUMNS.values()}})
    out = pd.DataFrame(rows)
    out["converged"] = out["converged"].astype("boolean")
    out["status"] = [convergence_status(c) for c in out["converged"]]
    return out


def convergence_status(converged) -> str:
    """'converged', 'not converged', or 'not recorded' (a cell trained before the trainer recorded it)."""
    if pd.isna(converged):
        return "not recorded"
    return "converged" if converged else "not converged"


# ---------------------------------------------------------------- test cases and slices


def label_names(data_dir: Path) -> dict[int, str]:
    """Label value -> class name from a dataset folder's dataset.json ({} if there is none)."""
    js = Path(data_dir) / "dataset.json"
    if not js.exists():
        return {}
    try:
        return {int(v): k for k, v in json.loads(js.read_text()).get("labels", {}).items()}
    except (OSError, json.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise DicebenchError(f"{js}: cannot read the label names ({exc})") from None


def pick_slice(label: np.ndarray) -> int:
    """The axial slice with the most foreground (the paper figures show a representative slice)."""
    return int(np.argmax((label > 0).reshape(label.shape[0], -1).sum(axis=1)))


def pick_test_case(data_dir: Path, case: str | None = None) -> Path:
    """A test case's reference: `case` if given, else the first in `labelsTs/`."""
    labels = sorted((Path(data_dir) / "labelsTs").glob("*.nii.gz"))
    if not labels:
        raise DicebenchError(f"{Path(data_dir) / 'labelsTs'}: no test labels")
    if case is None:
        return labels[0]
    for p in labels:
        if p.name == f"{case}.nii.gz":
            return p
    raise DicebenchError(f"{Path(data_dir) / 'labelsTs'}: no test case '{case}'")


def case_name(label_path: Path) -> str:
    return Path(label_path).name[: -len(".nii.gz")]


def prediction_label(identity: dict, varying: set[str]) -> str:
    """A prediction panel's name: the loss variant and lr, plus the network and seed where the
    panels differ in them."""
    parts = [identity["loss_variant"], f"lr {identity['lr']}"]
    parts += [identity["network"]] if "network" in varying else []
    parts += [f"seed {identity['seed']}"] if "seed" in varying else []
    return ", ".join(str(p) for p in parts)


@dataclass
class Qualitative:
    case: str
    z: int
    image: np.ndarray  # (Z, Y, X), the first channel
    label: np.ndarray
    predictions: list[tuple[str, np.ndarray]]  # (name from the cell.json, label volume)
    class_names: dict[int, str]  # from the dataset's dataset.json, empty if it has none


def qualitative_data(dataset_dir: Path, prediction_dirs: list[Path], case: str | None = None) -> Qualitative:
    """One test case's image, reference and each cell's prediction, each prediction named from
    the cell.json of the cell folder its predictions/ folder sits in."""
    import SimpleITK as sitk

    from dicebench.io import read_image

    gt_path = pick_test_case(dataset_dir, case)
    case = case_name(gt_path)
    image = sitk.GetArrayFromImage(read_image(Path(dataset_dir) / "imagesTs" / f"{case}_0000.nii.gz")).astype(float)
    gt = sitk.GetArrayFromImage(read_image(gt_path))
    identities = [cell_identity(load_cell(Path(d).parent)) for d in prediction_dirs]
    varying = {k for k in ("network", "seed") if len({str(i[k]) for i in identities}) > 1}
    predictions = []
    for d, identity in zip(prediction_dirs, identities):
        pred = sitk.GetArrayFromImage(read_image(Path(d) / f"{case}.nii.gz"))
        if pred.shape != gt.shape:
            raise DicebenchError(f"{Path(d) / f'{case}.nii.gz'}: shape {pred.shape} differs from the "
                                 f"reference's {gt.shape}")
        predictions.append((prediction_label(identity, varying), pred))
    return Qualitative(case, pick_slice(gt), image, gt, predictions, label_names(dataset_dir))


# ---------------------------------------------------------------- Dice gradient map


def dice_gradient_autograd(probs, onehot):
    """dL/ds of the package's soft Dice loss (eq. 1 of Kervadec & de Bruijne 2023, no smoothing),
    read from autograd: the cross-check of the closed form `losses.dice_gradient_map` (eq. 2).
    Summed over classes, i.e. eq. (1) times |K| (eq. 2 leaves the 1/|K| out).
    probs, onehot: (K, *spatial) tensors."""
    import torch

    from dicebench.losses.dice import per_class_dice_loss

    s = probs.detach().clone().requires_grad_(True)
    loss = per_class_dice_loss(s[None], onehot[None], squared=False, batch_dice=False, smooth_nr=0.0,
                               smooth_dr=0.0).sum()
    (grad,) = torch.autograd.grad(loss, s)
    return grad


def gradient_values(probs, onehot, names: dict[int, str] | None = None):
    """The Dice gradient map of one slice (autograd) and one row per class: its mean value where
    y = 1 and where y = 0 (eq. 2: two values per class), how many distinct values it takes, and
    the largest difference between autograd and the closed form.
    probs, onehot: (K, H, W) float64 tensors. Returns (gradient (K, H, W) ndarray, DataFrame)."""
    from dicebench.losses import dice_gradient_map

    grad = dice_gradient_autograd(probs, onehot)
    closed = dice_gradient_map(probs[None], onehot[None])[0]
    names = names or {}
    rows = []
    for c in range(grad.shape[0]):
        g = grad[c].numpy()
        fg = onehot[c].numpy() > 0.5
        rows.append({"class_index": c, "class": names.get(c, f"class {c}"),
                     "grad_where_y1": float(g[fg].mean()) if fg.any() else float("nan"),
                     "grad_where_y0": float(g[~fg].mean()) if (~fg).any() else float("nan"),
                     "distinct_values": int(np.unique(g).size),
                     "max_abs_autograd_minus_eq2": float((grad[c] - closed[c]).abs().max())})
    return grad.numpy(), pd.DataFrame(rows)


@dataclass
class GradientMap:
    case: str
    z: int
    image: np.ndarray  # (Y, X), the slice's first channel
    gradient: np.ndarray  # (K, Y, X)
    table: pd.DataFrame  # `gradient_values`


def gradient_map_data(model_path: Path, data_dir: Path, case: str | None = None) -> GradientMap:
    """Kervadec & de Bruijne 2023 eq. (2) on a real prediction: the model's softmax on the test
    slice with the most foreground, and the Dice loss gradient with respect to it."""
    import SimpleITK as sitk
    import torch

    from dicebench.inference.predict import load_model, predict_probabilities
    from dicebench.io import read_image

    torch.set_num_threads(1)
    data_dir = Path(data_dir)
    gt_path = pick_test_case(data_dir, case)
    case = case_name(gt_path)
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
    labels = meta.get("labels")
    names = {int(v): n for n, v in labels.items()} if isinstance(labels, dict) else {}
    gradient, table = gradient_values(s, y, names)
    return GradientMap(case, z, image[0, z], gradient, table)


# ---------------------------------------------------------------- sub-patching


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


def label_scan(data_dir: Path, patches: list[tuple[int, ...]]) -> pd.DataFrame:
    """One row per (patch size, object class): the share of half-overlapping windows of the
    training labels (`labelsTr/`) that lack the class; no training needed."""
    import SimpleITK as sitk

    from dicebench.io import read_image

    data_dir = Path(data_dir)
    files = sorted((data_dir / "labelsTr").glob("*.nii.gz"))
    if not files:
        raise DicebenchError(f"{data_dir / 'labelsTr'}: no training labels")
    names = label_names(data_dir)
    labels = [sitk.GetArrayFromImage(read_image(f)) for f in files]
    n_classes = max(int(max(lab.max() for lab in labels)) + 1, len(names))
    rows = []
    for patch in patches:
        share = empty_patch_share(labels, tuple(patch), n_classes)
        for k in range(1, n_classes):
            rows.append({"patch": patch_label(patch), "voxels": int(np.prod(patch)), "class_index": k,
                         "class": names.get(k, str(k)), "empty_share_scan": share[k]})
    return pd.DataFrame(rows, columns=["patch", "voxels", "class_index", "class", "empty_share_scan"])


def subpatch_points(per_case_paths: list[Path]) -> pd.DataFrame:
    """One row per trained cell and object class (and `all`, their mean per case): the cell's
    training patch, its loss variant, mean test DSC, and the share of its training patches that
    lacked the class (recorded by the trainer in cell.json)."""
    rows = []
    for path in per_case_paths:
        cases, cell = read_cell(Path(path), "per-case metrics")
        identity = cell_identity(cell)
        objects = cases[cases["class_index"] > 0]
        if objects.empty:
            continue
        shares = cell.get("empty_patch_share") or {}
        per_class = objects.groupby("class", sort=False)["dsc"]
        means = {**per_class.mean().to_dict(), "all": objects.groupby("case")["dsc"].mean().mean()}
        for cls, dsc in means.items():
            share = (np.mean([shares[c] for c in per_class.groups if shares.get(c) is not None])
                     if cls == "all" and shares else shares.get(cls))
            rows.append({"patch": identity["patch"],
                         "voxels": int(np.prod(cell["settings"]["recipe"]["patch_size"])),
                         "variant": identity["loss_variant"], "seed": identity["seed"], "class": cls,
                         "dsc": float(dsc), "n_cases": int(objects["case"].nunique()),
                         "empty_share_trained": np.nan if share is None else float(share)})
    return pd.DataFrame(rows, columns=["patch", "voxels", "variant", "seed", "class", "dsc", "n_cases",
                                       "empty_share_trained"])


SUBPATCH_COLUMNS = ["patch", "voxels", "class_index", "class", "variant", "empty_share_scan", "empty_share_trained",
                    "dsc", "dsc_sd", "seeds", "n_cases"]


def subpatch_table(scan: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Kervadec & de Bruijne 2023 Sec. 2 in one table: one row per (patch, class, loss variant)
    trained (DSC mean and SD over seeds, the share of empty patches the cells drew) merged with
    the label scan's share at every patch size asked (rows without a variant: not trained).
    `class_index` comes from the scan (empty for 'all')."""
    trained = (points.groupby(["patch", "voxels", "variant", "class"], sort=False)
               .agg(dsc=("dsc", "mean"), dsc_sd=("dsc", "std"), seeds=("seed", "nunique"),
                    n_cases=("n_cases", "sum"), empty_share_trained=("empty_share_trained", "mean"))
               .reset_index())
    table = scan.merge(trained, on=["patch", "voxels", "class"], how="outer")
    table["class_index"] = table["class"].map(scan.drop_duplicates("class").set_index("class")["class_index"])
    table = table.sort_values(["voxels", "variant", "class"], na_position="first", kind="stable")
    return table[SUBPATCH_COLUMNS].reset_index(drop=True)


def drawn_empty_share(points: pd.DataFrame) -> pd.DataFrame:
    """Per (training patch, object class): the share of empty patches the trained cells drew,
    averaged over the cells (every loss and seed) trained at that patch."""
    objects = points[points["class"] != "all"].dropna(subset=["empty_share_trained"])
    return (objects.groupby(["patch", "voxels", "class"], sort=False)["empty_share_trained"].mean()
            .reset_index())


# ---------------------------------------------------------------- learning-rate sensitivity

LR_COLUMNS = ["dataset", "level", "network", "loss_variant", "lr", "dsc", "sd", "n_seeds", "n_cases"]


def lr_sensitivity_table(cases: pd.DataFrame) -> pd.DataFrame:
    """Sudre et al. 2017: per (dataset, network, loss variant, lr) the test DSC over the object
    classes in %: the mean over seeds of each seed's mean over test cases (`results.per_seed`),
    its SD over seeds (NaN with one seed: no spread to show), n_seeds and n_cases. `level` names
    the dataset's imbalance (its rarest present object class's voxel share)."""
    if cases.empty:
        return pd.DataFrame(columns=LR_COLUMNS)
    if "loss_variant" not in cases.columns:  # per-case tables written before the variant was recorded
        cases = cases.assign(loss_variant=cases["loss"])
    rows = []
    for ds in dict.fromkeys(cases["dataset"]):
        level = imbalance_level(cases, ds)
        in_ds = cases[cases["dataset"] == ds]
        for net in dict.fromkeys(in_ds["network"]):
            for variant in dict.fromkeys(in_ds["loss_variant"]):
                sel = {"dataset": ds, "network": net, "loss_variant": variant}
                for lr in sorted(set(in_ds.loc[(in_ds["network"] == net) & (in_ds["loss_variant"] == variant),
                                               "lr"]), key=float):
                    seeds = per_seed(cases, "all", **sel, lr=lr)
                    if seeds.empty:
                        continue
                    n_cases = per_case(cases, "all", **sel, lr=lr)["case"].nunique()
                    rows.append({**sel, "level": level, "lr": float(lr), "dsc": 100 * float(seeds.mean()),
                                 "sd": 100 * float(seeds.std(ddof=1)) if len(seeds) > 1 else np.nan,
                                 "n_seeds": len(seeds), "n_cases": int(n_cases)})
    return pd.DataFrame(rows, columns=LR_COLUMNS)


# ---------------------------------------------------------------- claims


def claims_forest(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims table as a forest plot's rows: every claim row with an estimate, on one scale
    whose 0 is the claim's decision threshold and where positive means the claim holds: a
    difference (A - B) as it is; "at least" as estimate - (published - margin); "similar" as
    the margin less the largest pairwise |difference| (positive: within the margin)."""
    rows = []
    for _, r in claims.iterrows():
        if not np.isfinite(r["estimate"]):
            continue
        est, lo, hi = float(r["estimate"]), float(r["ci_lo"]), float(r["ci_hi"])
        if r["test"] == "at_least":
            shift = float(r["published"]) - float(r["margin"])
            est, lo, hi = est - shift, lo - shift, hi - shift
        elif r["test"] == "similar":
            # slack inside the margin of the largest |difference|: positive when it lies within
            m, nearest = float(r["margin"]), 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
            est, lo, hi = m - abs(est), m - max(abs(lo), abs(hi)), m - nearest
        rows.append({"label": f"{r['id']} {r['dataset']}", "paper": r["paper"], "estimate": est, "lo": lo, "hi": hi,
                     "verdict": r["verdict"], "n": f"{int(r['n_seeds'])}×{int(r['n_cases'])}"})
    return pd.DataFrame(rows, columns=["label", "paper", "estimate", "lo", "hi", "verdict", "n"])
