"""`dicebench viewer`: one self-contained HTML page per experiment and dataset to scroll through
the test cases: image, reference and each cell's prediction side by side.

    dicebench viewer --experiment kervadec2023 --dataset-dir results/datasets/synth_acdc \\
        --predictions results/kervadec2023/synth_acdc/enet2d/*/lr0.005/seed0/predictions \\
        --out figures/viewer/kervadec2023/synth_acdc.html

The page needs no server and no network: the volumes are in it (8-bit, zlib-compressed,
base64), drawn on plain canvases by a few lines of JavaScript that inflate them with the
browser's own `DecompressionStream`. Open it from disk. Controls: the test case, the view
(axial, coronal, sagittal; pixels at the voxel spacing's aspect), the slice (slider, arrow keys
on the slider, or the mouse wheel over an image) and the overlay opacity. Under each prediction:
the case's DSC (mean over object classes, and per class) from the cell's per_case.csv.

The image is the first channel (`_0000`), windowed to its 1st-99th percentile. A volume with a
side longer than `--max-side` voxels is shown subsampled by an integer step on that axis
(every step-th voxel, labels and image alike) to keep the page small; the page says so.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from dicebench.errors import DicebenchError
from dicebench.io import write_text

SUFFIX = ".nii.gz"


def encode(array: np.ndarray) -> str:
    """uint8 voxels, C order (z, y, x), zlib-compressed, base64: what the page inflates."""
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, dtype=np.uint8).tobytes(), 6)).decode()


def window(image: np.ndarray) -> np.ndarray:
    """Intensities to 0..255 between the 1st and 99th percentile."""
    lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    if not hi > lo:
        hi = lo + 1.0
    return np.clip(np.round((image.astype(np.float64) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def label_colors(n: int) -> list[str]:
    """The qualitative figure's colours: matplotlib's tab10 by label index (0, background, unused)."""
    import matplotlib

    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps["tab10"]
    return [to_hex(cmap(k % 10)) for k in range(n)]


def best_slices(label: np.ndarray) -> list[int]:
    """Per axis (z, y, x) the slice with the most foreground: where the page opens."""
    fg = label > 0
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        counts = fg.sum(axis=other)
        out.append(int(np.argmax(counts)) if counts.any() else label.shape[axis] // 2)
    return out


def panel_names(prediction_dirs: list[Path]) -> list[str]:
    """'<loss>-<weighting> lr<lr>' from each cell folder (.../{network}/{loss}-{weighting}/lr{lr}/seed{seed}/
    predictions), with the network and seed when they differ between panels."""
    parts = [Path(d).resolve().parts[-5:-1] for d in prediction_dirs]  # network, loss-w, lr, seed
    vary = [len({p[i] for p in parts}) > 1 for i in range(4)]
    names = []
    for p in parts:
        words = [p[1], p[2]] + ([p[0]] if vary[0] else []) + ([p[3]] if vary[3] else [])
        names.append(" ".join(words))
    return names


def case_scores(cell_dir: Path, case: str, labels: dict[int, str]) -> dict:
    """The case's DSC per object class and their mean, from the cell's per_case.csv (empty if absent)."""
    path = Path(cell_dir) / "per_case.csv"
    if not path.is_file():
        return {}
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DicebenchError(f"{path}: unreadable ({exc})") from None
    rows = df[(df["case"].astype(str) == case) & (df["class_index"] > 0)]
    if rows.empty:
        return {}
    per_class = {labels.get(int(r.class_index), str(r.class_index)): round(float(r.dsc), 4)
                 for r in rows.itertuples()}
    return {"mean": round(float(rows["dsc"].mean()), 4), "classes": per_class}


def _read(path: Path):
    import SimpleITK as sitk

    from dicebench.io import read_image

    image = read_image(path)
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))  # (z, y, x) both


def load_cases(dataset_dir: Path, prediction_dirs: list[Path], max_side: int = 256) -> tuple[list[dict], dict]:
    """Every test case of the dataset, encoded for the page, and the dataset's label names."""
    dataset_dir = Path(dataset_dir)
    try:
        meta = json.loads((dataset_dir / "dataset.json").read_text())
        labels = {int(v): str(k) for k, v in meta["labels"].items()}
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DicebenchError(f"{dataset_dir / 'dataset.json'}: no readable 'labels' ({exc})") from None
    refs = sorted(p for p in (dataset_dir / "labelsTs").glob(f"*{SUFFIX}") if not p.name.startswith("."))
    if not refs:
        raise DicebenchError(f"{dataset_dir / 'labelsTs'}: no test labels")
    channel = (meta.get("channel_names") or {}).get("0", "channel 0")
    cases = []
    for ref_path in refs:
        case = ref_path.name[: -len(SUFFIX)]
        image, spacing = _read(dataset_dir / "imagesTs" / f"{case}_0000{SUFFIX}")
        reference, _ = _read(ref_path)
        if image.shape != reference.shape:
            raise DicebenchError(f"{ref_path}: shape {reference.shape} differs from its image's {image.shape}")
        predictions = []
        for d in prediction_dirs:
            pred, _ = _read(Path(d) / f"{case}{SUFFIX}")
            if pred.shape != reference.shape:
                raise DicebenchError(f"{Path(d) / (case + SUFFIX)}: shape {pred.shape} differs from the "
                                     f"reference's {reference.shape}")
            predictions.append(pred)
        if image.ndim != 3:
            raise DicebenchError(f"{ref_path}: expected a 3D volume, got {image.ndim} dimensions")
        step = tuple(max(1, math.ceil(n / max_side)) for n in image.shape)
        cut = tuple(slice(None, None, s) for s in step)
        image, reference = image[cut], reference[cut]
        predictions = [p[cut] for p in predictions]
        top = max([int(reference.max())] + [int(p.max()) for p in predictions])
        if top > 255 or min([int(reference.min())] + [int(p.min()) for p in predictions]) < 0:
            raise DicebenchError(f"{ref_path}: label values outside 0..255 cannot be shown")
        cases.append({
            "name": case,
            "shape": list(image.shape),
            "spacing": [float(s * k) for s, k in zip(spacing, step)],
            "step": list(step),
            "best": best_slices(reference),
            "image": encode(window(image)),
            "reference": encode(reference),
            "predictions": [encode(p) for p in predictions],
            "scores": [case_scores(Path(d).parent, case, labels) for d in prediction_dirs],
        })
    return cases, {"labels": labels, "channel": channel}


def page(title: str, cases: list[dict], meta: dict, panels: list[str]) -> str:
    n_labels = max(list(meta["labels"]) + [1]) + 1
    data = {"title": title, "channel": meta["channel"], "panels": panels, "cases": cases,
            "labels": {str(k): v for k, v in sorted(meta["labels"].items()) if k > 0},
            "colors": label_colors(n_labels)}
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (TEMPLATE.replace("%TITLE%", html.escape(title)).replace("%DATA%", blob)
            .replace("%SCRIPT%", SCRIPT))


def write_viewer(dataset_dir: Path, prediction_dirs: list[Path], out: Path, title: str, max_side: int = 256) -> None:
    if not prediction_dirs:
        raise DicebenchError("viewer: give the cells' prediction folders (--predictions)")
    cases, meta = load_cases(dataset_dir, prediction_dirs, max_side)
    write_text(out, page(title, cases, meta, panel_names(prediction_dirs)))


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>%TITLE%</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1em; background: #fff; color: #222; }
  h1 { font-size: 1.2em; margin: 0 0 .5em; }
  #controls { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: center; margin-bottom: .8em; }
  #controls label { display: flex; gap: .4em; align-items: center; }
  #slice { width: 16em; }
  #panels { display: flex; flex-wrap: wrap; gap: 12px; }
  figure { margin: 0; text-align: center; }
  figcaption { font-size: 12px; max-width: 18em; margin: 0 auto; }
  figcaption .dsc { color: #555; }
  canvas { image-rendering: pixelated; background: #000; display: block; margin: 0 auto 4px; }
  #legend span { display: inline-block; margin-right: 1em; }
  #legend i { display: inline-block; width: .9em; height: .9em; vertical-align: -1px; margin-right: .3em; }
  #note { color: #555; font-size: 12px; }
  #error { color: #b00; }
</style>
</head>
<body>
<h1>%TITLE%</h1>
<div id="controls">
  <label>case <select id="case"></select></label>
  <label>view <select id="axis"><option value="0">axial</option><option value="1">coronal</option>
    <option value="2">sagittal</option></select></label>
  <label>slice <input id="slice" type="range" min="0" max="0" value="0"> <span id="slice-label"></span></label>
  <label>overlay <input id="opacity" type="range" min="0" max="100" value="55"></label>
</div>
<div id="legend"></div>
<div id="panels"></div>
<p id="note"></p>
<p id="error"></p>
<script type="application/json" id="viewer-data">%DATA%</script>
<script>
%SCRIPT%
</script>
</body>
</html>
"""

SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("viewer-data").textContent);
const $ = (id) => document.getElementById(id);
const state = { caseIndex: 0, axis: 0, slice: 0 };
const cache = new Map();
const COLORS = DATA.colors.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));

async function inflate(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function volumes(i) {
  if (!cache.has(i)) {
    const c = DATA.cases[i];
    const [image, reference, ...predictions] = await Promise.all(
      [c.image, c.reference, ...c.predictions].map(inflate));
    cache.set(i, { image, reference, predictions });
  }
  return cache.get(i);
}

// The slice `k` of a (z, y, x) volume seen along `axis`: width, height, and the voxel index of
// each pixel (row-major, the top row first; z grows upwards in the coronal and sagittal views).
function sliceIndex(shape, axis, k) {
  const [nz, ny, nx] = shape;
  let w, h, at;
  if (axis === 0) { w = nx; h = ny; at = (r, c) => (k * ny + r) * nx + c; }
  else if (axis === 1) { w = nx; h = nz; at = (r, c) => ((nz - 1 - r) * ny + k) * nx + c; }
  else { w = ny; h = nz; at = (r, c) => ((nz - 1 - r) * ny + c) * nx + k; }
  const index = new Uint32Array(w * h);
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) index[r * w + c] = at(r, c);
  return { w, h, index };
}

function drawPanel(canvas, view, image, labels, opacity, spacing) {
  canvas.width = view.w; canvas.height = view.h;
  const [sz, sy, sx] = spacing;
  const [pw, ph] = state.axis === 0 ? [sx, sy] : state.axis === 1 ? [sx, sz] : [sy, sz];
  const scale = 256 / Math.max(view.w * pw, view.h * ph);
  canvas.style.width = Math.round(view.w * pw * scale) + "px";
  canvas.style.height = Math.round(view.h * ph * scale) + "px";
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(view.w, view.h);
  const px = out.data;
  for (let i = 0; i < view.index.length; i++) {
    const v = view.index[i];
    const g = image[v];
    let r = g, gr = g, b = g;
    if (labels) {
      const k = labels[v];
      if (k > 0) {
        const col = COLORS[k % COLORS.length];
        r = (1 - opacity) * g + opacity * col[0];
        gr = (1 - opacity) * g + opacity * col[1];
        b = (1 - opacity) * g + opacity * col[2];
      }
    }
    px[4 * i] = r; px[4 * i + 1] = gr; px[4 * i + 2] = b; px[4 * i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
}

function scoreText(score) {
  if (!score || score.mean === undefined) return "";
  const parts = Object.entries(score.classes).map(([k, v]) => k + " " + v.toFixed(3));
  return "DSC " + score.mean.toFixed(3) + " (" + parts.join(", ") + ")";
}

function buildPanels() {
  const panels = $("panels");
  panels.innerHTML = "";
  const names = ["image (" + DATA.channel + ")", "reference", ...DATA.panels];
  names.forEach((name, j) => {
    const fig = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.dataset.panel = j === 0 ? "image" : j === 1 ? "reference" : "prediction";
    canvas.title = name;
    const cap = document.createElement("figcaption");
    cap.innerHTML = "<b></b><br><span class='dsc'></span>";
    cap.querySelector("b").textContent = name;
    fig.append(canvas, cap);
    panels.append(fig);
  });
}

async function draw() {
  const c = DATA.cases[state.caseIndex];
  const vols = await volumes(state.caseIndex);
  const n = c.shape[state.axis];
  state.slice = Math.max(0, Math.min(n - 1, state.slice));
  const slider = $("slice");
  slider.max = String(n - 1);
  slider.value = String(state.slice);
  $("slice-label").textContent = (state.slice + 1) + " / " + n;
  const view = sliceIndex(c.shape, state.axis, state.slice);
  const opacity = Number($("opacity").value) / 100;
  const canvases = document.querySelectorAll("#panels canvas");
  const captions = document.querySelectorAll("#panels .dsc");
  const labels = [null, vols.reference, ...vols.predictions];
  canvases.forEach((canvas, j) => drawPanel(canvas, view, vols.image, labels[j], opacity, c.spacing));
  c.scores.forEach((s, j) => { captions[j + 2].textContent = scoreText(s); });
  const sub = c.step.some((s) => s > 1) ? " Shown subsampled by " + c.step.join(" x ") + " voxels (z, y, x)." : "";
  $("note").textContent = c.name + ": " + c.shape.join(" x ") + " voxels (z, y, x), spacing " +
    c.spacing.map((s) => s.toFixed(2)).join(" x ") + " mm." + sub;
  document.body.dataset.slice = String(state.slice);
  document.body.dataset.axis = String(state.axis);
  document.body.dataset.ready = "1";
}

function startAt(i) {
  state.caseIndex = i;
  state.slice = DATA.cases[i].best[state.axis];
  return draw();
}

function fail(err) { $("error").textContent = "Cannot show the volumes: " + err; document.body.dataset.error = String(err); }

function init() {
  if (typeof DecompressionStream === "undefined") { fail("this browser has no DecompressionStream"); return; }
  const select = $("case");
  DATA.cases.forEach((c, i) => select.add(new Option(c.name, String(i))));
  $("legend").innerHTML = "";
  for (const [k, name] of Object.entries(DATA.labels)) {
    const span = document.createElement("span");
    const chip = document.createElement("i");
    chip.style.background = DATA.colors[Number(k) % DATA.colors.length];
    span.append(chip, name);
    $("legend").append(span);
  }
  buildPanels();
  select.addEventListener("change", () => startAt(Number(select.value)).catch(fail));
  $("axis").addEventListener("change", () => {
    state.axis = Number($("axis").value);
    state.slice = DATA.cases[state.caseIndex].best[state.axis];
    draw().catch(fail);
  });
  $("slice").addEventListener("input", () => { state.slice = Number($("slice").value); draw().catch(fail); });
  $("opacity").addEventListener("input", () => draw().catch(fail));
  $("panels").addEventListener("wheel", (e) => {
    e.preventDefault();
    state.slice += e.deltaY > 0 ? 1 : -1;
    draw().catch(fail);
  }, { passive: false });
  startAt(0).catch(fail);
}

init();
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", default="", help="for the title")
    p.add_argument("--dataset-dir", required=True, type=Path, help="the raw dataset folder (imagesTs, labelsTs)")
    p.add_argument("--predictions", nargs="+", required=True, type=Path, help="the cells' predictions/ folders")
    p.add_argument("--max-side", type=int, default=256, help="subsample an axis longer than this (voxels)")
    p.add_argument("--out", required=True, type=Path, help="the page (.html)")


def run(args: argparse.Namespace) -> int:
    dataset = Path(args.dataset_dir).name
    title = f"{args.experiment} on {dataset}: test cases and predictions" if args.experiment else \
        f"{dataset}: test cases and predictions"
    write_viewer(args.dataset_dir, args.predictions, args.out, title, args.max_side)
    return 0
