"""Full training steps per second: sampling + augmentation + network + loss + optimizer.

The step is the trainer's own (`dicebench.training.trainer.training_step` fed by
`BatchLoader`/`sample_batch`), on in-memory phantom-like volumes, so the number says what a
cell's training loop achieves. Beside it, in the same run, the reference: the same network
and optimizer on one pre-made batch with MONAI's DiceLoss (no sampling, no augmentation),
the ceiling our data path can approach. A second table times our B-spline elastic
deformation beside MONAI's Rand2DElastic/Rand3DElastic on the same patch.

CPU (default): the synthetic config's sizes (config/config.yaml).
GPU (`--device cuda`): fp32 against bf16 autocast, unet3d (published size) at 64^3 x 3 and
enet2d (published size) at 256^2 x 8, side by side, with background loading and pinned memory.

    .venv/bin/python bench/bench_training.py [--seconds 3] [--threads 1]
    python bench/bench_training.py --device cuda
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import ndimage

from dicebench.losses import get_loss
from dicebench.networks import count_parameters, get_network
from dicebench.preprocessing.augmentation import elastic_deform
from dicebench.training.sampling import BatchLoader, Case, iteration_rng, sample_batch
from dicebench.training.trainer import _memory_format, make_optimizer, training_step

# (label, network, params, classes, loss, batch, patch, augment, volume shape (Z, Y, X))
CPU_CASES = [
    ("enet2d w8 (Kervadec)", "enet2d", {"width": 8}, 4, "dice", 8, (64, 64), {}, (10, 96, 96)),
    ("unet2d w8 (Sudre)", "unet2d", {"width": 8}, 2, "gdl", 8, (64, 64), {}, (10, 96, 96)),
    ("unet3d w4 d3 (Shen)", "unet3d", {"width": 4, "depth": 3}, 8, "dice", 3, (32, 32, 32), {}, (40, 64, 64)),
    ("rdd 3D w6 (Liu & Fu)", "rdd", {"dims": 3, "width": 6}, 2, "vnet", 1, (32, 48, 48), {}, (40, 64, 64)),
    ("rdd 3D w6 + elastic s=15", "rdd", {"dims": 3, "width": 6}, 2, "vnet", 1, (32, 48, 48),
     {"elastic_sigma": 15.0}, (40, 64, 64)),
]
GPU_CASES = [
    ("unet3d w32 d4 (Cicek)", "unet3d", {}, 8, "dice", 3, (64, 64, 64), {}, (96, 128, 128)),
    ("enet2d w16 (Paszke)", "enet2d", {}, 4, "dice", 8, (256, 256), {}, (24, 288, 288)),
]


def phantom_cases(n: int, shape: tuple[int, ...], classes: int, seed: int = 0) -> list[Case]:
    """Smooth random volumes with `classes` labels: realistic cost for crops and warps."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        smooth = ndimage.gaussian_filter(rng.normal(size=shape), 3.0)
        label = np.digitize(smooth, np.quantile(smooth, np.linspace(0.5, 0.95, classes - 1))).astype(np.int64)
        cases.append(Case(f"c{i}", (smooth[None] * 10).astype(np.float32), label))
    return cases


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, seconds: float, device: torch.device, warmup: int) -> float:
    for i in range(warmup):
        step(i)
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        step(warmup + n)
        n += 1
        if n % 2 == 0 or device.type == "cpu":
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds and n >= 3:
                return n / elapsed


def full_step_rate(case: tuple, device: torch.device, seconds: float, amp: str = "none", workers: int = 0,
                   warmup: int = 2) -> tuple[float, int]:
    """Our training loop's it/s (and the parameter count)."""
    label, net, params, k, loss_name, batch, patch, augment, shape = case
    torch.manual_seed(0)
    cases = phantom_cases(max(3, batch), shape, k)
    model = get_network(net, 1, k, **params).to(device)
    fmt = _memory_format(len(patch)) if device.type == "cuda" else None
    if fmt is not None:
        model = model.to(memory_format=fmt)
    opt = make_optimizer(model.parameters(), "adam", 1e-4, {})
    loss_fn = get_loss(loss_name)

    def make(it):
        return sample_batch(cases, iteration_rng(0, it), batch, patch, 0.0, augment)

    stream = iter(BatchLoader(make, 0, 10**9, workers=workers, prefetch=2, pin=device.type == "cuda"))

    def step(_):
        _, x, y = next(stream)
        training_step(model, opt, loss_fn, x, y, device, amp, fmt)

    rate = _timed(step, seconds, device, warmup)
    stream.close()
    return rate, count_parameters(model)


def reference_step_rate(case: tuple, device: torch.device, seconds: float, warmup: int = 2) -> float:
    """Reference: same network and optimizer, one fixed batch, MONAI DiceLoss (softmax, one-hot)."""
    from monai.losses import DiceLoss

    label, net, params, k, loss_name, batch, patch, augment, shape = case
    torch.manual_seed(0)
    model = get_network(net, 1, k, **params).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, *patch, device=device)
    y = torch.randint(0, k, (batch, 1, *patch), device=device)
    dice = DiceLoss(softmax=True, to_onehot_y=True)

    def step(_):
        opt.zero_grad(set_to_none=True)
        loss = dice(model(x), y)
        loss.backward()
        opt.step()
        loss.item()

    return _timed(step, seconds, device, warmup)


def elastic_rates(patch: tuple[int, ...], seconds: float) -> tuple[float, float]:
    """Calls per second: our B-spline elastic deformation vs MONAI's RandNDElastic, same patch."""
    from monai.transforms import Rand2DElastic, Rand3DElastic

    case = phantom_cases(1, patch, 3)[0]
    rng = np.random.default_rng(0)

    def ours(_):
        elastic_deform(case.image, case.label, rng, 15.0, 4)

    if len(patch) == 3:
        monai = Rand3DElastic(sigma_range=(5, 8), magnitude_range=(100, 200), prob=1.0, padding_mode="border")
    else:
        monai = Rand2DElastic(spacing=(16, 16), magnitude_range=(1, 2), prob=1.0, padding_mode="border")
    monai.set_random_state(0)
    image = torch.from_numpy(case.image)
    label = torch.from_numpy(case.label[None].astype(np.float32))

    def ref(_):
        monai(image, mode="bilinear")
        monai(label, mode="nearest", randomize=False)

    cpu = torch.device("cpu")
    return _timed(ours, seconds, cpu, 1), _timed(ref, seconds, cpu, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (the CI box has 2, shared)")
    ap.add_argument("--workers", type=int, default=4, help="background loading threads on CUDA")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu":
        print(f"CPU, {args.threads} thread(s), torch {torch.__version__}")
        print(f"{'network (recipe)':28s} {'params':>9s} {'batch x patch':>14s} {'ours it/s':>10s} "
              f"{'ref it/s':>9s} {'ours/ref':>9s}")
        print("  ours = sample_batch + augmentation + our loss + Adam; ref = fixed batch + MONAI DiceLoss + Adam")
        for case in CPU_CASES:
            ours, n_params = full_step_rate(case, device, args.seconds)
            ref = reference_step_rate(case, device, args.seconds)
            shape = f"{case[5]}x{'x'.join(map(str, case[6]))}"
            print(f"{case[0]:28s} {n_params:>9,d} {shape:>14s} {ours:10.2f} {ref:9.2f} {ours / ref:8.2f}x", flush=True)
        print()
        print(f"{'elastic deformation (image + label)':40s} {'ours calls/s':>13s} {'MONAI calls/s':>14s}")
        for patch in ((64, 64), (32, 48, 48)):
            ours, ref = elastic_rates(patch, args.seconds)
            print(f"{'patch ' + 'x'.join(map(str, patch)):40s} {ours:13.2f} {ref:14.2f}", flush=True)
        return 0
    if not torch.cuda.is_available():
        raise SystemExit("bench_training: --device cuda but torch sees no CUDA device")
    torch.backends.cudnn.benchmark = True
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.workers} loader threads, "
          "pinned memory, channels-last")
    print(f"{'network':24s} {'params':>11s} {'batch x patch':>14s} {'ref fp32':>9s} {'fp32 it/s':>10s} "
          f"{'bf16 it/s':>10s} {'bf16/fp32':>10s} {'fp32 GiB':>9s} {'bf16 GiB':>9s}")
    for case in GPU_CASES:
        ref = reference_step_rate(case, device, args.seconds, warmup=5)
        row = []
        for amp in ("none", "bf16"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            ips, n_params = full_step_rate(case, device, args.seconds, amp=amp, workers=args.workers, warmup=5)
            row.append((ips, torch.cuda.max_memory_allocated(device) / 2**30))
        shape = f"{case[5]}x{'x'.join(map(str, case[6]))}"
        print(f"{case[0]:24s} {n_params:>11,d} {shape:>14s} {ref:9.2f} {row[0][0]:10.2f} {row[1][0]:10.2f} "
              f"{row[1][0] / row[0][0]:9.2f}x {row[0][1]:9.2f} {row[1][1]:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
