"""Each loss against an independent reference: MONAI where definitions coincide, a brute-force
NumPy loop otherwise, and autograd against the closed-form gradient of Kervadec & de Bruijne eq. (2).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss as MonaiDiceCE
from monai.losses import DiceLoss as MonaiDice
from monai.losses import GeneralizedDiceLoss as MonaiGDL

from dicebench.errors import DicebenchError
from dicebench.losses import (LOSSES, check_loss_params, dice_gradient_map, get_loss, loss_parameters,
                              mime_coefficients, shen_weights)
from dicebench.losses.dice import per_class_dice_loss

torch.set_num_threads(1)

STATS = {  # 3 classes, 2 cases: what `dicebench class-stats` writes (keys the losses read)
    "num_classes": 3,
    "voxels_per_class": [1500, 400, 100],
    "total_voxels": 2000,
    "voxels_per_case": [[800, 150, 50], [700, 250, 50]],
}


def sample(shape=(2, 3, 6, 5, 4), seed=0, absent=(), dtype=torch.float64):
    """Random logits and labels; classes in `absent` never appear in the target."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=dtype)
    b, c, *spatial = shape
    present = [k for k in range(c) if k not in absent]
    idx = torch.randint(0, len(present), (b, *spatial), generator=g)
    target = torch.tensor(present)[idx]
    return logits, target


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


SHAPES = [(2, 3, 6, 5, 4), (3, 4, 7, 9)]  # 3D and 2D


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,squared", [("dice", False), ("vnet", True)])
@pytest.mark.parametrize("include_background,batch_dice", list(itertools.product([True, False], [False, True])))
def test_dice_and_vnet_equal_monai(shape, name, squared, include_background, batch_dice):
    logits, target = sample(shape, absent=(1,))  # an absent class exercises the smoothing path
    ours = get_loss(name, weighting="none", include_background=include_background, batch_dice=batch_dice)
    ref = MonaiDice(softmax=True, to_onehot_y=True, squared_pred=squared,
                    include_background=include_background, batch=batch_dice)
    assert ours(logits, target).item() == pytest.approx(ref(logits, target.unsqueeze(1)).item(), abs=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("include_background,batch_dice", list(itertools.product([True, False], [False, True])))
def test_gdl_equals_monai(shape, w_type, include_background, batch_dice):
    logits, target = sample(shape, seed=1, absent=(2,))
    ours = get_loss("gdl", w_type=w_type, include_background=include_background, batch_dice=batch_dice)
    ref = MonaiGDL(softmax=True, to_onehot_y=True, w_type=w_type, include_background=include_background,
                   batch=batch_dice)
    assert ours(logits, target).item() == pytest.approx(ref(logits, target.unsqueeze(1)).item(), abs=1e-5)


def test_gdl_brute_force_and_empty_policies():
    logits, target = sample((2, 3, 5, 6), seed=2, absent=(1,))
    s = np_softmax(logits.numpy())
    y = np.eye(3)[target.numpy()].transpose(0, 3, 1, 2)
    for policy in ["max", "epsilon", "zero"]:
        vals = []
        for b in range(2):
            g = y[b].reshape(3, -1).sum(1)
            with np.errstate(divide="ignore"):
                w = 1.0 / g**2
            if policy == "max":
                w[np.isinf(w)] = w[np.isfinite(w)].max()
            elif policy == "zero":
                w[np.isinf(w)] = 0.0
            else:
                w = 1.0 / (g + 1e-10) ** 2
            inter = (y[b] * s[b]).reshape(3, -1).sum(1)
            union = (y[b] + s[b]).reshape(3, -1).sum(1)
            vals.append(1 - (2 * (w * inter).sum() + 1e-5) / ((w * union).sum() + 1e-5))
        ours = get_loss("gdl", empty_policy=policy)(logits, target).item()
        assert ours == pytest.approx(np.mean(vals), rel=1e-9, abs=1e-9), policy
    # Kervadec's epsilon lets the absent class's weight explode: the loss saturates near 1.
    assert get_loss("gdl", empty_policy="epsilon")(logits, target).item() > 0.999


@pytest.mark.parametrize("smooth", [0.0, 1e-5])
@pytest.mark.parametrize("shape", SHAPES)
def test_dice_gradient_equals_eq2(shape, smooth):
    logits, target = sample(shape, seed=3)
    probs = torch.softmax(logits, 1).requires_grad_(True)
    onehot = torch.nn.functional.one_hot(target, shape[1]).movedim(-1, 1).to(probs.dtype)
    loss = per_class_dice_loss(probs, onehot, False, False, smooth, smooth).mean()
    (grad,) = torch.autograd.grad(loss, probs)
    closed = dice_gradient_map(probs.detach(), onehot, smooth, smooth)
    b, c = shape[:2]
    torch.testing.assert_close(grad * b * c, closed, atol=1e-6, rtol=0)
    # eq. (2) by hand, independently of dice_gradient_map: two values per class, sign of -y.
    for i, k in itertools.product(range(b), range(c)):
        s_, y_ = probs[i, k].detach(), onehot[i, k]
        inter, union = (s_ * y_).sum(), (s_ + y_).sum()
        fg = -2 * (union - inter) / union**2 if smooth == 0 else None
        bg = 2 * inter / union**2 if smooth == 0 else None
        vals = torch.unique(closed[i, k])
        assert len(vals) <= 2
        if smooth == 0:
            assert torch.allclose(closed[i, k][y_ > 0], fg) and torch.allclose(closed[i, k][y_ == 0], bg)


def test_dice_module_gradient_matches_map_through_softmax():
    logits, target = sample((2, 3, 4, 5, 3), seed=4)
    logits.requires_grad_(True)
    get_loss("dice", smooth_nr=0.0, smooth_dr=0.0)(logits, target).backward()
    s = torch.softmax(logits.detach(), 1)
    y = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).to(s.dtype)
    g = dice_gradient_map(s, y) / (2 * 3)
    chain = s * (g - (g * s).sum(1, keepdim=True))  # softmax Jacobian-vector product
    torch.testing.assert_close(logits.grad, chain, atol=1e-10, rtol=1e-7)


def _np_per_class_dice(logits, target, c):
    s = np_softmax(logits.numpy())
    y = np.eye(c)[target.numpy()]
    y = np.moveaxis(y, -1, 1)
    axes = tuple(range(2, s.ndim))
    return 1 - (2 * (s * y).sum(axes) + 1e-5) / ((s + y).sum(axes) + 1e-5)  # (B, C)


def test_shen_weights_by_hand():
    n, L, r = 2000.0, 3.0, np.array([1500.0, 400.0, 100.0])
    assert shen_weights(STATS, "uniform") is None
    np.testing.assert_allclose(shen_weights(STATS, "simple").numpy(), n / (L * r + 1))
    np.testing.assert_allclose(shen_weights(STATS, "square").numpy(), n / (L * r**2 + 1))


@pytest.mark.parametrize("weighting", ["uniform", "simple", "square"])
@pytest.mark.parametrize("include_background", [True, False])
def test_weighted_dice_brute_force(weighting, include_background):
    logits, target = sample((2, 3, 5, 4, 3), seed=5)
    per_class = _np_per_class_dice(logits, target, 3)
    r = np.array(STATS["voxels_per_class"], dtype=float)
    w = {"uniform": np.ones(3), "simple": 2000 / (3 * r + 1), "square": 2000 / (3 * r**2 + 1)}[weighting]
    if not include_background:
        per_class, w = per_class[:, 1:], w[1:]
    expected = (per_class * w).sum(1).mean() / len(w)
    loss = get_loss("weighted_dice", class_stats=STATS, weighting=weighting, include_background=include_background)
    assert loss(logits, target).item() == pytest.approx(expected, rel=1e-6)
    if weighting == "uniform":
        assert loss(logits, target).item() == pytest.approx(
            get_loss("dice", include_background=include_background)(logits, target).item(), rel=1e-12)


def test_weighted_dice_normalized_weights_have_mean_one():
    logits, target = sample((1, 3, 4, 4), seed=6)
    raw = get_loss("weighted_dice", class_stats=STATS, weighting="square")
    norm = get_loss("weighted_dice", class_stats=STATS, weighting="square", normalize_weights=True)
    assert norm.weights.mean().item() == pytest.approx(1.0)
    ratio = raw(logits, target) / norm(logits, target)
    assert ratio.item() == pytest.approx(shen_weights(STATS, "square").mean().item(), rel=1e-5)


def test_mime_coefficients_and_value_brute_force():
    a, b = mime_coefficients(STATS)
    per_case = np.array(STATS["voxels_per_case"], float)
    np.testing.assert_allclose(a.numpy(), 1 / per_case.mean(0))
    np.testing.assert_allclose(b.numpy(), 1 / (per_case.sum(1, keepdims=True) - per_case).mean(0))
    logits, target = sample((2, 3, 4, 3, 5), seed=7)
    s = np_softmax(logits.numpy())
    expected = 0.0
    for i in range(2):
        for k in range(3):
            for idx in np.ndindex(*target.shape[1:]):
                y = float(target[i][idx] == k)
                expected += (-y * a[k].item() + (1 - y) * b[k].item()) * s[i, k][idx]
    loss = get_loss("mime", class_stats=STATS)
    assert loss(logits, target).item() == pytest.approx(expected / 2, rel=1e-5)


def test_mime_gradient_is_a_frozen_dice_gradient_map():
    """∂L/∂s = ω: two values per class, -a where y = 1 and b elsewhere (same sign pattern as eq. 2)."""
    logits, target = sample((1, 3, 5, 5), seed=8)
    loss = get_loss("mime", a=[1.0, 2.0, 3.0], b=[0.5, 0.25, 0.125])
    probs = torch.softmax(logits, 1).requires_grad_(True)
    y = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).to(probs.dtype)
    omega = (torch.tensor([0.5, 0.25, 0.125]) - y.movedim(1, -1) * torch.tensor([1.5, 2.25, 3.125])).movedim(-1, 1)
    (grad,) = torch.autograd.grad((omega * probs).sum(), probs)
    assert torch.equal(torch.sign(grad), torch.sign(dice_gradient_map(probs.detach(), y)))
    assert loss(logits, target).item() == pytest.approx((omega * torch.softmax(logits, 1)).sum().item(), rel=1e-6)


def test_ce_wce_ss_brute_force():
    logits, target = sample((2, 3, 4, 5), seed=9)
    s = np_softmax(logits.numpy())
    y = np.moveaxis(np.eye(3)[target.numpy()], -1, 1)
    logp = np.log((s * y).sum(1))
    assert get_loss("ce")(logits, target).item() == pytest.approx(-logp.mean(), rel=1e-9)
    w = 2000 / (3 * np.array(STATS["voxels_per_class"], float))
    wv = w[target.numpy()]
    assert get_loss("wce", class_stats=STATS)(logits, target).item() == pytest.approx(
        -(wv * logp).sum() / wv.sum(), rel=1e-6)
    r, eps = 0.05, 1e-5
    sq = (y - s) ** 2
    sens = (sq * y).sum((2, 3)) / (y.sum((2, 3)) + eps)
    spec = (sq * (1 - y)).sum((2, 3)) / ((1 - y).sum((2, 3)) + eps)
    assert get_loss("sensitivity_specificity")(logits, target).item() == pytest.approx(
        (r * sens + (1 - r) * spec).mean(), rel=1e-9)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_dice_ce_equals_monai(batch_dice):
    logits, target = sample((2, 4, 5, 4, 3), seed=10, absent=(3,))
    ref = MonaiDiceCE(softmax=True, to_onehot_y=True, include_background=False, batch=batch_dice)
    ours = get_loss("dice_ce", batch_dice=batch_dice)
    assert ours(logits, target).item() == pytest.approx(ref(logits, target.unsqueeze(1)).item(), abs=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_registry_reads_each_class_signature(name):
    """The torch-free parameter table equals the class's real signature (names and defaults)."""
    spec = LOSSES[name]
    cls = getattr(importlib.import_module(spec.module), spec.class_name)
    real = {k: p.default for k, p in inspect.signature(cls).parameters.items()
            if k not in ("class_stats", "name", "weighting") and k not in spec.fixed}
    assert {k: p.default for k, p in loss_parameters(name).items()} == real
    built = get_loss(name, class_stats=STATS, **({"weighting": "simple"} if spec.uses_weighting else {}))
    assert isinstance(built, cls) and built.name == name


def test_registry_checks_params_without_torch():
    code = ("import sys; from dicebench.losses import check_loss_params; "
            "check_loss_params('gdl', {'empty_policy': 'zero'}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    with pytest.raises(DicebenchError, match=r"experiments.k.loss_params.gdl.empty_polcy: unknown parameter"):
        check_loss_params("gdl", {"empty_polcy": "max"}, "experiments.k.loss_params.gdl")
    with pytest.raises(DicebenchError, match=r"\.empty_policy: must be one of max, epsilon, zero"):
        check_loss_params("gdl", {"empty_policy": "nan"})
    with pytest.raises(DicebenchError, match=r"\.include_background: must be true or false"):
        check_loss_params("dice", {"include_background": "yes"})
    check_loss_params("dice", {"smooth_nr": "1e-5"})  # PyYAML's reading of 1e-5


def test_registry_errors():
    with pytest.raises(DicebenchError, match="unknown loss 'dcie'.*dice, dice_ce"):
        get_loss("dcie")
    with pytest.raises(DicebenchError, match="'gdl'.*unknown parameter.*w_typ.*valid:.*w_type"):
        get_loss("gdl", w_typ="square")
    with pytest.raises(DicebenchError, match="'vnet' takes no class weighting"):
        get_loss("vnet", weighting="square")
    with pytest.raises(DicebenchError, match="'weighted_dice'.*weighting"):
        get_loss("weighted_dice", weighting="cubic")
    with pytest.raises(DicebenchError, match="'gdl'.*empty_policy.*max, epsilon, zero"):
        get_loss("gdl", empty_policy="nan")
    with pytest.raises(DicebenchError, match="'dice'.*include_background.*true or false"):
        get_loss("dice", include_background="yes")
    for name, kw in [("mime", {}), ("wce", {}), ("weighted_dice", {"weighting": "simple"})]:
        with pytest.raises(DicebenchError, match=f"'{name}' needs dataset class statistics"):
            get_loss(name, class_stats=None, **kw)
    assert get_loss("weighted_dice", weighting="uniform") is not None  # uniform needs no statistics
    assert get_loss("dice", smooth_nr="1e-5").smooth_nr == 1e-5  # PyYAML reads 1e-5 as a string
    with pytest.raises(DicebenchError, match="'dice'.*smooth_dr.*>= 0"):
        get_loss("dice", smooth_dr="tiny")


def test_input_errors():
    logits, target = sample((1, 3, 4, 4), seed=11)
    loss = get_loss("dice")
    with pytest.raises(DicebenchError, match="labels span"):
        loss(logits, target + 1)
    with pytest.raises(DicebenchError, match="without a channel axis"):
        loss(logits, target.unsqueeze(1))
    with pytest.raises(DicebenchError, match="integer labels"):
        loss(logits, target.double())
    with pytest.raises(DicebenchError, match="describe 3 classes but the network outputs 4"):
        get_loss("mime", class_stats=STATS)(*sample((1, 4, 4, 4)))


def test_the_config_readme_shows_the_registry():
    """config/README.md's loss table is the registry's (`python -m dicebench.losses` writes it)."""
    from dicebench.losses import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "config" / "README.md").read_text()
    block = readme.split("<!-- losses:", 1)[1].split("-->", 1)[1].split("<!-- /losses -->", 1)[0]
    assert block.strip() == markdown_table().strip(), "regenerate it with `python -m dicebench.losses`"
