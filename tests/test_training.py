"""Trainer: bit-for-bit determinism on the CPU, safe checkpoints, order-free batch loading."""

from __future__ import annotations

import copy
import json
import os
from importlib import metadata
from pathlib import Path

import numpy as np
import SimpleITK as sitk
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
    assert cell["settings"] == resolved.identity() and cell["settings"]["compute_threads"] == 1
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


# ----------------------------------------------------------------------------- the settings reach the optimisation
def _train_split(dataset: Path, recipe: dict) -> list[Case]:
    names, _ = split_cases(list_cases(dataset), recipe.get("val_fraction", 0.2), recipe.get("split_seed", 0))
    return [load_case(dataset, n, "Tr", 1) for n in names]


def _hand_trained(dataset: Path, settings: dict, optimizer, lr_at, loss_fn) -> torch.nn.Module:
    """The cell's training written out in plain torch: the network built right after seeding
    torch with the cell's seed, iteration i's batch from `iteration_rng(seed, i)`, the learning
    rate set to the closed form `lr_at(i)` before each step."""
    recipe, seed = settings["recipe"], settings["seed"]
    cases = _train_split(dataset, recipe)
    num_classes = len(json.loads((Path(dataset) / "dataset.json").read_text())["labels"])
    torch.manual_seed(seed)
    model = get_network(settings["network"], 1, num_classes, **settings["network_params"])
    opt = optimizer(model.parameters())
    for it in range(recipe["iterations"]):
        x, y = sample_batch(cases, iteration_rng(seed, it), recipe["batch_size"], tuple(recipe["patch_size"]),
                            recipe.get("fg_oversample", 0.0), recipe.get("augment"))
        for group in opt.param_groups:
            group["lr"] = lr_at(it)
        model.train()
        opt.zero_grad()
        loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    return model


def _assert_weights_equal(path: Path, model: torch.nn.Module) -> None:
    got, expected = _state(path), model.state_dict()
    assert got.keys() == expected.keys()
    for k in got:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-5, atol=1e-7, msg=k)


HAND = {
    "network": "enet2d", "network_params": {"width": 4}, "weighting": "none", "seed": 7, "threads": 1,
    "recipe": {"iterations": 4, "batch_size": 2, "patch_size": [32, 32], "val_interval": 4, "fg_oversample": 0.5,
               "augment": {"flip": True, "rot90": True}},
}


def test_adam_step_schedule_and_gdl_params_equal_a_hand_written_loop(tiny_acdc, tmp_path):
    """Adam's betas, eps and weight decay act from the second step on; the step schedule halves
    the learning rate every 2 iterations; GDL's w_type and empty_policy shape the gradient."""
    from dicebench.losses import GeneralizedDiceLoss

    settings = copy.deepcopy(HAND)
    settings.update(loss="gdl", loss_params={"w_type": "simple", "empty_policy": "zero"}, lr=0.01)
    settings["recipe"].update(optimizer="adam", optimizer_params={"betas": [0.8, 0.95], "eps": 1e-6,
                                                                  "weight_decay": 1e-3},
                              lr_schedule={"type": "step", "step_size": 2, "gamma": 0.5})
    train_cell(tiny_acdc, None, copy.deepcopy(settings), tmp_path)
    model = _hand_trained(
        tiny_acdc, settings,
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=1e-3),
        lambda it: 0.01 * 0.5 ** (it // 2),
        GeneralizedDiceLoss(w_type="simple", empty_policy="zero"))
    _assert_weights_equal(tmp_path / "model.pt", model)


def test_sgd_poly_schedule_and_class_weighting_equal_a_hand_written_loop(tiny_acdc, tmp_path):
    """SGD's momentum, Nesterov and weight decay; the poly schedule; Shen's square weights from
    the dataset's class statistics."""
    from dicebench.losses import WeightedDiceLoss
    from dicebench.preprocessing.class_stats import compute_class_stats

    stats = compute_class_stats(tiny_acdc)
    (tmp_path / "class_stats.json").write_text(json.dumps(stats))
    settings = copy.deepcopy(HAND)
    settings.update(loss="weighted_dice", weighting="square", loss_params={"normalize_weights": True}, lr=0.05)
    settings["recipe"].update(optimizer="sgd", optimizer_params={"momentum": 0.9, "nesterov": True,
                                                                 "weight_decay": 5e-3},
                              lr_schedule={"type": "poly", "power": 0.9})
    train_cell(tiny_acdc, tmp_path / "class_stats.json", copy.deepcopy(settings), tmp_path / "cell")
    model = _hand_trained(
        tiny_acdc, settings,
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3),
        lambda it: 0.05 * (1 - it / 4) ** 0.9,
        WeightedDiceLoss("square", class_stats=stats, normalize_weights=True))
    _assert_weights_equal(tmp_path / "cell" / "model.pt", model)


@pytest.mark.parametrize("schedule, closed_form", [
    ({"type": "step", "step_size": 2, "gamma": 0.5}, lambda n: 0.01 * 0.5 ** (n // 2)),
    ({"type": "poly", "power": 0.9}, lambda n: 0.01 * (1 - n / 6) ** 0.9),
    ({"type": "constant"}, lambda n: 0.01),
], ids=["step", "poly", "constant"])
def test_log_lr_column_follows_the_schedule(tiny_acdc, tmp_path, schedule, closed_form):
    """Row n (after iteration n) logs the learning rate the optimizer holds then: lr0 f(n),
    the rate of the next iteration (the schedule has stepped n times)."""
    import pandas as pd

    settings = copy.deepcopy(SETTINGS)
    settings["lr"] = 0.01
    settings["recipe"].update(iterations=6, val_interval=6, log_interval=1, checkpoint_interval=6,
                              lr_schedule=schedule, augment={})
    train_cell(tiny_acdc, None, settings, tmp_path)
    log = pd.read_csv(tmp_path / "log.csv")
    assert log["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(log["lr"], [closed_form(n) for n in range(1, 7)], rtol=1e-12, atol=0)


def _striped_dataset(root: Path, lacking: bool) -> Path:
    """Four 2 x 16 x 16 cases whose every axial slice holds classes 0, 1 and 2 (stripes); with
    `lacking`, case 0 has no class 2. A 16 x 16 patch is a whole slice, so no patch lacks a
    class unless it comes from that case."""
    from dicebench.io import write_image, write_json

    rng = np.random.default_rng(0)
    for i in range(4):
        label = np.zeros((2, 16, 16), np.uint8)
        label[:, :, 6:11], label[:, :, 11:] = 1, 2
        if lacking and i == 0:
            label[label == 2] = 1
        image = (label + 0.3 * rng.standard_normal(label.shape)).astype(np.float32)
        write_image(sitk.GetImageFromArray(image), root / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
        write_image(sitk.GetImageFromArray(label), root / "labelsTr" / f"case_{i:03d}.nii.gz")
    write_json(root / "dataset.json", {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2},
                                       "numTraining": 4, "file_ending": ".nii.gz"})
    return root


@pytest.mark.parametrize("lacking", [False, True], ids=["every_patch_has_every_class", "a_patch_lacks_a_class"])
def test_gdl_empty_policy_matters_exactly_when_a_patch_lacks_a_class(tmp_path, lacking):
    """Two cells differing only in loss_params.empty_policy (max, zero): the policy weighs a
    class absent from a patch, so the weights agree bit for bit when no patch lacks a class
    and differ when one does."""
    dataset = _striped_dataset(tmp_path / "data", lacking)
    weights, shares = {}, {}
    for policy in ("max", "zero"):
        settings = {"network": "enet2d", "network_params": {"width": 4}, "loss": "gdl", "weighting": "none",
                    "loss_params": {"empty_policy": policy}, "lr": 0.01, "seed": 0, "threads": 1,
                    "recipe": {"optimizer": "adam", "iterations": 2, "batch_size": 3, "patch_size": [16, 16],
                               "val_fraction": 0.25, "val_interval": 2}}
        summary = train_cell(dataset, None, settings, tmp_path / policy)
        weights[policy], shares[policy] = _state(tmp_path / policy / "model.pt"), summary["empty_patch_share"]
    assert shares["max"] == shares["zero"]
    # batch_size 3 = the three training cases, so case 0 is in every batch
    assert shares["max"]["b"] == (pytest.approx(1 / 3) if lacking else 0.0)
    same = [torch.equal(weights["max"][k], weights["zero"][k]) for k in weights["max"]]
    if lacking:
        assert not all(same)
    else:
        assert all(same)


def test_requested_cuda_device_that_is_not_there_is_a_one_line_error(tiny_acdc, tmp_path, capsys):
    """`device: cuda:N` with no N-th CUDA device (on a CPU-only machine: any N)."""
    from dicebench.cli import main

    missing = f"cuda:{torch.cuda.device_count()}"
    settings = {**copy.deepcopy(SETTINGS), "device": missing}
    with pytest.raises(DicebenchError, match=f"'{missing}'"):
        train_cell(tiny_acdc, None, copy.deepcopy(settings), tmp_path / "a")
    rc = main(["train", "--dataset", str(tiny_acdc), "--settings", json.dumps(settings), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 1 and missing in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
