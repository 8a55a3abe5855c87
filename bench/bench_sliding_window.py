"""Our Gaussian-blended sliding window beside MONAI's `sliding_window_inference` (the call it
replaced), in the same run: seconds per volume and the import each path costs a job.

Per case, `predict_probabilities` (overlap 0.5, `--sw-batch` windows per forward) against the
former path, MONAI called the same way (2D: slices of a chunk of 64 as the batch, the same
mirroring-capable predictor, windows and output on the CPU); median of `--repeats` interleaved
runs, with the largest difference between the two outputs. Each network case is also run with a
1x1 convolution, so that the blending itself, not the network, is what is timed. The import
rows time fresh interpreters (`python -c`, wall and CPU seconds, median of `--repeats`
interleaved): torch alone, our path, and our path with `monai.inferers` (what every training
and inference job imported before).

    PYTHONPATH=src .venv/bin/python bench/bench_sliding_window.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dicebench.networks import get_network
from dicebench.sliding_window import make_predictor, predict_probabilities

# (label, network builder, volume (C, Z, Y, X), window)
CASES = [
    ("enet2d w16 (2D)", lambda: get_network("enet2d", 1, 4, width=16), (1, 24, 72, 60), (64, 64)),
    ("enet2d w16 (2D)", lambda: get_network("enet2d", 1, 4, width=16), (1, 16, 128, 128), (64, 64)),
    ("unet3d w4 d3 (3D)", lambda: get_network("unet3d", 1, 4, width=4, depth=3), (1, 40, 64, 80), (24, 24, 24)),
    ("unet3d w4 d3 (3D)", lambda: get_network("unet3d", 1, 4, width=4, depth=3), (1, 48, 96, 96), (32, 48, 48)),
]
IMPORTS = {
    "torch alone": "import numpy, torch",
    "ours": "import numpy, torch, tqdm, dicebench.sliding_window",
    "monai (before)": "import numpy, torch, tqdm, dicebench.sliding_window, monai.inferers",
}


def monai_predict(model, image: np.ndarray, patch, overlap: float, sw_batch_size: int,
                  slices_per_chunk: int = 64) -> np.ndarray:
    """The former `predict_probabilities`: MONAI's sliding window on the same chunks and predictor."""
    from monai.inferers import sliding_window_inference

    predictor = make_predictor(model)

    def sliding(x: torch.Tensor) -> torch.Tensor:
        return sliding_window_inference(x, patch, sw_batch_size, predictor, overlap=overlap, mode="gaussian",
                                        sw_device="cpu", device="cpu").float()

    with torch.no_grad():
        model.eval()
        if len(patch) == 3:
            return sliding(torch.from_numpy(image)[None])[0].numpy()
        outs = [sliding(torch.from_numpy(np.ascontiguousarray(image[:, z:z + slices_per_chunk].transpose(1, 0, 2, 3))))
                for z in range(0, image.shape[1], slices_per_chunk)]
        return torch.cat(outs).permute(1, 0, 2, 3).numpy()


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def time_pair(ours, ref, repeats: int) -> tuple[float, float]:
    """Medians of `repeats` interleaved runs (the order alternating), after one warm-up each."""
    ours(), ref()
    a, b = [], []
    for r in range(repeats):
        if r % 2:
            b.append(_seconds(ref)), a.append(_seconds(ours))
        else:
            a.append(_seconds(ours)), b.append(_seconds(ref))
    return statistics.median(a), statistics.median(b)


def import_seconds(code: str, env: dict) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a fresh `python -c code`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sw-batch", type=int, default=8, help="windows per forward (config.yaml: 8)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    importlib.import_module("monai.inferers")  # once, here, outside the timed calls

    print(f"threads={torch.get_num_threads()} torch={torch.__version__} sw_batch={args.sw_batch} overlap=0.5; "
          f"seconds per volume, median of {args.repeats} interleaved")
    print(f"{'case':<19} {'volume':>14} {'window':>10} {'network':>8} {'ours':>8} {'monai':>8} {'ratio':>6} "
          f"{'max|diff|':>10}")
    for label, build, shape, patch in CASES:
        torch.manual_seed(0)
        image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        conv = torch.nn.Conv2d if len(patch) == 2 else torch.nn.Conv3d
        for net_name, model in (("full", build().eval()), ("1x1conv", conv(1, 4, 1).eval())):
            def ours():
                return predict_probabilities(model, image, patch, 0.5, args.sw_batch, "cpu")

            def ref():
                return monai_predict(model, image, patch, 0.5, args.sw_batch)

            diff = float(np.abs(ours() - ref()).max())
            t_ours, t_ref = time_pair(ours, ref, args.repeats)
            print(f"{label:<19} {'x'.join(map(str, shape[1:])):>14} {'x'.join(map(str, patch)):>10} "
                  f"{net_name:>8} {t_ours:>8.3f} {t_ref:>8.3f} {t_ours / t_ref:>6.2f} {diff:>10.1e}")

    print(f"\nimport in a fresh interpreter (median of {args.repeats} interleaved): wall s, CPU s")
    print_import_costs(IMPORTS, args.repeats, indent=2)


def print_import_costs(imports: dict[str, str], repeats: int, indent: int = 2) -> None:
    """Median wall and CPU seconds of each fresh `python -c code` (interleaved, file cache
    warmed first), with its excess over the entry "torch alone"."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    for code in imports.values():  # warm the file cache
        import_seconds(code, env)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in imports}
    for r in range(repeats):
        for name in (list(imports) if r % 2 == 0 else list(reversed(imports))):
            times[name].append(import_seconds(imports[name], env))
    base_wall, base_cpu = (statistics.median(t[i] for t in times["torch alone"]) for i in (0, 1))
    for name, runs in times.items():
        wall, cpu = (statistics.median(t[i] for t in runs) for i in (0, 1))
        extra = "" if name == "torch alone" else f"   (+{wall - base_wall:.2f} wall, +{cpu - base_cpu:.2f} CPU over torch)"
        print(f"{' ' * indent}{name:<15} {wall:>6.2f} {cpu:>6.2f}{extra}", flush=True)

if __name__ == "__main__":
    main()
