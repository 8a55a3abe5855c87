"""Train one cell of the grid: (dataset, network, loss, weighting, lr, seed).

The loop reads as nnU-Net's `run_training` does: `setup` (data, model, loss, optimizer),
`resume` (a `TrainState` from the checkpoint, or a fresh one), then per iteration
`train_step`, and every few iterations `validate` and `save_checkpoint`; `finish` writes the
models and `cell.json`.

A cell a cluster can trust:
- seeded: the same settings give the same weights and metrics on the CPU, bit for bit (for the
  same `compute_threads`: on the CPU the thread count is part of a cell's identity);
- resumable: every `checkpoint_interval` iterations the model, optimizer, scheduler, torch RNG
  state (CPU and CUDA) and the `TrainState` are written atomically to `checkpoint.pt`; a job
  killed at any point (even `kill -9`) and rerun continues from there and ends with the same
  weights and log. The patch sampler needs no saved state: each iteration's generator is
  seeded by (seed, iteration). A checkpoint written for other settings is discarded;
- safe to load: `torch.load(..., weights_only=True)`: a checkpoint never executes code;
- traceable: `cell.json` records the resolved settings, package versions, git commit, the
  training code's version, device, wall and CPU time, peak memory, parameter count, and
  whether the run converged (`convergence`, rule below).

Outputs in the cell folder: `model.pt` (last), `model_best.pt` (best validation Dice),
`log.csv` (iteration, mean training loss since the last row, validation Dice, lr),
`split.json`, `cell.json`.

On CUDA: bf16 autocast, channels-last memory format, pinned host memory, cuDNN autotuning
(`recipe.cuda_deterministic: true` trades speed for reproducibility). The CUDA path has not
been run on a GPU in this repository's tests.
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
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dicebench.errors import DicebenchError
from dicebench.io import atomic_path, json_option, write_json, write_text
from dicebench.settings import CellSettings, InferenceSettings
from dicebench.training.sampling import (BatchLoader, absent_classes, dataset_info, iteration_rng, list_cases,
                                         load_case, offline_augment, sample_batch, split_cases)

# No wall time here: log.csv is bit-for-bit the same for the same seed on the CPU (cell.json has it).
LOG_FIELDS = ["iteration", "train_loss", "val_dice", "lr"]

# The convergence rule (recorded in cell.json, drawn in the learning curves).
CONVERGENCE_RULE = ("converged: the best validation DSC of the last quarter of training is within 1 DSC point "
                    "of the run's best, and in the last quarter the mean training loss fell by at most 5 % of "
                    "its total fall (third- vs fourth-quarter means)")
PLATEAU_DSC = 0.01
PLATEAU_LOSS = 0.05


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


def convergence(log_rows: list[dict], iterations: int) -> dict:
    """Whether the run plateaued, by CONVERGENCE_RULE, from its log rows."""
    val = [(r["iteration"], r["val_dice"]) for r in log_rows if r["val_dice"] != "" and np.isfinite(r["val_dice"])]
    loss = [(r["iteration"], r["train_loss"]) for r in log_rows]
    out = {"converged": False, "rule": CONVERGENCE_RULE, "best_val_dice": math.nan,
           "best_val_dice_last_quarter": math.nan, "loss_drop_last_quarter": math.nan}
    if not val or not loss:
        return out
    q3, q4 = iterations / 2, 3 * iterations / 4
    best = max(v for _, v in val)
    last = [v for it, v in val if it > q4]
    third = [v for it, v in loss if q3 < it <= q4]
    fourth = [v for it, v in loss if it > q4]
    fall = loss[0][1] - min(v for _, v in loss)
    drop = (np.mean(third) - np.mean(fourth)) / fall if third and fourth and fall > 0 else math.nan
    out.update(best_val_dice=float(best), best_val_dice_last_quarter=float(max(last)) if last else math.nan,
               loss_drop_last_quarter=float(drop))
    out["converged"] = bool(last and max(last) >= best - PLATEAU_DSC and np.isfinite(drop) and drop <= PLATEAU_LOSS)
    return out


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


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """A resumable checkpoint; weights_only, so a checkpoint never executes code."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DicebenchError(f"{path}: unreadable or unsafe checkpoint ({first}); "
                             "delete it to restart the cell") from None


def _loader_workers(recipe: dict, device: torch.device) -> int:
    """Batch-loading threads: the recipe's `data_workers`, else 4 on CUDA (dicebench.cluster
    asks Slurm for them) and none on the CPU (the compute threads have the cores)."""
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


# ---------------------------------------------------------------- the run and its state


@dataclass
class Run:
    """What `setup` builds once: the cell's settings, data, model, loss and optimisation."""

    settings: CellSettings
    dataset_dir: Path
    out_dir: Path
    device: torch.device
    amp: str
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_cases: list
    val_cases: list
    split: dict
    num_classes: int
    labels: dict
    meta: dict
    memory_format: object
    data_workers: int
    sw_batch_size: int
    validation_overlap: float

    @property
    def recipe(self):
        return self.settings.recipe

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"


@dataclass
class TrainState:
    """Everything of a run that changes while it trains and must survive a restart."""

    iteration: int = 0
    best: float = -1.0
    log: list[dict] = field(default_factory=list)
    running: list[float] = field(default_factory=list)
    wall_s: float = 0.0  # before this process
    cpu_s: float = 0.0  # likewise
    drawn: int = 0
    empty: np.ndarray | None = None

    def to_checkpoint(self, run: Run, fingerprint: str, wall_s: float, cpu_s: float) -> dict:
        state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                 "scheduler": run.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "fingerprint": fingerprint, "iteration": self.iteration, "best": self.best,
                 "log": json.dumps(self.log), "running": json.dumps(self.running),
                 "elapsed": wall_s, "cpu_seconds": cpu_s, "drawn": self.drawn,
                 "empty": json.dumps(self.empty.tolist())}
        if run.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(run.device)
        return state

    @classmethod
    def from_checkpoint(cls, ckpt: dict, run: Run) -> "TrainState":
        """The state saved in `ckpt`, with the model, optimizer, scheduler and RNG restored."""
        run.model.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        if run.device.type == "cuda" and "cuda_rng" in ckpt:
            torch.cuda.set_rng_state(ckpt["cuda_rng"].cpu(), run.device)
        return cls(iteration=int(ckpt["iteration"]), best=float(ckpt["best"]), log=json.loads(ckpt["log"]),
                   running=[float(v) for v in json.loads(ckpt["running"])], wall_s=float(ckpt["elapsed"]),
                   cpu_s=float(ckpt.get("cpu_seconds", 0.0)), drawn=int(ckpt["drawn"]),
                   empty=np.asarray(json.loads(ckpt["empty"]), dtype=np.int64))


def settings_fingerprint(settings: CellSettings) -> str:
    """What a checkpoint must match to be resumed: the result-affecting settings."""
    return hashlib.sha256(json.dumps(settings.identity(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _threads_and_determinism(settings: CellSettings, device: torch.device) -> None:
    threads = int(settings.compute_threads or os.environ.get("DICEBENCH_THREADS", 0) or 0)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda" and not settings.recipe.cuda_deterministic:
        torch.backends.cudnn.benchmark = True  # fastest kernels; CUDA runs are not bit-reproducible
        torch.use_deterministic_algorithms(False)
    else:
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def _load_split(dataset_dir: Path, recipe, in_channels: int, seed: int) -> tuple[list, list, dict]:
    """Training and validation cases (a fixed split drawn by patient), with Liu & Fu's offline
    deformed copies added to the training cases when the recipe asks for them."""
    info = dataset_info(dataset_dir)
    cases = list_cases(dataset_dir, "Tr")
    patients = {c: str(v.get("patient", c)) for c, v in (info.get("cases") or {}).items() if isinstance(v, dict)}
    train_names, val_names = split_cases(cases, recipe.val_fraction, recipe.split_seed, patients)
    train_cases = [load_case(dataset_dir, c, "Tr", in_channels) for c in train_names]
    val_cases = [load_case(dataset_dir, c, "Tr", in_channels) for c in val_names]
    augment = dict(recipe.augment or {})
    if int(augment.get("offline_copies", 0)) > 0:  # Liu & Fu: k deformed copies of each scan
        train_cases = offline_augment(train_cases, int(augment["offline_copies"]),
                                      float(augment.get("offline_sigma", 15.0)), seed,
                                      int(augment.get("elastic_control_points", 4)))
    return train_cases, val_cases, {"train": train_names, "validation": val_names}


def setup(dataset_dir: Path, class_stats_path: Path | None, settings: CellSettings, out_dir: Path,
          runtime: dict | None = None) -> Run:
    """Threads, device, data, model, loss, optimizer and schedule of one cell."""
    from dicebench.device import auto_device
    from dicebench.losses import get_loss
    from dicebench.networks import get_network, network_dims
    from dicebench.preprocessing.class_stats import load_class_stats

    # CPU max_unpool (ENet) scatters to unique indices: deterministic in practice.
    warnings.filterwarnings("ignore", message="max_unpooling.*does not have a deterministic implementation")
    runtime = dict(runtime or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = settings.recipe
    device = auto_device(runtime.get("device") or os.environ.get("DICEBENCH_DEVICE", "auto"))
    _threads_and_determinism(settings, device)
    torch.manual_seed(settings.seed)

    info = dataset_info(dataset_dir)
    in_channels = len(info["channel_names"])
    train_cases, val_cases, split = _load_split(Path(dataset_dir), recipe, in_channels, settings.seed)
    write_json(out_dir / "split.json", split)

    dims = network_dims(settings.network, **settings.network_params)
    if len(recipe.patch_size) != dims:
        raise DicebenchError(f"network '{settings.network}' is {dims}D but patch_size {list(recipe.patch_size)} has "
                             f"{len(recipe.patch_size)} entries")
    num_classes = len(info["labels"])
    model = get_network(settings.network, in_channels, num_classes, **settings.network_params).to(device)
    channels_last = device.type == "cuda" and bool(recipe.channels_last)
    if channels_last:
        model = model.to(memory_format=_memory_format(dims))
    stats = load_class_stats(class_stats_path) if class_stats_path else None
    loss_fn = get_loss(settings.loss, class_stats=stats, weighting=settings.weighting, **settings.loss_params)
    optimizer = make_optimizer(model.parameters(), recipe.optimizer, settings.lr, recipe.optimizer_params)
    scheduler = make_scheduler(optimizer, recipe.lr_schedule, recipe.iterations)
    meta = {"network": settings.network, "network_params": settings.network_params, "in_channels": in_channels,
            "num_classes": num_classes, "patch_size": list(recipe.patch_size), "window": list(recipe.window),
            "dims": dims, "labels": info["labels"]}
    workers = _loader_workers({"data_workers": runtime.get("data_workers", recipe.data_workers)}, device)
    inference_defaults = InferenceSettings.from_dict({})
    overlap = settings.validation_overlap
    return Run(settings=settings, dataset_dir=Path(dataset_dir), out_dir=out_dir, device=device,
               amp=(recipe.amp or "bf16") if device.type == "cuda" else "none", model=model, loss_fn=loss_fn,
               optimizer=optimizer, scheduler=scheduler, train_cases=train_cases, val_cases=val_cases, split=split,
               num_classes=num_classes, labels=info["labels"], meta=meta,
               memory_format=_memory_format(dims) if channels_last else None, data_workers=int(workers),
               sw_batch_size=int(runtime.get("sw_batch_size", inference_defaults.sw_batch_size)),
               validation_overlap=float(inference_defaults.overlap if overlap is None else overlap))


def resume(run: Run) -> TrainState:
    """The state of the checkpoint written for these settings, else a fresh start, which removes
    every output an earlier model of this cell left: its weights, log and cell.json, and what was
    computed from them (predictions, metrics). A retraining that then fails leaves no metrics
    that outlive their model, so the next run retrains the cell (Snakemake does not rerun a job
    whose outputs are gone while the files computed from them remain)."""
    fresh = TrainState(empty=np.zeros(run.num_classes, dtype=np.int64))
    path = run.checkpoint_path
    if path.exists():
        ckpt = load_checkpoint(path, run.device)
        if ckpt.get("fingerprint") == settings_fingerprint(run.settings):
            print(f"resuming from {path} at iteration {int(ckpt['iteration'])}", file=sys.stderr)
            return TrainState.from_checkpoint(ckpt, run)
        print(f"{path}: written for other settings; starting the cell afresh", file=sys.stderr)
        path.unlink()
    for stale in ("model_best.pt", "model.pt", "log.csv", "cell.json", "metrics.csv", "per_case.csv"):
        (run.out_dir / stale).unlink(missing_ok=True)
    shutil.rmtree(run.out_dir / "predictions", ignore_errors=True)
    return fresh


def batches(run: Run, start: int) -> BatchLoader:
    """The batches of iterations start..end, each a pure function of (seed, iteration), with
    the count of patches lacking each class (the sub-patching sweep's empty share)."""
    r = run.recipe

    def make_batch(it: int):
        x, y = sample_batch(run.train_cases, iteration_rng(run.settings.seed, it), r.batch_size, r.patch_size,
                            r.fg_oversample or 0.0, r.augment)
        return x, y, absent_classes(y, run.num_classes)

    return BatchLoader(make_batch, start, r.iterations, workers=run.data_workers, prefetch=2,
                       pin=run.device.type == "cuda")


def train_step(run: Run, x: torch.Tensor, y: torch.Tensor) -> float:
    loss = training_step(run.model, run.optimizer, run.loss_fn, x, y, run.device, run.amp, run.memory_format)
    run.scheduler.step()
    return loss


def validate(run: Run) -> float:
    """Mean object-class Dice over the validation cases, predicted as inference predicts
    (the same sliding window, overlap and window batch)."""
    from dicebench.sliding_window import predict_probabilities

    scores = []
    for case in run.val_cases:
        probs = predict_probabilities(run.model, case.image, run.recipe.window, run.validation_overlap,
                                      run.sw_batch_size, run.device, amp=run.amp)
        scores.append(hard_dice_objects(np.argmax(probs, 0), case.label, run.num_classes))
    return float(np.mean(scores))


def save_checkpoint(run: Run, state: TrainState, wall_s: float, cpu_s: float) -> None:
    with atomic_path(run.checkpoint_path) as tmp:
        torch.save(state.to_checkpoint(run, settings_fingerprint(run.settings), wall_s, cpu_s), tmp)


def finish(run: Run, state: TrainState, wall_s: float, cpu_s: float, resumed_from: int) -> dict:
    """model.pt, model_best.pt (if no validation ran), cell.json; the checkpoint removed."""
    from dicebench.networks import count_parameters
    from dicebench.provenance import provenance, step_code_version

    iterations = run.recipe.iterations
    if not (run.out_dir / "model_best.pt").exists():
        _save_model(run.out_dir / "model_best.pt", run.model, {**run.meta, "iteration": iterations,
                                                               "val_dice": state.best})
    _save_model(run.out_dir / "model.pt", run.model, {**run.meta, "iteration": iterations})
    cuda = run.device.type == "cuda"
    peak = torch.cuda.max_memory_allocated(run.device) if cuda else None
    try:
        import resource

        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        peak_rss_mb = None
    drawn = state.drawn
    summary = {
        "settings": run.settings.identity(),  # the result-affecting settings (data_workers: below)
        "dataset_dir": str(run.dataset_dir),
        "split": run.split,
        "training_volumes": len(run.train_cases),  # with offline_copies k: (k + 1) x the training split
        "parameters": count_parameters(run.model),
        "device": str(run.device) + (f" ({torch.cuda.get_device_name(run.device)})" if cuda else ""),
        "amp": run.amp,
        "channels_last": run.memory_format is not None,
        "data_workers": run.data_workers,
        "compute_threads": torch.get_num_threads(),
        "resumed_from_iteration": resumed_from or None,
        "iterations": iterations,
        "wall_time_s": round(wall_s, 3),
        "cpu_time_s": round(cpu_s, 3),
        # On a GPU the training loop keeps the device busy: its wall time stands for GPU-seconds.
        "gpu_time_s": round(wall_s, 3) if cuda else None,
        "peak_memory_mb": {"cuda": peak / 2**20 if peak else None, "rss": peak_rss_mb},
        "best_val_dice": state.best,
        "convergence": convergence(state.log, iterations),
        "training_patches": drawn,
        "empty_patch_share": {name: float(state.empty[int(k)] / drawn) if drawn else None
                              for name, k in run.labels.items()},
        "final_train_loss": state.log[-1]["train_loss"] if state.log else None,
        "code_version": step_code_version("train"),
        **provenance(),
    }
    write_json(run.out_dir / "cell.json", summary)
    run.checkpoint_path.unlink(missing_ok=True)
    return summary


def train_cell(dataset_dir: Path, class_stats_path: Path | None, settings: dict | CellSettings, out_dir: Path,
               stop_after: int | None = None, runtime: dict | None = None) -> dict:
    """Train one cell; returns the summary written to cell.json. `runtime` holds the
    result-neutral settings (data_workers, sw_batch_size, device). `stop_after` ends the run
    early right after that iteration's checkpoint (used to test resumption)."""
    if not isinstance(settings, CellSettings):
        settings = dict(settings)
        if "device" in settings:  # where to compute is a runtime choice, recorded in cell.json
            runtime = {**(runtime or {}), "device": settings.pop("device")}
        settings = CellSettings.from_dict(settings)
    wall0, cpu0 = time.time(), time.process_time()
    run = setup(dataset_dir, class_stats_path, settings, out_dir, runtime)
    state = resume(run)
    resumed_from = state.iteration
    recipe = run.recipe

    def clock() -> tuple[float, float]:
        return state.wall_s + time.time() - wall0, state.cpu_s + time.process_time() - cpu0

    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.device)
    bar = Progress(recipe.iterations, state.iteration)
    stream = iter(batches(run, state.iteration))
    try:
        for it, x, y, absent in stream:
            state.drawn += len(y)
            state.empty += absent
            loss = train_step(run, x, y)
            if not math.isfinite(loss):
                raise DicebenchError(f"{run.out_dir}: the loss became {loss} at iteration {it + 1}")
            state.running.append(loss)
            state.iteration = done = it + 1
            bar.update(loss)
            due_val = done % recipe.validation_every == 0 or done == recipe.iterations
            if due_val or done % recipe.log_every == 0:
                val = validate(run) if due_val else float("nan")
                state.log.append({"iteration": done, "train_loss": float(np.mean(state.running)),
                                  "val_dice": val if due_val else "", "lr": run.optimizer.param_groups[0]["lr"]})
                state.running = []
                if due_val and np.isfinite(val) and val > state.best:
                    state.best = float(val)
                    _save_model(run.out_dir / "model_best.pt", run.model,
                                {**run.meta, "iteration": done, "val_dice": state.best})
                _write_log(run.out_dir / "log.csv", state.log)
            if done % recipe.checkpoint_every == 0 and done < recipe.iterations:
                save_checkpoint(run, state, *clock())
                if stop_after is not None and done >= stop_after:
                    return {}
    finally:
        stream.close()  # stops the loader threads
        bar.close()
    return finish(run, state, *clock(), resumed_from=resumed_from)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, type=Path, help="preprocessed dataset folder")
    p.add_argument("--class-stats", type=Path, help="class_stats.json of the dataset")
    p.add_argument("--settings", required=True, help="JSON object: the cell's resolved settings")
    p.add_argument("--runtime", default="{}",
                   help="JSON object: result-neutral settings (data_workers, sw_batch_size, device)")
    p.add_argument("--out", required=True, type=Path, help="the cell folder")


def run(args: argparse.Namespace) -> int:
    settings = json_option(args.settings, "--settings")
    runtime = json_option(args.runtime, "--runtime")
    train_cell(args.dataset, args.class_stats, settings, args.out, runtime=runtime)
    return 0
