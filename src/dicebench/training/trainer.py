"""Train one cell of the grid: (dataset, network, loss, weighting, lr, seed).

A cell a cluster can trust:
- seeded: the same settings give the same weights and metrics on the CPU, bit for bit;
- resumable: every `checkpoint_interval` iterations the model, optimizer, scheduler, RNG
  states, iteration and log are written atomically to `checkpoint.pt`; a job killed at
  any point and rerun continues from there and ends with the same weights;
- safe to load: `torch.load(..., weights_only=True)`, RNG states stored as tensors/JSON;
- traceable: `cell.json` records the resolved settings, package versions, git commit,
  device, wall time, peak memory and parameter count.

Outputs in the cell folder: `model.pt` (last), `model_best.pt` (best validation Dice),
`log.csv` (iteration, training loss, validation Dice, lr), `split.json`, `cell.json`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, write_json, write_text
from dicebench.training.sampling import dataset_info, list_cases, load_case, sample_batch, split_cases

LOG_FIELDS = ["iteration", "train_loss", "val_dice", "lr", "elapsed_s"]


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
    """Mean Dice over the object classes present in either map (validation monitor only)."""
    from dicebench.evaluation.metrics import dice

    scores = dice(pred, gt, list(range(1, num_classes)))
    values = [v for v in scores.values() if v is not None and not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def _save_model(path: Path, model: torch.nn.Module, meta: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "meta": json.dumps(meta)}, tmp)


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _restore_rng(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


def _write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def train_cell(dataset_dir: Path, class_stats_path: Path | None, settings: dict, out_dir: Path,
               stop_after: int | None = None) -> dict:
    """Train one cell; returns the summary written to cell.json. `stop_after` ends the run
    early right after that iteration's checkpoint (used to test resumption)."""
    from tqdm import tqdm

    from dicebench.inference.predict import auto_device, predict_probabilities
    from dicebench.losses import get_loss
    from dicebench.networks import count_parameters, get_network, network_dims

    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = settings["recipe"]
    seed = int(settings["seed"])
    threads = int(settings.get("threads") or os.environ.get("DICEBENCH_THREADS", 0) or 0)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(seed)
    device = auto_device(settings.get("device", "auto"))
    amp = recipe.get("amp", "bf16") if device.type == "cuda" else "none"

    info = dataset_info(dataset_dir)
    num_classes = len(info["labels"])
    in_channels = len(info["channel_names"])
    cases = list_cases(dataset_dir, "Tr")
    train_names, val_names = split_cases(cases, recipe.get("val_fraction", 0.2), recipe.get("split_seed", 0))
    write_json(out_dir / "split.json", {"train": train_names, "validation": val_names})
    train_cases = [load_case(dataset_dir, c, "Tr", in_channels) for c in train_names]
    val_cases = [load_case(dataset_dir, c, "Tr", in_channels) for c in val_names]

    net_params = dict(settings.get("network_params") or {})
    dims = network_dims(settings["network"], **net_params)
    patch = tuple(int(v) for v in recipe["patch_size"])
    if len(patch) != dims:
        raise DicebenchError(f"network '{settings['network']}' is {dims}D but patch_size {list(patch)} has "
                             f"{len(patch)} entries")
    model = get_network(settings["network"], in_channels, num_classes, **net_params).to(device)
    stats = None
    if class_stats_path:
        stats = json.loads(Path(class_stats_path).read_text())
    loss_fn = get_loss(settings["loss"], class_stats=stats, weighting=settings.get("weighting", "none"),
                       **(settings.get("loss_params") or {}))
    iterations = int(recipe["iterations"])
    lr = float(settings["lr"])
    optimizer = make_optimizer(model.parameters(), recipe["optimizer"], lr, recipe.get("optimizer_params"))
    scheduler = make_scheduler(optimizer, recipe.get("lr_schedule"), iterations)
    meta = {"network": settings["network"], "network_params": net_params, "in_channels": in_channels,
            "num_classes": num_classes, "patch_size": list(patch), "dims": dims, "labels": info["labels"]}

    log_rows: list[dict] = []
    start, best, elapsed_before = 0, -1.0, 0.0
    ckpt_path = out_dir / "checkpoint.pt"
    if ckpt_path.exists():
        try:
            ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        except (RuntimeError, EOFError, OSError) as exc:
            raise DicebenchError(f"{ckpt_path}: unreadable checkpoint ({str(exc).splitlines()[0][:120]}); "
                                 "delete it to restart the cell") from None
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        _restore_rng(rng, ckpt["numpy_rng"])
        start, best = int(ckpt["iteration"]), float(ckpt["best"])
        log_rows = json.loads(ckpt["log"])
        elapsed_before = float(ckpt["elapsed"])
        print(f"resuming from {ckpt_path} at iteration {start}", file=sys.stderr)

    val_interval = int(recipe.get("val_interval", max(1, iterations // 5)))
    ckpt_interval = int(recipe.get("checkpoint_interval", val_interval))
    batch_size = int(recipe["batch_size"])
    running = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    bar = tqdm(range(start, iterations), initial=start, total=iterations, desc="train", unit="it",
               mininterval=1 if sys.stderr.isatty() else 10, disable=None)
    for it in bar:
        model.train()
        x, y = sample_batch(train_cases, rng, batch_size, patch, recipe.get("fg_oversample", 0.0),
                            recipe.get("augment"))
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        if not torch.isfinite(loss):
            raise DicebenchError(f"{out_dir}: the loss became {loss.item()} at iteration {it + 1}")
        loss.backward()
        optimizer.step()
        scheduler.step()
        running.append(loss.item())
        bar.set_postfix(loss=f"{running[-1]:.4f}", refresh=False)
        done = it + 1
        if done % val_interval == 0 or done == iterations:
            val = np.mean([hard_dice_objects(
                np.argmax(predict_probabilities(model, c.image, patch, 0.5, 4, device, amp=amp), 0),
                c.label, num_classes) for c in val_cases])
            log_rows.append({"iteration": done, "train_loss": float(np.mean(running)), "val_dice": float(val),
                             "lr": optimizer.param_groups[0]["lr"],
                             "elapsed_s": round(elapsed_before + time.time() - t0, 3)})
            running = []
            if np.isfinite(val) and val > best:
                best = float(val)
                _save_model(out_dir / "model_best.pt", model, {**meta, "iteration": done, "val_dice": best})
            _write_log(out_dir / "log.csv", log_rows)
        if done % ckpt_interval == 0 and done < iterations:
            with atomic_path(ckpt_path) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                            "numpy_rng": _rng_state(rng), "iteration": done, "best": best,
                            "log": json.dumps(log_rows), "elapsed": elapsed_before + time.time() - t0}, tmp)
            if stop_after is not None and done >= stop_after:
                return {}
    bar.close()
    if not (out_dir / "model_best.pt").exists():
        _save_model(out_dir / "model_best.pt", model, {**meta, "iteration": iterations, "val_dice": best})
    _save_model(out_dir / "model.pt", model, {**meta, "iteration": iterations})
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    try:
        import resource

        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        peak_rss_mb = None
    summary = {
        "settings": settings,
        "dataset_dir": str(dataset_dir),
        "split": {"train": train_names, "validation": val_names},
        "parameters": count_parameters(model),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "amp": amp,
        "threads": torch.get_num_threads(),
        "wall_time_s": round(elapsed_before + time.time() - t0, 3),
        "peak_memory_mb": {"cuda": peak / 2**20 if peak else None, "rss": peak_rss_mb},
        "best_val_dice": best,
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
    try:
        settings = json.loads(args.settings)
    except json.JSONDecodeError as exc:
        raise DicebenchError(f"--settings is not valid JSON: {exc}") from None
    train_cell(args.dataset, args.class_stats, settings, args.out)
    return 0
