"""unet2d is MONAI's BasicUNet rebuilt in torch: the same state_dict (names, shapes, the same
initial weights under one seed), the same logits, gradients and BatchNorm statistics for every
norm and dropout we accept, MONAI's UpCat padding of odd sizes, and no MONAI import."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.networks.nets import BasicUNet
from monai.networks.nets.basic_unet import UpCat as MonaiUpCat

from dicebench.errors import DicebenchError
from dicebench.networks import count_parameters, get_network
from dicebench.networks.unet import UpCat, unet2d

torch.set_num_threads(1)

SRC = Path(__file__).resolve().parents[1] / "src"
MONAI_ACT = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True})


def _monai(cin: int, k: int, width: int, norm: str, dropout: float) -> BasicUNet:
    """BasicUNet exactly as the former unet2d built it."""
    return BasicUNet(spatial_dims=2, in_channels=cin, out_channels=k,
                     features=(width, 2 * width, 4 * width, 8 * width, 16 * width, width),
                     norm=(norm, {"affine": True}), dropout=dropout, bias=False, upsample="deconv")


def _seeded(build, seed: int):
    torch.manual_seed(seed)
    return build()


CASES = list(itertools.product((4, 8, 16), ("batch", "instance"), (0.0, 0.2), (1, 2), ((64, 64), (32, 48))))


@pytest.mark.parametrize("width,norm,dropout,cin,size", CASES,
                         ids=[f"w{w}-{n}-p{p}-in{c}-{s[0]}x{s[1]}" for w, n, p, c, s in CASES])
def test_same_network_as_monai(width: int, norm: str, dropout: float, cin: int, size: tuple) -> None:
    k = 3
    ref = _seeded(lambda: _monai(cin, k, width, norm, dropout), 0)
    ours = _seeded(lambda: unet2d(cin, k, width=width, norm=norm, dropout=dropout), 1)  # other weights
    assert {n: p.shape for n, p in ours.state_dict().items()} == {n: p.shape for n, p in ref.state_dict().items()}
    assert count_parameters(ours) == count_parameters(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, cin, *size, generator=torch.Generator().manual_seed(2))

    # train mode: the same dropout masks under one seed, the same gradients and BatchNorm statistics
    outs, grads = [], []
    for model in (ours, ref):
        model.train()
        torch.manual_seed(3)
        y = model(x)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        outs.append(y.detach())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-6)
    for name in grads[1]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6, msg=name)
    for name, value in ref.state_dict().items():  # running mean/var, batches tracked
        torch.testing.assert_close(ours.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)

    ours.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm,dropout", [("batch", 0.0), ("instance", 0.2)])
def test_one_seed_gives_monais_initial_weights(norm: str, dropout: float) -> None:
    """Modules are created in MONAI's order, so a seed that trained the former unet2d starts ours
    from the same weights."""
    ours = _seeded(lambda: unet2d(1, 2, width=4, norm=norm, dropout=dropout), 5).state_dict()
    ref = _seeded(lambda: _monai(1, 2, 4, norm, dropout), 5).state_dict()
    assert list(ours) == list(ref)
    assert all(torch.equal(ours[n], ref[n]) for n in ref)


def test_our_weights_load_into_monai() -> None:
    ours = _seeded(lambda: unet2d(2, 4, width=4, norm="batch", dropout=0.2), 0).eval()
    ref = _seeded(lambda: _monai(2, 4, 4, "batch", 0.2), 1)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ref.eval()
    x = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_published_size_has_monais_parameter_count(norm: str) -> None:
    assert count_parameters(get_network("unet2d", 1, 2, norm=norm)) == count_parameters(_monai(1, 2, 64, norm, 0.0))


@pytest.mark.parametrize("halves", [True, False])
@pytest.mark.parametrize("skip", [(9, 12), (8, 13), (9, 13), (8, 12)])
def test_upcat_pads_odd_sizes_as_monai(halves: bool, skip: tuple) -> None:
    """An odd encoder size pools to one short; MONAI pads the upsampled map by repeating its last
    row/column (our forward never reaches it, check_input demands multiples of 16)."""
    norm = ("batch", {"affine": True})
    ref = MonaiUpCat(2, 8, 4, 6, MONAI_ACT, norm, False, 0.0, "deconv", halves=halves)
    ours = UpCat(8, 4, 6, "batch", 0.0, halves=halves)
    ours.load_state_dict(ref.state_dict(), strict=True)
    g = torch.Generator().manual_seed(0)
    x, x_e = torch.randn(2, 8, 4, 6, generator=g), torch.randn(2, 4, *skip, generator=g)
    out = ours(x, x_e)
    assert out.shape == (2, 6, *skip)
    torch.testing.assert_close(out, ref(x, x_e), rtol=0, atol=1e-6)


def test_keeps_norm_kind_and_readable_input_errors() -> None:
    model = unet2d(1, 2, width=2, norm="batch")
    assert model.norm_kind == "batch"
    with pytest.raises(DicebenchError, match="divisible by 16"):
        model(torch.randn(2, 1, 40, 32))
    with pytest.raises(DicebenchError, match="spatial dims"):
        model(torch.randn(2, 1, 32, 32, 16))
    with pytest.raises(DicebenchError, match="bottleneck"):
        model.train()(torch.randn(1, 1, 16, 16))
    with pytest.raises(DicebenchError, match="bottleneck"):
        unet2d(1, 2, width=2, norm="instance").eval()(torch.randn(2, 1, 16, 16))


def test_building_and_training_unet2d_imports_no_monai() -> None:
    """A fresh interpreter that imports the module, builds unet2d and takes a training step has
    not imported MONAI (about 3 s of CPU per job)."""
    code = ("import sys, torch\n"
            "import dicebench.networks.unet\n"
            "from dicebench.networks import get_network\n"
            "model = get_network('unet2d', 1, 3, width=2, dropout=0.1)\n"
            "model(torch.randn(2, 1, 32, 32)).sum().backward()\n"
            "model.eval()(torch.randn(1, 1, 32, 48))\n"
            "print(sorted(m for m in sys.modules if m == 'monai' or m.startswith('monai.')))\n")
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
