"""Sliding-window inference: geometry of the written predictions, Gaussian blending against brute
force, 2D slice-by-slice against per-slice MONAI calls, mirroring against flips done by hand,
16-bit probability maps, resume after an interruption, and one-line errors."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from dicebench.data.synthetic import generate_case, resolve_spec
from dicebench.errors import DicebenchError
from dicebench.inference.predict import (PROB_SCALE, labels_on_reference, load_model, predict_folder,
                                         predict_probabilities, probabilities_to_reference, ras_affine,
                                         read_probabilities, window_starts)
from dicebench.io import write_image
from dicebench.preprocessing.pipeline import PreprocessSettings, preprocess_image, preprocess_label

NUM_CLASSES = 4  # acdc phantom: background + 3 structures


# ----------------------------------------------------------------------------- toy models
class LabelEcho(torch.nn.Module):
    """An oracle: its input is a label map; logits_k = -20 (x - k)^2 (one-hot after softmax)."""

    def __init__(self, k: int = NUM_CLASSES) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ks = torch.arange(self.k, dtype=x.dtype).view(1, -1, *[1] * (x.ndim - 2))
        return -20.0 * (x[:, :1] - ks) ** 2


class PositionToy(torch.nn.Module):
    """Not translation-equivariant: a zero-padded conv plus a ramp over the window's coordinates,
    so every window sees a different function of the image."""

    def __init__(self, dims: int, cin: int, k: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
        self.conv = conv(cin, k, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.copy_(torch.randn(k, generator=g))
        self.slope = torch.randn(k, dims, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        for d, n in enumerate(x.shape[2:]):
            ramp = torch.linspace(-1, 1, n).view(*[1] * (2 + d), n, *[1] * (x.ndim - 3 - d))
            out = out + self.slope[:, d].view(1, -1, *[1] * (x.ndim - 2)) * ramp
        return out


def pointwise(dims: int, cin: int, k: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return (torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d)(cin, k, 1)


def rand_image(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def dice(a: np.ndarray, b: np.ndarray, k: int) -> float:
    return 2 * np.sum((a == k) & (b == k)) / (np.sum(a == k) + np.sum(b == k))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """Three oblique, anisotropic acdc phantoms: raw images and labels, and a 'preprocessed'
    input resampled to 1 x 1 x 1.5 mm that holds the label map (the oracle's input)."""
    root = tmp_path_factory.mktemp("infer")
    spec = resolve_spec("acdc", shape=(6, 40, 40))
    s = PreprocessSettings.from_dict({"target_spacing": [1.0, 1.0, 1.5], "n4": False, "normalization": "none"})
    cases = {}
    for i in range(3):
        image, label = generate_case("acdc", spec, 7, i)
        name = f"case_{i:03d}"
        write_image(image, root / "raw" / f"{name}_0000.nii.gz")
        write_image(label, root / "labels" / f"{name}.nii.gz")
        grid_label = sitk.Cast(preprocess_label(label, s), sitk.sitkFloat32)
        write_image(grid_label, root / "prep" / f"{name}_0000.nii.gz")
        cases[name] = (image, label)
    # the same image, preprocessed for real, for a registry network
    write_image(preprocess_image(cases["case_000"][0], s), root / "prep_img" / "case_000_0000.nii.gz")
    return {"root": root, "cases": cases}


ORACLE_META = {"in_channels": 1, "num_classes": NUM_CLASSES, "patch_size": [24, 24]}


# ----------------------------------------------------------------------------- geometry
def test_prediction_on_raw_geometry_and_oracle_recovers_truth(folders, tmp_path):
    root = folders["root"]
    out = tmp_path / "pred"
    written = predict_folder(LabelEcho(), ORACLE_META, root / "prep", root / "raw", out,
                             {"save_probabilities": True, "overlap": 0.5, "slices_per_chunk": 7})
    assert [p.name for p in written] == ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]
    for name in folders["cases"]:
        raw = sitk.ReadImage(str(root / "raw" / f"{name}_0000.nii.gz"))
        assert raw.GetSpacing()[2] / raw.GetSpacing()[0] > 6  # anisotropic
        assert not np.allclose(raw.GetDirection(), np.eye(3).ravel())  # oblique
        assert np.linalg.norm(raw.GetOrigin()) > 1  # non-zero origin
        pred = sitk.ReadImage(str(out / f"{name}.nii.gz"))
        assert pred.GetPixelID() == sitk.sitkUInt8
        assert pred.GetSize() == raw.GetSize()
        assert pred.GetSpacing() == raw.GetSpacing()
        assert pred.GetOrigin() == raw.GetOrigin()
        assert pred.GetDirection() == raw.GetDirection()
        raw_affine = nib.load(str(root / "raw" / f"{name}_0000.nii.gz")).affine
        np.testing.assert_allclose(nib.load(str(out / f"{name}.nii.gz")).affine, raw_affine, atol=1e-6)
        np.testing.assert_allclose(ras_affine(raw), raw_affine, atol=1e-4)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "labels" / f"{name}.nii.gz")))
        got = sitk.GetArrayFromImage(pred)
        for k in range(1, NUM_CLASSES):
            assert (truth == k).sum() > 50
            assert dice(got, truth, k) > 0.95, (name, k)
        # the 16-bit probability map: same affine, sums to one, argmax is the written label
        probs, affine = read_probabilities(out / f"{name}_probabilities.nii.gz")
        np.testing.assert_allclose(affine, raw_affine, atol=1e-4)
        assert probs.shape == (NUM_CLASSES, *truth.shape)
        np.testing.assert_allclose(probs.sum(0), 1.0, atol=NUM_CLASSES / PROB_SCALE + 1e-6)
        assert (np.argmax(probs, 0) == got).mean() > 0.999  # ties may differ after quantisation
        vol = sitk.ReadImage(str(out / f"{name}_probabilities.nii.gz"))  # 4D (X, Y, Z, K) floats
        assert vol.GetSize() == (*raw.GetSize(), NUM_CLASSES)
        np.testing.assert_allclose(vol.GetOrigin()[:3], raw.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(vol.GetSpacing()[:3], raw.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(sitk.GetArrayFromImage(vol), probs, atol=1e-6)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_probability_quantisation_error_is_below_one_step(tmp_path):
    ref = sitk.Image(5, 4, 3, sitk.sitkUInt8)
    ref.SetSpacing((0.7, 0.9, 3.0))
    ref.SetOrigin((10.0, -4.0, 2.5))
    ref.SetDirection(tuple(sitk.Euler3DTransform((0, 0, 0), 0.1, 0.2, 0.3).GetMatrix()))
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=(3, 4, 5)).transpose(3, 0, 1, 2).astype(np.float32)
    from dicebench.inference.predict import write_probabilities

    write_probabilities(p, ref, tmp_path / "p.nii.gz")
    back, affine = read_probabilities(tmp_path / "p.nii.gz")
    assert np.abs(back - p).max() <= 0.5 / PROB_SCALE + 1e-7
    np.testing.assert_allclose(affine, ras_affine(ref), atol=1e-5)


def test_running_argmax_equals_vector_resample_then_argmax():
    """Per-class resampling with a running argmax = the vector resample + np.argmax it replaces."""
    grid = sitk.Image(9, 8, 5, sitk.sitkFloat32)
    grid.SetSpacing((1.0, 1.0, 2.0))
    grid.SetDirection(tuple(sitk.Euler3DTransform((0, 0, 0), 0.3, -0.2, 0.4).GetMatrix()))
    grid.SetOrigin((3.0, -1.0, 5.0))
    ref = sitk.Image(6, 7, 4, sitk.sitkUInt8)
    ref.SetSpacing((1.4, 1.2, 2.6))
    ref.SetDirection(grid.GetDirection())
    ref.SetOrigin((3.2, -0.7, 5.4))
    probs = np.random.default_rng(1).dirichlet(np.ones(3), size=(5, 8, 9)).transpose(3, 0, 1, 2).astype(np.float32)
    vec = sitk.GetImageFromArray(np.moveaxis(probs, 0, -1), isVector=True)
    vec.CopyInformation(grid)
    expected = np.moveaxis(sitk.GetArrayFromImage(
        sitk.Resample(vec, ref, sitk.Transform(), sitk.sitkLinear, 0.0, vec.GetPixelID(), True)), -1, 0)
    labels, kept = labels_on_reference(probs, grid, ref, keep_probabilities=True)
    np.testing.assert_allclose(kept, expected, atol=1e-6)
    np.testing.assert_array_equal(labels, np.argmax(expected, 0))
    np.testing.assert_allclose(probabilities_to_reference(probs, grid, ref), expected, atol=1e-6)


# ----------------------------------------------------------------------------- blending
def test_window_starts_match_monai():
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    for size, roi, ov in itertools.product(range(1, 30), range(1, 12), (0.0, 0.25, 0.5, 0.75)):
        if size < roi:
            continue
        interval = _get_scan_interval((size,), (roi,), 1, (ov,))
        monai_starts = [s[0].start for s in dense_patch_slices((size,), (roi,), interval)]
        assert window_starts(size, roi, ov) == monai_starts


@pytest.mark.parametrize("dims", [2, 3])
def test_blending_keeps_a_translation_equivariant_prediction(dims):
    img = rand_image((2, 7, 21, 19))
    patch = (8, 8) if dims == 2 else (4, 8, 8)
    model = pointwise(dims, 2, 3)
    got = predict_probabilities(model, img, patch, overlap=0.5, sw_batch_size=3, slices_per_chunk=3)
    with torch.no_grad():
        x = torch.from_numpy(img)
        full = torch.softmax(model(x.permute(1, 0, 2, 3)), 1).permute(1, 0, 2, 3) if dims == 2 else \
            torch.softmax(model(x[None]), 1)[0]
    np.testing.assert_allclose(got, full.numpy(), atol=1e-5)


def _starts(size: int, roi: int, overlap: float) -> list[int]:
    """Brute force: steps of int(roi (1 - overlap)) from 0, the last window clamped to the end."""
    step = max(1, int(roi * (1 - overlap)))
    return sorted({min(i * step, size - roi) for i in range(math.ceil((size - roi) / step) + 1)})


def _gauss(n: int) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    return np.exp(-x ** 2 / (2 * (n / 8) ** 2))


@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_blending_equals_brute_force_gaussian_average(overlap):
    """sum_w g(x - p_w) softmax(f(window_w))(x) / sum_w g(x - p_w), g a product of 1D Gaussians
    with sigma = patch/8 centred on the window (floored at 1e-3, as MONAI)."""
    img = rand_image((1, 13, 21, 18), seed=2)
    patch = (8, 8, 8)
    model = PositionToy(3, 1, 3)
    got = predict_probabilities(model, img, patch, overlap=overlap, sw_batch_size=2)
    g = _gauss(8)[:, None, None] * _gauss(8)[None, :, None] * _gauss(8)[None, None, :]
    g = np.maximum(g, max(g.min(), 1e-3))
    num = np.zeros((3, 13, 21, 18))
    den = np.zeros((13, 21, 18))
    n_windows = 0
    for z, y, x in itertools.product(*(_starts(s, p, overlap) for s, p in zip(img.shape[1:], patch))):
        sl = (slice(z, z + 8), slice(y, y + 8), slice(x, x + 8))
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(img[(slice(None), *sl)])[None]), 1)[0].numpy()
        num[(slice(None), *sl)] += g * p
        den[sl] += g
        n_windows += 1
    assert n_windows > 8
    np.testing.assert_allclose(got, num / den, atol=1e-5)
    # and it is not the same as one full-image pass: the toy is not equivariant
    with torch.no_grad():
        full = torch.softmax(model(torch.from_numpy(img)[None]), 1)[0].numpy()
    assert np.abs(got - full).max() > 1e-2


# ----------------------------------------------------------------------------- 2D vs 3D
@pytest.mark.parametrize("chunk", [1, 2, 64])
def test_2d_network_equals_stacked_per_slice_predictions(chunk):
    from monai.inferers import sliding_window_inference

    img = rand_image((2, 5, 20, 23), seed=3)
    model = PositionToy(2, 2, 3, seed=1)
    got = predict_probabilities(model, img, (16, 16), overlap=0.5, sw_batch_size=3, slices_per_chunk=chunk)
    assert got.shape == (3, 5, 20, 23)
    for z in range(5):
        with torch.no_grad():
            ref = sliding_window_inference(torch.from_numpy(img[None, :, z]), (16, 16), 1,
                                           lambda t: torch.softmax(model(t), 1), overlap=0.5, mode="gaussian")
        np.testing.assert_allclose(got[:, z], ref[0].numpy(), atol=1e-5)


def test_volume_smaller_than_patch_is_padded_and_cropped_back():
    img = rand_image((1, 3, 6, 5))
    model = pointwise(3, 1, 2)
    got = predict_probabilities(model, img, (4, 8, 8))
    with torch.no_grad():
        full = torch.softmax(model(torch.from_numpy(img)[None]), 1)[0].numpy()
    np.testing.assert_allclose(got, full, atol=1e-5)


# ----------------------------------------------------------------------------- mirroring
def test_mirroring_leaves_a_flip_equivariant_model_unchanged():
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 3, 3, padding=1)
    with torch.no_grad():  # a kernel symmetric under every flip commutes with flips
        w = model.weight
        for axes in [(2,), (3,), (4,)]:
            w = (w + w.flip(axes)) / 2
        model.weight.copy_(w)
    img = rand_image((1, 9, 14, 12), seed=4)
    plain = predict_probabilities(model, img, (6, 8, 8), overlap=0.5)
    mirrored = predict_probabilities(model, img, (6, 8, 8), overlap=0.5, mirror=True)
    np.testing.assert_allclose(mirrored, plain, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_mirroring_is_the_mean_over_all_flips(dims):
    img = rand_image((1, 4, 8, 8), seed=5)
    model = PositionToy(dims, 1, 3, seed=2)
    patch = (8, 8) if dims == 2 else (4, 8, 8)  # one window: mirroring per window = per image
    got = predict_probabilities(model, img, patch, mirror=True)
    x = torch.from_numpy(img)
    x = x.permute(1, 0, 2, 3) if dims == 2 else x[None]
    axes = list(range(2, 2 + dims))
    combos = [c for r in range(dims + 1) for c in itertools.combinations(axes, r)]
    assert len(combos) == 2 ** dims
    with torch.no_grad():
        mean = sum(torch.softmax(model(x.flip(c)), 1).flip(c) for c in combos) / len(combos)
        plain = torch.softmax(model(x), 1)
    mean = mean.permute(1, 0, 2, 3) if dims == 2 else mean[0]
    plain = plain.permute(1, 0, 2, 3) if dims == 2 else plain[0]
    np.testing.assert_allclose(got, mean.numpy(), atol=1e-5)
    assert np.abs(got - plain.numpy()).max() > 1e-2


# ----------------------------------------------------------------------------- resume
class InterruptAt(torch.nn.Module):
    """Forwards to a model, and raises KeyboardInterrupt (Ctrl-C) on its n-th call."""

    def __init__(self, model: torch.nn.Module, n: int) -> None:
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.model(x)


def test_interrupted_run_leaves_no_partial_file_and_rerun_completes(folders, tmp_path):
    root = folders["root"]
    out = tmp_path / "pred"
    meta = {**ORACLE_META, "patch_size": [64, 64]}  # one window per slice chunk: one call per case
    settings = {"save_probabilities": True, "slices_per_chunk": 1000, "sw_batch_size": 1000}
    with pytest.raises(KeyboardInterrupt):
        predict_folder(InterruptAt(LabelEcho(), 2), meta, root / "prep", root / "raw", out, settings)
    assert sorted(p.name for p in out.iterdir()) == ["case_000.nii.gz", "case_000_probabilities.nii.gz"]
    first = (out / "case_000.nii.gz").stat()
    # a run killed outright (SIGKILL) mid-write leaves a temporary of atomic_path behind
    stale = out / ".case_001.nii.gz.k1ll3d.tmp.nii.gz"
    stale.write_bytes(b"half a file")
    # a label map without its probability map is redone when probabilities are asked for
    predict_folder(LabelEcho(), meta, root / "prep", root / "raw", out, settings)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"case_{i:03d}{s}.nii.gz" for i in range(3) for s in ("", "_probabilities")]
    assert (out / "case_000.nii.gz").stat().st_mtime_ns == first.st_mtime_ns  # skipped, not redone
    for name in folders["cases"]:
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "labels" / f"{name}.nii.gz")))
        got = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{name}.nii.gz")))
        assert dice(got, truth, 1) > 0.95


# ----------------------------------------------------------------------------- models and errors
def _save_model(path: Path, model: torch.nn.Module, meta: dict) -> None:
    torch.save({"state_dict": model.state_dict(), "meta": json.dumps(meta)}, path)


def test_cli_predicts_with_a_registry_network(folders, tmp_path, capsys):
    """End to end through `dicebench infer`: a trainer-format model.pt of a tiny registry U-Net."""
    from dicebench.cli import main
    from dicebench.networks import get_network

    root = folders["root"]
    meta = {"network": "unet2d", "network_params": {"width": 4}, "in_channels": 1, "num_classes": NUM_CLASSES,
            "patch_size": [32, 32], "dims": 2}
    torch.manual_seed(0)
    _save_model(tmp_path / "model.pt", get_network("unet2d", 1, NUM_CLASSES, width=4), meta)
    model, loaded = load_model(tmp_path / "model.pt")
    assert loaded == meta and isinstance(model, torch.nn.Module)
    rc = main(["infer", "--model", str(tmp_path / "model.pt"), "--images", str(root / "prep_img"),
               "--reference", str(root / "raw"), "--out", str(tmp_path / "out"),
               "--settings", json.dumps({"overlap": 0.25, "mirror": True, "sw_batch_size": 4, "checkpoint": "last"})])
    assert rc == 0, capsys.readouterr().err
    pred = sitk.ReadImage(str(tmp_path / "out" / "case_000.nii.gz"))
    raw = sitk.ReadImage(str(root / "raw" / "case_000_0000.nii.gz"))
    assert pred.GetSize() == raw.GetSize() and pred.GetDirection() == raw.GetDirection()
    assert sitk.GetArrayFromImage(pred).max() < NUM_CLASSES


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no_meta"])
def test_corrupt_model_is_a_one_line_error_naming_the_file(tmp_path, damage, capsys):
    from dicebench.cli import main
    from dicebench.networks import get_network

    path = tmp_path / "model.pt"
    meta = {"network": "unet2d", "network_params": {"width": 4}, "in_channels": 1, "num_classes": 2,
            "patch_size": [16, 16]}
    _save_model(path, get_network("unet2d", 1, 2, width=4), meta)
    if damage == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        torch.save({"state_dict": {}}, path)
    with pytest.raises(DicebenchError, match=str(path)):
        load_model(path)
    rc = main(["infer", "--model", str(path), "--images", str(tmp_path), "--reference", str(tmp_path),
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and str(path) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_reference_is_an_error_naming_the_file_before_any_work(folders, tmp_path):
    root = folders["root"]
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("case_000", "case_002"):
        (raw / f"{name}_0000.nii.gz").symlink_to(root / "raw" / f"{name}_0000.nii.gz")
    with pytest.raises(DicebenchError, match=r"case_001_0000\.nii\.gz.*missing"):
        predict_folder(LabelEcho(), ORACLE_META, root / "prep", raw, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_settings_are_errors(folders, tmp_path):
    root = folders["root"]
    for bad in ({"overlap": 1.0}, {"sw_batch_size": 0}, {"mirorr": True}):
        with pytest.raises(DicebenchError, match="inference settings"):
            predict_folder(LabelEcho(), ORACLE_META, root / "prep", root / "raw", tmp_path / "out", bad)


def test_requested_cuda_device_that_is_not_there_is_a_one_line_error(folders, tmp_path, capsys):
    """`dicebench infer --settings '{"device": "cuda:N"}'` with no N-th CUDA device (CPU-only: any N)."""
    from dicebench.cli import main

    from dicebench.networks import get_network

    _save_model(tmp_path / "model.pt", get_network("unet2d", 1, NUM_CLASSES, width=4),
                {"network": "unet2d", "network_params": {"width": 4}, "in_channels": 1, "num_classes": NUM_CLASSES,
                 "patch_size": [32, 32], "dims": 2})
    missing = f"cuda:{torch.cuda.device_count()}"
    rc = main(["infer", "--model", str(tmp_path / "model.pt"), "--images", str(folders["root"] / "prep"),
               "--reference", str(folders["root"] / "raw"), "--out", str(tmp_path / "out"),
               "--settings", json.dumps({"device": missing})])
    err = capsys.readouterr().err
    assert rc == 1 and f"'{missing}'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # three interpreters, each importing torch
def test_each_process_claims_its_own_gpu(tmp_path):
    """Two jobs on a multi-GPU workstation get different GPU indices; a finished job frees its GPU.
    The first job holds its claim until it is killed, however long the others take to start."""
    import subprocess
    import sys

    code = ("import sys, time; from dicebench.device import _claim_free_gpu; "
            "print(_claim_free_gpu(2, sys.argv[1]), flush=True); "
            "sys.argv[2] == 'hold' and time.sleep(3600)")
    first = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "hold"], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "0"
        second = subprocess.run([sys.executable, "-c", code, str(tmp_path), "exit"], capture_output=True, text=True,
                                timeout=300)
        assert second.stdout.strip() == "1", second.stderr[-2000:]
        assert first.poll() is None  # still holding GPU 0 while the second job claimed
    finally:
        first.kill()
        first.wait()
    third = subprocess.run([sys.executable, "-c", code, str(tmp_path), "exit"], capture_output=True, text=True,
                           timeout=300)
    assert third.stdout.strip() == "0", third.stderr[-2000:]
