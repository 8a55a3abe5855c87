"""How to spend 2 CPU cores on the evidence run: training iterations per second of each network
at the evidence sizes (config/evidence.yaml), with 1 thread, with 2 threads, and as 2 parallel
single-thread jobs (their summed rate: what two Snakemake jobs side by side get), beside MONAI's
BasicUNet at the same size as the reference in the same run; and what a job pays to import.

Each row is the median of --repeats rounds; within a round the three ways run interleaved, so
load from elsewhere hits all of them alike.

    .venv/bin/python bench/bench_evidence.py [--seconds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def evidence_cases() -> list[tuple[str, str, dict, int, int, int, tuple]]:
    """(label, network or 'monai', params, in, classes, batch, patch) for each experiment of the
    evidence config, plus the same-size BasicUNet where MONAI has one."""
    config = yaml.safe_load((REPO / "config" / "evidence.yaml").read_text())
    classes = {"liu2018": 2, "kervadec2023": 4, "shen2018": 8, "sudre2017": 3}
    cases = []
    for name, exp in config["experiments"].items():
        net = exp["networks"][0]
        params = exp.get("network_params", {}).get(net, {})
        r = exp["recipe"]
        cases.append((f"{name}: {net} {params}", net, params, 1, classes[name], r["batch_size"],
                       tuple(r["patch_size"])))
        # unet2d is a rebuild of MONAI's BasicUNet, output-identical (tests/test_unet2d.py); the 3D U-Net (Cicek) is
        # ours, so MONAI's 3D BasicUNet of the same first width is its reference.
        if net == "unet3d":
            w = params.get("width", 32)
            feats = (w, 2 * w, 4 * w, 8 * w, 16 * w, w)
            cases.append((f"  ref MONAI BasicUNet-3D {feats}", "monai", {"dims": 3, "features": feats}, 1,
                          classes[name], r["batch_size"], tuple(r["patch_size"])))
    return cases


WORKER = r"""
import json, sys, time, torch
from torch import nn
spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
if spec["net"] == "monai":
    from monai.networks.nets import BasicUNet
    model = BasicUNet(spatial_dims=spec["params"]["dims"], in_channels=spec["cin"], out_channels=spec["k"],
                      features=tuple(spec["params"]["features"]))
else:
    from dicebench.networks import get_network
    model = get_network(spec["net"], spec["cin"], spec["k"], **spec["params"])
sys.path.insert(0, spec["bench"])
from bench_networks import iterations_per_second
print(iterations_per_second(model, spec["cin"], spec["k"], spec["batch"], tuple(spec["patch"]),
                            torch.device("cpu"), spec["seconds"]))
"""


def _rate(case, threads: int, seconds: float, parallel: int = 1) -> float:
    """Iterations per second summed over `parallel` processes of `threads` threads each."""
    _, net, params, cin, k, batch, patch = case
    spec = json.dumps({"net": net, "params": params, "cin": cin, "k": k, "batch": batch, "patch": list(patch),
                       "threads": threads, "seconds": seconds, "bench": str(REPO / "bench")})
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, spec], stdout=subprocess.PIPE, text=True)
             for _ in range(parallel)]
    return sum(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def import_seconds(statement: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", f"import time; t = time.perf_counter(); {statement}; "
                              "print(time.perf_counter() - t)"], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median is shown")
    args = ap.parse_args()
    import torch

    print(f"CPU, torch {torch.__version__}; training iterations/s (forward + backward + step), "
          f"median of {args.repeats} interleaved rounds")
    print(f"{'network (evidence size)':58s} {'batch x patch':>14s} {'1 thread':>9s} {'2 threads':>10s} "
          f"{'2 jobs x 1':>11s}")
    for case in evidence_cases():
        rounds = {"1": [], "2": [], "2x1": []}
        for _ in range(args.repeats):
            rounds["1"].append(_rate(case, 1, args.seconds))
            rounds["2"].append(_rate(case, 2, args.seconds))
            rounds["2x1"].append(_rate(case, 1, args.seconds, parallel=2))
        m = {k: statistics.median(v) for k, v in rounds.items()}
        shape = f"{case[5]}x{'x'.join(map(str, case[6]))}"
        print(f"{case[0][:58]:58s} {shape:>14s} {m['1']:9.2f} {m['2']:10.2f} {m['2x1']:11.2f}", flush=True)
    print("\nimport cost of a job (median of runs, seconds):")
    for label, stmt in (("torch", "import torch"),
                        ("dicebench.training.trainer (+ torch)", "import dicebench.training.trainer"),
                        ("monai.inferers (+ torch)", "import torch, monai.inferers")):
        print(f"  {label:40s} {import_seconds(stmt, args.repeats):6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
