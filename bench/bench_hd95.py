"""HD95 time of dicebench beside MONAI's compute_hausdorff_distance: same run, same masks, one thread each.

    .venv/bin/python bench/bench_hd95.py [--repeats N] [--only NAME ...] [--quick]

About 8 minutes on 2 cores; `--quick` (one repeat, a smaller abdomen case) about 1.

Three parts (`--only` picks some; names below):

* the shape suite (`organ_smooth organ_rough lesions ring vessels distant_fp`, see hd95_cases.py):
  one class, `hd95(pred, gt, spacing)` against `compute_hausdorff_distance(..., percentile=95)`;
* `abdomen7`: a 7-class label map at TotalSegmentator's 1.5 mm; ours computes every class in
  one call (`hausdorff_labels`), MONAI is called once per class on the class masks;
* `evaluate`: `dicebench evaluate` end to end on that case written as NIfTI (read, DSC, HD95
  under both conventions, CSVs written) beside MONAI's per-class loop on the same files (read,
  then per class `compute_hausdorff_distance` and `compute_dice`);
* `organ_offset`, a stress case beyond the suite: a prediction 16-20 mm off (a failed model),
  where most distances lie beyond the walk and k-d tree queries finish the job (the slow path).

Ours and MONAI alternate within each repeat, so machine load hits both alike; a repeat calls
each one until 0.2 s have passed (short calls are batched) and records wall and CPU time per
call. Each line gives the medians over the repeats and the speed-ups MONAI / ours of the
medians, in wall time and in CPU time (the steadier one on a shared machine). Values:
ours beside MONAI's (MONAI interpolates its percentile in float32, off by up to ~1e-3 mm) and
beside the exact value (every surface distance from a k-d tree, NumPy's percentile). torch and
our code run on one thread (OMP/MKL/OpenBLAS pinned before the imports). Not a test: nothing is
asserted about time. Ends with the table as Markdown.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402
from monai.metrics import compute_dice, compute_hausdorff_distance  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hd95_cases import ABDOMEN_LABELS, SHAPES, STRESS, abdomen_case  # noqa: E402

from dicebench.cli import main as dicebench_main  # noqa: E402
from dicebench.evaluation.metrics import hausdorff_labels, hausdorff_percentile, hd95, surface_distances  # noqa: E402


def monai_hd95(pred: np.ndarray, gt: np.ndarray, spacing) -> float:
    return compute_hausdorff_distance(
        torch.from_numpy(pred)[None, None], torch.from_numpy(gt)[None, None],
        include_background=True, percentile=95, spacing=list(spacing),
    ).item()


def exact_hd95(pred: np.ndarray, gt: np.ndarray, spacing) -> float:
    return hausdorff_percentile(*surface_distances(pred, gt, spacing))


def per_call(fn, min_time: float) -> tuple[float, float, object]:
    """(wall s, CPU s, value) per call of `fn`, called until `min_time` wall seconds have passed.

    Short calls are batched so that a single preemption on a shared machine does not decide a
    repeat; CPU time (this process, one thread) is the figure least moved by other load.
    """
    calls, w0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        value = fn()
        calls += 1
        wall = time.perf_counter() - w0
        if wall >= min_time:
            return wall / calls, (time.process_time() - c0) / calls, value


def interleaved(ours, ref, repeats: int, min_time: float = 0.2) -> tuple[list, list, object, object]:
    """Per-call (wall, CPU) times of `ours()` and `ref()` alternating, after one warm-up call of each."""
    ours(), ref()
    t_ours, t_ref = [], []
    for _ in range(repeats):
        w, c, v_ours = per_call(ours, min_time)
        t_ours.append((w, c))
        w, c, v_ref = per_call(ref, min_time)
        t_ref.append((w, c))
    return t_ours, t_ref, v_ours, v_ref


def fmt_s(t: float) -> str:
    return f"{t * 1e3:.2f} ms" if t < 0.01 else f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def line(name: str, what: str, t_ours, t_ref, values: str, table: list) -> None:
    wo, co = (statistics.median(x[i] for x in t_ours) for i in (0, 1))
    wr, cr = (statistics.median(x[i] for x in t_ref) for i in (0, 1))
    print(f"{name:<13} wall: ours {fmt_s(wo):>9}  MONAI {fmt_s(wr):>9}  x{wr / wo:6.1f} | "
          f"CPU: ours {fmt_s(co):>9}  MONAI {fmt_s(cr):>9}  x{cr / co:6.1f} | {values}", flush=True)
    table.append((name, what, fmt_s(wo), fmt_s(wr), f"{wr / wo:.1f}x", f"{cr / co:.1f}x"))


def shape_suite(names: list[str], repeats: int, table: list) -> None:
    for name in names:
        case = {**SHAPES, **STRESS}[name]()
        pred, gt = case.pred == 1, case.gt == 1
        sp = case.spacing
        t_ours, t_ref, v_ours, v_ref = interleaved(lambda: hd95(pred, gt, sp), lambda: monai_hd95(pred, gt, sp),
                                                   repeats)
        exact = exact_hd95(pred, gt, sp)
        line(name, case.what, t_ours, t_ref,
             f"HD95 {v_ours:.6f} mm  |ours-exact| {abs(v_ours - exact):.1e}  |ours-MONAI| {abs(v_ours - v_ref):.1e}",
             table)


def abdomen_labelmap(case, repeats: int, table: list) -> None:
    classes = case.labels
    sp = case.spacing
    t_ours, t_ref, v_ours, v_ref = interleaved(
        lambda: hausdorff_labels(case.pred, case.gt, sp, classes),
        lambda: {k: monai_hd95(case.pred == k, case.gt == k, sp) for k in classes},
        repeats)
    worst = max(abs(v_ours[k].directed - v_ref[k]) for k in classes)
    exact = {k: exact_hd95(case.pred == k, case.gt == k, sp) for k in classes}
    worst_exact = max(abs(v_ours[k].directed - exact[k]) for k in classes)
    line("abdomen7", f"{case.what}: all classes in one call vs MONAI per class", t_ours, t_ref,
         f"max |ours-exact| {worst_exact:.1e}  max |ours-MONAI| {worst:.1e}", table)
    names = {v: k for k, v in ABDOMEN_LABELS.items()}
    print("  per class ours  " + "  ".join(f"{names[k]} {v_ours[k].directed:.4f}" for k in classes))
    print("  per class MONAI " + "  ".join(f"{names[k]} {v_ref[k]:.4f}" for k in classes))


def evaluate_end_to_end(case, repeats: int, table: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for sub, arr in (("gt", case.gt), ("pred", case.pred)):
            img = sitk.GetImageFromArray(arr)
            img.SetSpacing(tuple(reversed(case.spacing)))
            (tmp / sub).mkdir()
            sitk.WriteImage(img, str(tmp / sub / "case_0001.nii.gz"), useCompression=True)
        ds = tmp / "dataset.json"
        ds.write_text(json.dumps({"labels": ABDOMEN_LABELS}))
        classes = case.labels

        def ours() -> int:
            return dicebench_main(["evaluate", "--pred-dir", str(tmp / "pred"), "--gt-dir", str(tmp / "gt"),
                                   "--dataset-json", str(ds), "--cases-out", str(tmp / "out" / "per_case.csv"),
                                   "--out", str(tmp / "out" / "metrics.csv"), "--threads", "1"])

        def monai_loop() -> dict:
            g = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp / "gt" / "case_0001.nii.gz")))
            p = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp / "pred" / "case_0001.nii.gz")))
            out = {}
            for k in classes:
                pk, gk = torch.from_numpy(p == k)[None, None], torch.from_numpy(g == k)[None, None]
                out[k] = (compute_hausdorff_distance(pk, gk, include_background=True, percentile=95,
                                                     spacing=list(case.spacing)).item(),
                          compute_dice(pk.float(), gk.float(), include_background=True).item())
            return out

        t_ours, t_ref, _, v_ref = interleaved(ours, monai_loop, repeats)
        import pandas as pd

        rows = pd.read_csv(tmp / "out" / "per_case.csv").set_index("class_index")
        worst_hd = max(abs(rows.loc[k, "hd95"] - v_ref[k][0]) for k in classes)
        worst_dsc = max(abs(rows.loc[k, "dsc"] - v_ref[k][1]) for k in classes)
    line("evaluate", f"`dicebench evaluate` on one {case.pred.shape} 7-class case vs MONAI's per-class loop",
         t_ours, t_ref, f"max |HD95 ours-MONAI| {worst_hd:.1e}  max |DSC ours-MONAI| {worst_dsc:.1e}", table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="+", default=None, choices=[*SHAPES, "abdomen7", "evaluate", *STRESS])
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 repeat, a smaller abdomen case")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    repeats = 1 if args.quick else args.repeats
    chosen = args.only or [*SHAPES, "abdomen7", "evaluate", *STRESS]
    print(f"1 thread each (torch.get_num_threads() = {torch.get_num_threads()}); median of {repeats} "
          f"interleaved repeats (each >= 0.2 s of calls) after one warm-up call each; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    table: list = []
    shape_suite([n for n in chosen if n in SHAPES], repeats, table)
    if "abdomen7" in chosen or "evaluate" in chosen:
        case = abdomen_case(shape=(128, 192, 192) if args.quick else (256, 320, 320))
        if "abdomen7" in chosen:
            abdomen_labelmap(case, repeats, table)
        if "evaluate" in chosen:
            evaluate_end_to_end(case, repeats, table)
    shape_suite([n for n in chosen if n in STRESS], repeats, table)
    print(f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| case | what | ours | MONAI | speed-up (wall) | speed-up (CPU) |\n|---|---|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
