"""Training iterations per second of each network (forward + backward + SGD step).

CPU (default): the synthetic-config sizes from config/config.yaml, so the number says how
long a synthetic cell trains, beside MONAI's BasicUNet at a comparable size as the reference
in the same run. GPU (`--device cuda`): fp32 against bf16 autocast at the published sizes,
unet3d at 64^3 x 3 (Shen et al. 2018) and enet2d at 256^2 x 8, side by side.

On the CPU it then sets unet2d (our torch rebuild of MONAI's BasicUNet) beside the BasicUNet it
replaced, built with the same arguments and weights: seconds per training step (width 8, batch
8, 64x64, median of --repeats interleaved blocks) with the largest logit difference, and the
import each costs a fresh interpreter (wall and CPU seconds, median of --repeats interleaved).
`--unet2d-only` prints just that comparison.

    PYTHONPATH=src .venv/bin/python bench/bench_networks.py [--seconds 3] [--threads 1] [--repeats 7] [--unet2d-only]
    python bench/bench_networks.py --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

from bench_sliding_window import print_import_costs  # the same import table (bench/ is on the path)
from dicebench.networks import count_parameters, get_network

# (label, builder, in_channels, num_classes, batch, spatial)
CPU_CASES = [
    ("unet2d w8", lambda: get_network("unet2d", 1, 2, width=8), 1, 2, 8, (64, 64)),
    ("enet2d w8", lambda: get_network("enet2d", 1, 4, width=8), 1, 4, 8, (64, 64)),
    ("ref monai BasicUNet-2D (4,8,16,32,64,4)", lambda: _monai(2, 1, 4, (4, 8, 16, 32, 64, 4)), 1, 4, 8, (64, 64)),
    ("unet3d w4 d3", lambda: get_network("unet3d", 1, 8, width=4, depth=3), 1, 8, 3, (32, 32, 32)),
    ("rdd 3D w6", lambda: get_network("rdd", 1, 2, dims=3, width=6), 1, 2, 1, (32, 48, 48)),
    ("ref monai BasicUNet-3D (4,4,8,16,32,4)", lambda: _monai(3, 1, 8, (4, 4, 8, 16, 32, 4)), 1, 8, 3, (32, 32, 32)),
]

GPU_CASES = [
    ("unet3d w32 d4 (Cicek)", lambda: get_network("unet3d", 1, 8), 1, 8, 3, (64, 64, 64)),
    ("enet2d w16 (Paszke)", lambda: get_network("enet2d", 1, 4), 1, 4, 8, (256, 256)),
]


def _monai(dims: int, cin: int, k: int, features: tuple) -> nn.Module:
    from monai.networks.nets import BasicUNet
    return BasicUNet(spatial_dims=dims, in_channels=cin, out_channels=k, features=features)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def iterations_per_second(model: nn.Module, cin: int, k: int, batch: int, spatial: tuple,
                          device: torch.device, seconds: float, amp: torch.dtype | None = None,
                          warmup: int = 2) -> float:
    """Time full training iterations on fixed random data until `seconds` have passed."""
    torch.manual_seed(0)
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, cin, *spatial, device=device)
    y = torch.randint(0, k, (batch, *spatial), device=device)
    ctx = (torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with ctx():
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        _sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 3:
            return n / elapsed


UNET2D_IMPORTS = {
    "torch alone": "import torch",
    "torch + ours": "import torch, dicebench.networks.unet",
    "torch + MONAI": "import torch; from monai.networks.nets import BasicUNet",
}


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def unet2d_against_monai(repeats: int, steps: int = 5, width: int = 8, batch: int = 8,
                         spatial: tuple = (64, 64), k: int = 3) -> None:
    """Print ours beside MONAI's BasicUNet: seconds per training step and the import cost."""
    from monai.networks.nets import BasicUNet

    torch.manual_seed(0)
    ref = BasicUNet(spatial_dims=2, in_channels=1, out_channels=k,
                    features=(width, 2 * width, 4 * width, 8 * width, 16 * width, width),
                    norm=("instance", {"affine": True}), bias=False, upsample="deconv")
    ours = get_network("unet2d", 1, k, width=width)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(batch, 1, *spatial, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, k, (batch, *spatial), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        diff = (ours.eval()(x) - ref.eval()(x)).abs().max().item()
    runs = {}
    for name, model in (("ours", ours.train()), ("MONAI", ref.train())):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        runs[name] = (lambda m=model, o=opt: _train_step(m, o, x, y), [])
        runs[name][0]()  # warm-up
    for r in range(repeats):
        for name in (("ours", "MONAI") if r % 2 == 0 else ("MONAI", "ours")):
            step, times = runs[name]
            t = time.perf_counter()
            for _ in range(steps):
                step()
            times.append((time.perf_counter() - t) / steps)
    t_ours, t_ref = (statistics.median(runs[n][1]) for n in ("ours", "MONAI"))
    print(f"\nunet2d w{width} ({count_parameters(ours):,d} parameters) beside MONAI BasicUNet, same arguments and "
          f"weights; {batch}x{'x'.join(map(str, spatial))}, {torch.get_num_threads()} thread(s)")
    print(f"  seconds per training step (median of {repeats} interleaved blocks of {steps}): "
          f"ours {t_ours:.4f}  MONAI {t_ref:.4f}  ratio {t_ours / t_ref:.2f}   max|logit diff| {diff:.1e}")

    print(f"  import in a fresh interpreter (median of {repeats} interleaved): wall s, CPU s")
    print_import_costs(UNET2D_IMPORTS, repeats, indent=4)

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (the CI box has 2, shared)")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds of the unet2d-vs-MONAI comparison")
    ap.add_argument("--unet2d-only", action="store_true", help="only the unet2d-vs-MONAI comparison (CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu":
        print(f"CPU, {args.threads} thread(s), torch {torch.__version__}")
        if args.unet2d_only:
            unet2d_against_monai(args.repeats)
            return 0
        print(f"{'network':42s} {'params':>10s} {'batch x spatial':>18s} {'it/s':>8s}")
        for label, build, cin, k, batch, spatial in CPU_CASES:
            model = build()
            ips = iterations_per_second(model, cin, k, batch, spatial, device, args.seconds)
            shape = f"{batch}x{'x'.join(map(str, spatial))}"
            print(f"{label:42s} {count_parameters(model):>10,d} {shape:>18s} {ips:8.2f}", flush=True)
        unet2d_against_monai(args.repeats)
        return 0
    if not torch.cuda.is_available():
        raise SystemExit("bench_networks: --device cuda but torch sees no CUDA device")
    torch.backends.cudnn.benchmark = True
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    print(f"{'network':26s} {'params':>11s} {'batch x spatial':>16s} {'fp32 it/s':>10s} {'bf16 it/s':>10s} "
          f"{'speed-up':>9s} {'fp32 GiB':>9s} {'bf16 GiB':>9s}")
    for label, build, cin, k, batch, spatial in GPU_CASES:
        row = []
        for amp in (None, torch.bfloat16):
            torch.cuda.reset_peak_memory_stats(device)
            model = build()
            ips = iterations_per_second(model, cin, k, batch, spatial, device, args.seconds, amp=amp, warmup=5)
            row.append((ips, torch.cuda.max_memory_allocated(device) / 2**30))
            del model
            torch.cuda.empty_cache()
        shape = f"{batch}x{'x'.join(map(str, spatial))}"
        print(f"{label:26s} {count_parameters(build()):>11,d} {shape:>16s} {row[0][0]:10.2f} {row[1][0]:10.2f} "
              f"{row[1][0] / row[0][0]:8.2f}x {row[0][1]:9.2f} {row[1][1]:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
