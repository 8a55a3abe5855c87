"""Train one cell of the grid: (dataset, network, loss, weighting, lr, seed).

A cell a cluster can trust:
- seeded: the same settings give the same weights and metrics on the CPU, bit for bit;
- resumable: every `checkpoint_interval` iterations the model, optimizer, scheduler, torch
  RNG state (CPU and CUDA), iteration, running loss and log are written atomically to
  `checkpoint.pt`; a job killed at any point (even `kill -9`) and rerun continues from there
  and ends with the same weights and log. The patch sampler needs no saved state: each
  iteration's generator is seeded by (seed, iteration). A checkpoint written for other
  settings (fingerprint) is discarded and the cell starts afresh;
- safe to load: `torch.load(..., weights_only=True)`: a checkpoint never executes code;
- traceable: `cell.json` records the resolved settings, package versions, git commit,
  device, wall time, peak memory and parameter count.

Outputs in the cell folder: `model.pt` (last), `model_best.pt` (best validation Dice),
`log.csv` (iteration, mean training loss since the last row, validation Dice, lr),
`split.json`, `cell.json`.

Each iteration's batch is drawn from a generator seeded by (seed, iteration), so background
loading threads (`recipe.data_workers`, on by default on CUDA) and resumption never change
which patches a run sees. On CUDA: bf16 autocast, channels-last memory format, pinned
host memory, cuDNN autotuning (`recipe.cuda_deterministic: true` trades speed for
reproducibility). The CUDA path has not been run on a GPU in this repository's tests.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import pickle
import platform
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, json_option, write_json, write_text
from dicebench.training.sampling import (BatchLoader, absent_classes, dataset_info, iteration_rng, list_cases,
                                         load_case, offline_augment, sample_batch, split_cases)

# No wall time here: log.csv is bit-for-bit the same for the same seed on the CPU (cell.json has it).
LOG_FIELDS = ["iteration", "train_loss", "val_dice", "lr"]


def make_optimizer(params, name: str, lr: float, options: dict) -> torch.optim.Optimizer:
    options = dict(options or {})
    if name == "adam":
        if "betas" in options:
            options["betas"] = tuple(options["betas"])
        return torch.optim.Adam(params, lr=lr, **options)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, **options)
    raise DicebenchError(f"unknown optimizer '{name}' (adam | sgd)")


def make_scheduler(optimizer, schedule: dict | None, iterations: int):
    schedule = dict(schedule or {"type": "constant"})
    kind = schedule.pop("type", "constant")
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    if kind == "step":  # Liu & Fu: lr x 0.2 every 10,000 iterations
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=schedule["step_size"], gamma=schedule["gamma"])
    if kind == "poly":  # nnU-Net's polynomial decay
        power = schedule.get("power", 0.9)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: (1 - min(it, iterations) / iterations) ** power)
    raise DicebenchError(f"unknown lr schedule '{kind}' (constant | step | poly)")


def provenance() -> dict:
    packages = {}
    for name in ("dicebench", "torch", "monai", "numpy", "scipy", "SimpleITK", "antspyx", "nibabel", "snakemake"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    try:
        root = Path(__file__).resolve().parents[3]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"packages": packages, "git_commit": commit, "python": sys.version.split()[0],
            "platform": platform.platform(), "hostname": platform.node()}


def hard_dice_objects(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float:
    """Mean Dice 2|P∩G|/(|P|+|G|) over the object classes present in either map.

    The validation monitor only (the evaluation step reports the published metrics). Unlike
    the tables, a class absent from both maps is left out rather than counted as 1."""
    from dicebench.evaluation.metrics import overlap_counts

    inter, n_pred, n_gt = overlap_counts(pred, gt, range(1, num_classes))
    present = (n_pred + n_gt) > 0
    if not present.any():
        return float("nan")
    return float(np.mean(2.0 * inter[present] / (n_pred + n_gt)[present]))


def _save_model(path: Path, model: torch.nn.Module, meta: dict) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": json.dumps(meta)}, tmp)


def _write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def settings_fingerprint(settings: dict) -> str:
    """What a checkpoint must match to be resumed: the settings that shape the run."""
    keep = {k: v for k, v in settings.items() if k not in ("threads", "device")}
    keep["recipe"] = {k: v for k, v in keep.get("recipe", {}).items() if k != "data_workers"}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """A resumable checkpoint; weights_only, so a checkpoint never executes code."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DicebenchError(f"{path}: unreadable or unsafe checkpoint ({first}); "
                             "delete it to restart the cell") from None


def _loader_workers(recipe: dict, device: torch.device) -> int:
    workers = recipe.get("data_workers")
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if device.type == "cuda" else 0
    return int(workers)


def _memory_format(dims: int):
    return torch.channels_last if dims == 2 else torch.channels_last_3d


class Progress:
    """Iteration, loss and it/s: a tqdm bar on a terminal; in a log file (Snakemake, Slurm)
    one plain line at the start, every `interval` seconds and at the end, no carriage returns."""

    def __init__(self, total: int, initial: int = 0, interval: float = 30.0, stream=None):
        self.total, self.done, self.interval = total, initial, interval
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.monotonic()
        self.first = initial
        self.bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", unit="it", file=self.stream)

    def update(self, loss: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            return
        now = time.monotonic()
        if self.done == self.first + 1 or self.done == self.total or now - self.last >= self.interval:
            rate = (self.done - self.first) / max(now - self.t0, 1e-9)
            print(f"train: iteration {self.done}/{self.total} loss {loss:.4f} {rate:.2f} it/s",
                  file=self.stream, flush=True)
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn, x: torch.Tensor,
                  y: torch.Tensor, device: torch.device, amp: str = "none", memory_format=None) -> float:
    """One optimisation step on a host batch; returns the loss. Shared with bench/bench_training.py.

    bf16 autocast covers the network only; the loss is computed in fp32 from the logits."""
    model.train()
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    if memory_format is not None:
        x = x.contiguous(memory_format=memory_format)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
        logits = model(x)
    loss = loss_fn(logits.float(), y)
    loss.backward()
    optimizer.step()
    return float(loss.item())  # one host sync per step, after the GPU work has been queued


def train_cell(dataset_dir: Path, class_stats_path: Path | None, settings: dict, out_dir: Path,
               stop_after: int | None = None) -> dict:
    """Train one cell; returns the summary written to cell.json. `stop_after` ends the run
    early right after that iteration's checkpoint (used to test resumption)."""
    from dicebench.inference.predict import auto_device, predict_probabilities
    from dicebench.losses import get_loss
    from dicebench.networks import count_parameters, get_network, network_dims
    from dicebench.preprocessing.class_stats import load_class_stats

    # CPU max_unpool (ENet) scatters to unique indices: deterministic in practice.
    warnings.filterwarnings("ignore", message="max_unpooling.*does not have a deterministic implementation")
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = settings["recipe"]
    seed = int(settings["seed"])
    threads = int(settings.get("threads") or os.environ.get("DICEBENCH_THREADS", 0) or 0)
    if threads:
        torch.set_num_threads(threads)
    device = auto_device(settings.get("device") or os.environ.get("DICEBENCH_DEVICE", "auto"))
    amp = recipe.get("amp", "bf16") if device.type == "cuda" else "none"
    if device.type == "cuda" and not recipe.get("cuda_deterministic", False):
        torch.backends.cudnn.benchmark = True  # fastest kernels; CUDA runs are not bit-reproducible
        torch.use_deterministic_algorithms(False)
    else:
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)

    info = dataset_info(dataset_dir)
    num_classes = len(info["labels"])
    in_channels = len(info["channel_names"])
    cases = list_cases(dataset_dir, "Tr")
    train_names, val_names = split_cases(cases, recipe.get("val_fraction", 0.2), recipe.get("split_seed", 0))
    write_json(out_dir / "split.json", {"train": train_names, "validation": val_names})
    train_cases = [load_case(dataset_dir, c, "Tr", in_channels) for c in train_names]
    val_cases = [load_case(dataset_dir, c, "Tr", in_channels) for c in val_names]
    augment = dict(recipe.get("augment") or {})
    if int(augment.get("offline_copies", 0)) > 0:  # Liu & Fu: k deformed copies of each scan
        train_cases = offline_augment(train_cases, int(augment["offline_copies"]),
                                      float(augment.get("offline_sigma", 15.0)), seed,
                                      int(augment.get("elastic_control_points", 4)))

    net_params = dict(settings.get("network_params") or {})
    dims = network_dims(settings["network"], **net_params)
    patch = tuple(int(v) for v in recipe["patch_size"])
    if len(patch) != dims:
        raise DicebenchError(f"network '{settings['network']}' is {dims}D but patch_size {list(patch)} has "
                             f"{len(patch)} entries")
    model = get_network(settings["network"], in_channels, num_classes, **net_params).to(device)
    channels_last = device.type == "cuda" and bool(recipe.get("channels_last", True))
    if channels_last:
        model = model.to(memory_format=_memory_format(dims))
    stats = load_class_stats(class_stats_path) if class_stats_path else None
    loss_fn = get_loss(settings["loss"], class_stats=stats, weighting=settings.get("weighting", "none"),
                       **(settings.get("loss_params") or {}))
    iterations = int(recipe["iterations"])
    lr = float(settings["lr"])
    optimizer = make_optimizer(model.parameters(), recipe["optimizer"], lr, recipe.get("optimizer_params"))
    scheduler = make_scheduler(optimizer, recipe.get("lr_schedule"), iterations)
    meta = {"network": settings["network"], "network_params": net_params, "in_channels": in_channels,
            "num_classes": num_classes, "patch_size": list(patch), "dims": dims, "labels": info["labels"]}
    fingerprint = settings_fingerprint(settings)

    log_rows: list[dict] = []
    running: list[float] = []
    # Training patches drawn, and how many of them lacked each class: the empty-patch share
    # that the sub-patching sweep plots against patch size (Kervadec & de Bruijne 2023, Sec. 2).
    drawn, empty = 0, np.zeros(num_classes, dtype=np.int64)
    start, best, elapsed_before = 0, -1.0, 0.0
    ckpt_path = out_dir / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, device)
        if ckpt.get("fingerprint") != fingerprint:
            print(f"{ckpt_path}: written for other settings; starting the cell afresh", file=sys.stderr)
            ckpt_path.unlink()
        else:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["torch_rng"].cpu())
            if device.type == "cuda" and "cuda_rng" in ckpt:
                torch.cuda.set_rng_state(ckpt["cuda_rng"].cpu(), device)
            start, best = int(ckpt["iteration"]), float(ckpt["best"])
            log_rows = json.loads(ckpt["log"])
            running = [float(v) for v in json.loads(ckpt["running"])]
            elapsed_before = float(ckpt["elapsed"])
            drawn, empty = int(ckpt["drawn"]), np.asarray(json.loads(ckpt["empty"]), dtype=np.int64)
            print(f"resuming from {ckpt_path} at iteration {start}", file=sys.stderr)

    if start == 0:  # a fresh start: no best weights or log of an earlier attempt may survive
        for stale in ("model_best.pt", "model.pt", "log.csv", "cell.json"):
            (out_dir / stale).unlink(missing_ok=True)

    val_interval = int(recipe.get("val_interval", max(1, iterations // 5)))
    ckpt_interval = int(recipe.get("checkpoint_interval", val_interval))
    # The training loss is logged more often than validation runs, for the learning curves.
    log_interval = int(recipe.get("log_interval", min(val_interval, 10)))
    batch_size = int(recipe["batch_size"])
    fg = float(recipe.get("fg_oversample", 0.0))
    workers = _loader_workers(recipe, device)

    def make_batch(it: int):
        x, y = sample_batch(train_cases, iteration_rng(seed, it), batch_size, patch, fg, augment)
        return x, y, absent_classes(y, num_classes)

    loader = BatchLoader(make_batch, start, iterations, workers=workers, prefetch=2, pin=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    bar = Progress(iterations, start)
    stream = iter(loader)
    try:
        for it, x, y, absent in stream:
            drawn += len(y)
            empty += absent
            loss = training_step(model, optimizer, loss_fn, x, y, device, amp,
                                 _memory_format(dims) if channels_last else None)
            if not math.isfinite(loss):
                raise DicebenchError(f"{out_dir}: the loss became {loss} at iteration {it + 1}")
            scheduler.step()
            running.append(loss)
            bar.update(running[-1])
            done = it + 1
            validate = done % val_interval == 0 or done == iterations
            if validate or done % log_interval == 0:
                val = float("nan")
                if validate:
                    val = float(np.mean([hard_dice_objects(
                        np.argmax(predict_probabilities(model, c.image, patch, 0.5, 4, device, amp=amp), 0),
                        c.label, num_classes) for c in val_cases]))
                log_rows.append({"iteration": done, "train_loss": float(np.mean(running)),
                                 "val_dice": val if validate else "", "lr": optimizer.param_groups[0]["lr"]})
                running = []
                if validate and np.isfinite(val) and val > best:
                    best = float(val)
                    _save_model(out_dir / "model_best.pt", model, {**meta, "iteration": done, "val_dice": best})
                _write_log(out_dir / "log.csv", log_rows)
            if done % ckpt_interval == 0 and done < iterations:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                         "iteration": done, "best": best, "fingerprint": fingerprint,
                         "log": json.dumps(log_rows), "running": json.dumps(running),
                         "elapsed": elapsed_before + time.time() - t0,
                         "drawn": drawn, "empty": json.dumps(empty.tolist())}
                if device.type == "cuda":
                    state["cuda_rng"] = torch.cuda.get_rng_state(device)
                with atomic_path(ckpt_path) as tmp:
                    torch.save(state, tmp)
                if stop_after is not None and done >= stop_after:
                    return {}
    finally:
        stream.close()  # stops the loader threads
        bar.close()
    if not (out_dir / "model_best.pt").exists():
        _save_model(out_dir / "model_best.pt", model, {**meta, "iteration": iterations, "val_dice": best})
    _save_model(out_dir / "model.pt", model, {**meta, "iteration": iterations})
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    try:
        import resource

        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        peak_rss_mb = None
    summary = {
        "settings": settings,
        "dataset_dir": str(dataset_dir),
        "split": {"train": train_names, "validation": val_names},
        "training_volumes": len(train_cases),  # with offline_copies k: (k + 1) x the training split
        "parameters": count_parameters(model),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "amp": amp,
        "channels_last": channels_last,
        "data_workers": workers,
        "threads": torch.get_num_threads(),
        "resumed_from_iteration": start or None,
        "wall_time_s": round(elapsed_before + time.time() - t0, 3),
        "peak_memory_mb": {"cuda": peak / 2**20 if peak else None, "rss": peak_rss_mb},
        "best_val_dice": best,
        "training_patches": drawn,
        "empty_patch_share": {name: float(empty[int(k)] / drawn) if drawn else None
                              for name, k in info["labels"].items()},
        "final_train_loss": log_rows[-1]["train_loss"] if log_rows else None,
        **provenance(),
    }
    write_json(out_dir / "cell.json", summary)
    ckpt_path.unlink(missing_ok=True)
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, type=Path, help="preprocessed dataset folder")
    p.add_argument("--class-stats", type=Path, help="class_stats.json of the dataset")
    p.add_argument("--settings", required=True, help="JSON object: the cell's resolved settings")
    p.add_argument("--out", required=True, type=Path, help="the cell folder")


def run(args: argparse.Namespace) -> int:
    settings = json_option(args.settings, "--settings")
    train_cell(args.dataset, args.class_stats, settings, args.out)
    return 0
