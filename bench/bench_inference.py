"""Seconds per volume of sliding-window inference, ours beside plain MONAI in the same run.

For a 2D (unet2d, slice by slice) and a 3D (unet3d) network at the synthetic-config sizes,
`predict_probabilities` at overlap 0.25 / 0.5, mirroring off / on, printed beside MONAI's
`sliding_window_inference` called directly with the same network, window and overlap (the
reference: what our chunking, flips and CPU-side accumulation cost on top). The last column
adds resampling back to the original grid (per-class, running argmax) for the default setting.
`--device cuda` uses the published network sizes on a larger volume, fp32 against bf16.

    .venv/bin/python bench/bench_inference.py [--threads 1] [--repeats 2]
    python bench/bench_inference.py --device cuda
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk
import torch

from dicebench.inference.predict import labels_on_reference, predict_probabilities
from dicebench.networks import get_network

# (label, builder, classes, volume (C, Z, Y, X), patch)
CPU_CASES = [
    ("unet2d w8 (2D)", lambda: get_network("unet2d", 1, 4, width=8), 4, (1, 24, 96, 96), (64, 64)),
    ("unet3d w4 d3 (3D)", lambda: get_network("unet3d", 1, 4, width=4, depth=3), 4, (1, 40, 80, 80), (32, 48, 48)),
]
GPU_CASES = [
    ("unet2d w64 (2D)", lambda: get_network("unet2d", 1, 4), 4, (1, 64, 384, 384), (256, 256)),
    ("unet3d w32 d4 (3D)", lambda: get_network("unet3d", 1, 8), 8, (1, 128, 256, 256), (64, 128, 128)),
]


def _time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def _monai(model, image: np.ndarray, patch, overlap: float, device) -> np.ndarray:
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(image)
    x = x.permute(1, 0, 2, 3) if len(patch) == 2 else x[None]
    with torch.no_grad():
        out = sliding_window_inference(x.to(device), patch, 8, lambda t: torch.softmax(model(t), 1),
                                       overlap=overlap, mode="gaussian")
    return out.cpu().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cases = GPU_CASES if cuda else CPU_CASES
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}; seconds per volume "
          f"(best of {args.repeats})")
    for label, build, k, shape, patch in cases:
        torch.manual_seed(0)
        model = build().to(device).eval()
        image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        print(f"\n{label}: volume {shape[1:]}, window {patch}")
        print(f"{'overlap':>8} {'mirror':>7} {'ours':>9} {'monai':>9} {'ratio':>6}")
        for overlap in (0.25, 0.5):
            ref = _time(lambda: _monai(model, image, patch, overlap, device), args.repeats, sync)
            for mirror in (False, True):
                ours = _time(lambda: predict_probabilities(model, image, patch, overlap, 8, device, mirror),
                             args.repeats, sync)
                print(f"{overlap:>8} {str(mirror):>7} {ours:>9.3f} {ref:>9.3f} {ours / ref:>6.2f}"
                      + ("   (monai without mirroring)" if mirror else ""))
        if cuda:
            for amp in ("none", "bf16"):
                t = _time(lambda: predict_probabilities(model, image, patch, 0.5, 8, device, False, amp),
                          args.repeats, sync)
                print(f"  amp={amp}: {t:.3f} s")
        # default setting plus the way back: resample from a 1x1x1.5 mm grid to a 1.5x1.5x6 mm image
        grid = sitk.Image(shape[3], shape[2], shape[1], sitk.sitkFloat32)
        grid.SetSpacing((1.0, 1.0, 1.5))
        ref_img = sitk.Image(int(shape[3] / 1.5), int(shape[2] / 1.5), int(shape[1] / 4), sitk.sitkUInt8)
        ref_img.SetSpacing((1.5, 1.5, 6.0))
        probs = predict_probabilities(model, image, patch, 0.5, 8, device)
        back = _time(lambda: labels_on_reference(probs, grid, ref_img), args.repeats, sync)
        print(f"  resample {k} classes back to {ref_img.GetSize()[::-1]} + argmax: {back:.3f} s")


if __name__ == "__main__":
    main()
