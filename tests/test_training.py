"""Trainer: bit-for-bit determinism on the CPU, safe checkpoints, order-free batch loading."""

from __future__ import annotations

import copy
import json
import os
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from dicebench.errors import DicebenchError
from dicebench.networks import get_network
from dicebench.training.sampling import (BatchLoader, Case, absent_classes, iteration_rng, load_case, list_cases,
                                         sample_batch, split_cases)
from dicebench.provenance import step_code_version
from dicebench.settings import RECIPE_PATH, CellSettings, schema_defaults
from dicebench.training.trainer import hard_dice_objects, make_scheduler, train_cell

SETTINGS = {
    "network": "enet2d", "network_params": {"width": 4}, "loss": "dice", "weighting": "none", "loss_params": {},
    "lr": 0.005, "seed": 3, "threads": 1,
    "recipe": {"optimizer": "adam", "optimizer_params": {"betas": [0.9, 0.99]}, "iterations": 4, "batch_size": 2,
               "patch_size": [32, 32], "val_interval": 2, "checkpoint_interval": 2,
               "augment": {"flip": True, "rot90": True, "elastic_sigma": 2.0}},
}


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def two_runs(tiny_acdc, tmp_path_factory):
    outs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(f"det_{name}")
        train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), out)
        outs.append(out)
    return outs


def test_same_seed_same_weights_and_log(two_runs):
    a, b = two_runs
    _assert_same_weights(a / "model.pt", b / "model.pt")
    _assert_same_weights(a / "model_best.pt", b / "model_best.pt")
    assert (a / "log.csv").read_bytes() == (b / "log.csv").read_bytes()
    rows = (a / "log.csv").read_text().splitlines()
    assert rows[0] == "iteration,train_loss,val_dice,lr" and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    assert not (a / "checkpoint.pt").exists()


def test_cell_json_provenance(two_runs):
    cell = json.loads((two_runs[0] / "cell.json").read_text())
    # The resolved settings: what was given, with every default filled in from the config schema.
    resolved = CellSettings.from_dict(copy.deepcopy(SETTINGS))
    assert cell["settings"] == resolved.to_dict() and cell["settings"]["compute_threads"] == 1
    assert {k: cell["settings"]["recipe"][k] for k in SETTINGS["recipe"]} == SETTINGS["recipe"]
    assert cell["settings"]["recipe"]["val_fraction"] == schema_defaults(*RECIPE_PATH)["val_fraction"]
    assert cell["device"] == "cpu" and cell["amp"] == "none" and cell["compute_threads"] == 1
    assert cell["iterations"] == 4 and cell["cpu_time_s"] > 0
    assert cell["code_version"] == step_code_version("train")
    assert cell["convergence"]["rule"] and isinstance(cell["convergence"]["converged"], bool)
    assert cell["packages"]["torch"] == metadata.version("torch")
    assert cell["packages"]["monai"] == metadata.version("monai")
    assert cell["wall_time_s"] > 0 and cell["peak_memory_mb"]["rss"] > 0
    model = get_network("enet2d", 1, 4, width=4)
    assert cell["parameters"] == sum(p.numel() for p in model.parameters())
    split = json.loads((two_runs[0] / "split.json").read_text())
    assert cell["split"] == split and sorted(split["train"] + split["validation"]) == list_cases(cell["dataset_dir"])


def test_background_loading_threads_change_nothing(tiny_acdc, tmp_path, two_runs):
    settings = copy.deepcopy(SETTINGS)
    settings["recipe"]["data_workers"] = 2
    summary = train_cell(tiny_acdc, None, settings, tmp_path)
    assert summary["data_workers"] == 2
    _assert_same_weights(tmp_path / "model.pt", two_runs[0] / "model.pt")
    assert (tmp_path / "log.csv").read_bytes() == (two_runs[0] / "log.csv").read_bytes()


def test_offline_copies_enlarge_the_training_set(tiny_acdc, tmp_path):
    settings = copy.deepcopy(SETTINGS)
    settings["recipe"].update(iterations=1, augment={"offline_copies": 2, "offline_sigma": 3.0})
    summary = train_cell(tiny_acdc, None, settings, tmp_path)
    assert summary["training_volumes"] == 3 * len(summary["split"]["train"])


def test_other_seed_other_weights(tiny_acdc, tmp_path, two_runs):
    settings = copy.deepcopy(SETTINGS)
    settings["seed"] = 4
    settings["recipe"]["iterations"] = 2
    train_cell(tiny_acdc, None, settings, tmp_path)
    sa, sb = _state(tmp_path / "model.pt"), _state(two_runs[0] / "model.pt")
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_checkpoint_with_pickled_code_is_refused(tiny_acdc, tmp_path):
    sentinel = tmp_path / "pwned"
    payload = _Payload()
    payload.sentinel = sentinel
    _Payload.sentinel = sentinel
    torch.save({"model": payload}, tmp_path / "checkpoint.pt")
    with pytest.raises(DicebenchError, match="checkpoint.pt: unreadable or unsafe checkpoint"):
        train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), tmp_path)
    assert not sentinel.exists()


def test_truncated_checkpoint_is_a_readable_error(tiny_acdc, tmp_path):
    torch.save({"iteration": torch.zeros(1000)}, tmp_path / "full.pt")
    (tmp_path / "checkpoint.pt").write_bytes((tmp_path / "full.pt").read_bytes()[:300])
    with pytest.raises(DicebenchError, match="checkpoint.pt"):
        train_cell(tiny_acdc, None, copy.deepcopy(SETTINGS), tmp_path)


def test_batches_do_not_depend_on_workers_or_order(tiny_acdc):
    names, _ = split_cases(list_cases(tiny_acdc), 0.25)
    cases = [load_case(tiny_acdc, n, "Tr", 1) for n in names]
    aug = {"flip": True, "elastic_sigma": 2.0}

    def make(it):
        return sample_batch(cases, iteration_rng(5, it), 3, (32, 32), 0.3, aug)

    serial = [(it, x.numpy(), y.numpy()) for it, x, y in BatchLoader(make, 2, 9, workers=0)]
    threaded = [(it, x.numpy(), y.numpy()) for it, x, y in BatchLoader(make, 2, 9, workers=3, prefetch=2)]
    assert [s[0] for s in serial] == list(range(2, 9)) == [t[0] for t in threaded]
    for s, t in zip(serial, threaded):
        assert np.array_equal(s[1], t[1]) and np.array_equal(s[2], t[2])
    backwards = [make(it) for it in reversed(range(2, 9))][::-1]
    for s, (x, y) in zip(serial, backwards):
        assert np.array_equal(s[1], x) and np.array_equal(s[2], y)
    assert not np.array_equal(serial[0][1], serial[1][1])


def test_batch_draws_from_different_cases_and_oversamples_foreground():
    rng = np.random.default_rng(0)
    cases = [Case(f"c{i}", np.full((1, 4, 16, 16), float(i), np.float32), np.zeros((4, 16, 16), np.int64))
             for i in range(3)]
    cases[0].label[2, 3, 3] = 1  # one foreground voxel
    x, _ = sample_batch(cases, rng, 3, (8, 8, 8))
    assert sorted(float(v) for v in x[:, 0].reshape(3, -1).max(1)) == [0.0, 1.0, 2.0]
    hits = sum(int(sample_batch(cases[:1], iteration_rng(1, i), 1, (8, 8), 1.0)[1].sum()) for i in range(20))
    assert hits == 20
    misses = sum(int(sample_batch(cases[:1], iteration_rng(1, i), 1, (8, 8), 0.0)[1].sum()) for i in range(40))
    assert misses < 20


def test_step_schedule_liu_fu():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-3, momentum=0.99, weight_decay=5e-3)
    sched = make_scheduler(opt, {"type": "step", "step_size": 10, "gamma": 0.2}, 100)
    lrs = []
    for _ in range(25):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs[:10], 1e-3)
    np.testing.assert_allclose(lrs[10:20], 2e-4)
    np.testing.assert_allclose(lrs[20:], 4e-5)


def test_hard_dice_matches_monai():
    from monai.metrics import compute_dice
    from monai.networks.utils import one_hot

    rng = np.random.default_rng(0)
    pred, gt = rng.integers(0, 3, (6, 7, 8)), rng.integers(0, 3, (6, 7, 8))
    ref = compute_dice(one_hot(torch.from_numpy(pred)[None, None], 3), one_hot(torch.from_numpy(gt)[None, None], 3),
                       include_background=False)
    assert hard_dice_objects(pred, gt, 3) == pytest.approx(float(ref.mean()), abs=1e-6)


def test_loss_is_logged_between_validations(tiny_acdc, tmp_path):
    settings = copy.deepcopy(SETTINGS)
    settings["recipe"].update(iterations=6, val_interval=3, log_interval=2, checkpoint_interval=3)
    train_cell(tiny_acdc, None, settings, tmp_path)
    import pandas as pd

    log = pd.read_csv(tmp_path / "log.csv")
    assert log["iteration"].tolist() == [2, 3, 4, 6]
    assert log["val_dice"].notna().tolist() == [False, True, False, True]
    assert log["train_loss"].notna().all()


def test_absent_classes_counts_patches_without_each_class():
    labels = np.zeros((3, 4, 4), dtype=np.int64)
    labels[0, 0, 0] = 1
    labels[1, :2] = 2
    labels[2, 1, 1], labels[2, 2, 2] = 1, 2
    # class 0 is in every patch; class 1 is missing from patch 1; class 2 from patch 0; class 3 from all
    assert absent_classes(labels, 4).tolist() == [0, 1, 1, 3]


def test_cell_json_records_the_empty_patch_share_of_the_batches_drawn(two_runs, tiny_acdc):
    cell = json.loads((two_runs[0] / "cell.json").read_text())
    recipe = SETTINGS["recipe"]
    assert cell["training_patches"] == recipe["iterations"] * recipe["batch_size"]
    # Recount from the same batches: each iteration's batch is a pure function of (seed, iteration).
    names = cell["split"]["train"]
    cases = [load_case(tiny_acdc, n, "Tr", 1) for n in names]
    labels = json.loads((Path(tiny_acdc) / "dataset.json").read_text())["labels"]
    empty = np.zeros(len(labels), dtype=np.int64)
    for it in range(recipe["iterations"]):
        _, y = sample_batch(cases, iteration_rng(SETTINGS["seed"], it), recipe["batch_size"],
                            tuple(recipe["patch_size"]), 0.0, recipe["augment"])
        for k in range(len(labels)):
            empty[k] += sum(not (patch == k).any() for patch in y)
    expected = {name: empty[int(k)] / cell["training_patches"] for name, k in labels.items()}
    assert cell["empty_patch_share"] == pytest.approx(expected)
    assert cell["empty_patch_share"]["background"] < 1
