"""A cell stopped or killed (SIGKILL) after a checkpoint and rerun ends exactly as an
uninterrupted run: same final weights, same best weights, same log.csv."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dicebench.training.trainer import train_cell

SETTINGS = {
    "network": "enet2d", "network_params": {"width": 4}, "loss": "gdl", "weighting": "none", "loss_params": {},
    "lr": 0.005, "seed": 1, "threads": 1,
    # checkpoint every 2, validation every 3: a checkpoint falls between two log rows, so the
    # running training loss must survive the restart too. Dropout (ENet) checks the torch RNG.
    "recipe": {"optimizer": "sgd", "optimizer_params": {"momentum": 0.9, "weight_decay": 0.005},
               "lr_schedule": {"type": "step", "step_size": 3, "gamma": 0.2}, "iterations": 8, "batch_size": 2,
               "patch_size": [32, 32], "val_interval": 3, "checkpoint_interval": 2,
               "augment": {"flip": True, "elastic_sigma": 2.0}},
}


def _assert_same_cell(a: Path, b: Path) -> None:
    for name in ("model.pt", "model_best.pt"):
        sa = torch.load(a / name, weights_only=True)
        sb = torch.load(b / name, weights_only=True)
        assert sa["meta"] == sb["meta"]
        assert sa["state_dict"].keys() == sb["state_dict"].keys()
        for k in sa["state_dict"]:
            assert torch.equal(sa["state_dict"][k], sb["state_dict"][k]), (name, k)
    assert (a / "log.csv").read_bytes() == (b / "log.csv").read_bytes()
    ca, cb = (json.loads((p / "cell.json").read_text()) for p in (a, b))
    assert ca["best_val_dice"] == cb["best_val_dice"] and ca["final_train_loss"] == cb["final_train_loss"]
    assert ca["training_patches"] == cb["training_patches"] and ca["empty_patch_share"] == cb["empty_patch_share"]
    assert not (b / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def reference(tiny_acdc, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), out)
    return out


def test_stop_and_resume_in_process(tiny_acdc, tmp_path, reference):
    assert train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), tmp_path, stop_after=4) == {}
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert int(ckpt["iteration"]) == 4 and not (tmp_path / "model.pt").exists()
    torch.manual_seed(12345)  # a rerun starts with whatever global RNG state; the checkpoint restores it
    summary = train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), tmp_path)
    assert summary["resumed_from_iteration"] == 4
    _assert_same_cell(reference, tmp_path)


def test_checkpoint_of_other_settings_is_not_resumed(tiny_acdc, tmp_path, reference):
    other = copy.deepcopy(SETTINGS)
    other["lr"] = 0.01
    train_cell(tiny_acdc, None, other, tmp_path, stop_after=2)
    summary = train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), tmp_path)
    assert summary["resumed_from_iteration"] is None
    _assert_same_cell(reference, tmp_path)


def _cli(dataset: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dicebench", "train", "--dataset", str(dataset),
            "--settings", json.dumps(SETTINGS), "--out", str(out)]


@pytest.mark.slow  # trains in a subprocess, twice
def test_sigkill_then_rerun_matches_uninterrupted(tiny_acdc, tmp_path, reference):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(_cli(tiny_acdc, tmp_path), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    ckpt = tmp_path / "checkpoint.pt"
    deadline = time.time() + 120
    try:
        while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        assert ckpt.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "cell.json").exists(), "the run finished before it was killed: test proves nothing"
    killed_at = int(torch.load(ckpt, weights_only=True)["iteration"])
    assert 2 <= killed_at < SETTINGS["recipe"]["iterations"]
    rerun = subprocess.run(_cli(tiny_acdc, tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming from {ckpt} at iteration" in rerun.stderr
    assert f"train: iteration {SETTINGS['recipe']['iterations']}/{SETTINGS['recipe']['iterations']} loss" \
        in rerun.stderr and " it/s" in rerun.stderr and "\r" not in rerun.stderr
    _assert_same_cell(reference, tmp_path)


def test_bad_settings_json_is_one_line_error(tmp_path, capsys):
    from dicebench.cli import main

    rc = main(["train", "--dataset", str(tmp_path), "--settings", "{not json", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "--settings is not valid JSON" in err
    assert not (tmp_path / "o").exists()
