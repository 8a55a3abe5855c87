"""The networks of the four papers, built by name from the config.

`get_network(name, in_channels, num_classes, **params)` returns a module mapping
(B, in_channels, *spatial) to logits (B, num_classes, *spatial) for any spatial size
divisible by `network_divisor(name, **params)`; `network_dims` says whether it takes 2D
slices or 3D patches. Defaults are the published sizes; the config shrinks `width`/`depth`
so the synthetic runs train in seconds.

| name     | paper                                    | params (defaults = published sizes)  | parameters (1 in) |
|----------|------------------------------------------|--------------------------------------|-------------------|
| unet2d   | Sudre et al. 2017 (Ronneberger U-Net,    | width=64, norm=instance, dropout=0   | 31.1 M (2 classes)|
|          | MONAI BasicUNet, 4 down-samplings)       |                                      |                   |
| unet3d   | Shen et al. 2018 (Çiçek 3D U-Net)         | width=32, depth=4, norm=batch        | 19.07 M (Çiçek: 19,069,955) |
| enet2d   | Kervadec & de Bruijne 2023 (Paszke ENet)  | width=16, norm=batch, dropout=0.1    | 0.363 M (4 classes)|
| rdd      | Liu & Fu 2018 (RDD with DDSPP)            | dims=3, width=16, depth=4, blocks=1, | 3.25 M (2 classes)|
|          | (no sizes published; ours)               | rates=(1,2,4,8), growth=w_bottom/2,  |                   |
|          |                                          | norm=instance                        |                   |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from dicebench.errors import DicebenchError

if TYPE_CHECKING:  # torch is imported only when a network is built, so that config checks
    from torch import nn  # (network_dims, network_divisor) stay cheap

__all__ = ["NETWORKS", "get_network", "count_parameters", "network_dims", "network_divisor",
           "network_defaults"]


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _prob(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0


def _norm(v: Any) -> bool:
    return v in ("batch", "instance")


@dataclass(frozen=True)
class _Spec:
    """A network's builder, its parameters (default, check, description), and its geometry."""

    build: Callable[..., nn.Module]
    params: dict[str, tuple[Any, Callable[[Any], bool], str]]
    dims: Callable[[dict], int]
    divisor: Callable[[dict], int]


def _depth_check(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _unet2d(in_channels: int, num_classes: int, **p: Any) -> nn.Module:
    from dicebench.networks.unet import unet2d
    return unet2d(in_channels, num_classes, **p)


def _unet3d(in_channels: int, num_classes: int, **p: Any) -> nn.Module:
    from dicebench.networks.unet import UNet3D
    return UNet3D(in_channels, num_classes, **p)


def _enet(in_channels: int, num_classes: int, **p: Any) -> nn.Module:
    from dicebench.networks.enet import ENet
    return ENet(in_channels, num_classes, **p)


def _rdd(in_channels: int, num_classes: int, **p: Any) -> nn.Module:
    from dicebench.networks.rdd import RDD
    return RDD(in_channels, num_classes, **p)


_SPECS: dict[str, _Spec] = {
    "unet2d": _Spec(
        build=_unet2d,
        params={"width": (64, _pos_int, "a positive integer"),
                "norm": ("instance", _norm, "'batch' or 'instance'"),
                "dropout": (0.0, _prob, "a number in [0, 1)")},
        dims=lambda p: 2, divisor=lambda p: 16),
    "unet3d": _Spec(
        build=_unet3d,
        params={"width": (32, _pos_int, "a positive integer"),
                "depth": (4, _depth_check(1, 7), "an integer in 1..7"),
                "norm": ("batch", _norm, "'batch' or 'instance'")},
        dims=lambda p: 3, divisor=lambda p: 2 ** (p["depth"] - 1)),
    "enet2d": _Spec(
        build=_enet,
        params={"width": (16, _pos_int, "a positive integer"),
                "norm": ("batch", _norm, "'batch' or 'instance'"),
                "dropout": (0.1, _prob, "a number in [0, 1)")},
        dims=lambda p: 2, divisor=lambda p: 8),
    "rdd": _Spec(
        build=_rdd,
        params={"dims": (3, lambda v: v in (2, 3), "2 or 3"),
                "width": (16, _pos_int, "a positive integer"),
                "depth": (4, _depth_check(2, 7), "an integer in 2..7"),
                "blocks": (1, _pos_int, "a positive integer"),
                "rates": ((1, 2, 4, 8), lambda v: isinstance(v, (list, tuple)) and len(v) > 0
                          and all(_pos_int(r) for r in v), "a non-empty list of positive integers"),
                "growth": (None, lambda v: v is None or _pos_int(v), "a positive integer or null"),
                "norm": ("instance", _norm, "'batch' or 'instance'")},
        dims=lambda p: p["dims"], divisor=lambda p: 2 ** (p["depth"] - 1)),
}

NETWORKS: dict[str, Callable[..., nn.Module]] = {name: spec.build for name, spec in _SPECS.items()}


def _resolve(name: str, params: dict[str, Any]) -> tuple[_Spec, dict[str, Any]]:
    """Check the name and every parameter; fill in the published defaults."""
    if name not in _SPECS:
        raise DicebenchError(f"unknown network '{name}'; valid choices: {', '.join(sorted(_SPECS))}")
    spec = _SPECS[name]
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise DicebenchError(f"network '{name}': unknown parameter(s) {', '.join(unknown)}; "
                             f"valid parameters: {', '.join(spec.params)}")
    resolved = {}
    for key, (default, check, what) in spec.params.items():
        value = params.get(key, default)
        if isinstance(value, list):
            value = tuple(value)
        if not check(value):
            raise DicebenchError(f"network '{name}': parameter {key}={value!r} must be {what}")
        resolved[key] = value
    return spec, resolved


def network_defaults(name: str) -> dict[str, Any]:
    """The published sizes, i.e. what `get_network(name, ...)` builds without parameters."""
    return _resolve(name, {})[1]


def get_network(name: str, in_channels: int, num_classes: int, **params: Any) -> nn.Module:
    """Build network `name`; unknown names or bad parameters are a DicebenchError."""
    spec, resolved = _resolve(name, params)
    if not _pos_int(in_channels) or not _pos_int(num_classes):
        raise DicebenchError(f"network '{name}': in_channels ({in_channels!r}) and num_classes "
                             f"({num_classes!r}) must be positive integers")
    return spec.build(in_channels, num_classes, **resolved)


def network_dims(name: str, **params: Any) -> int:
    """2 for slice-wise networks, 3 for volumetric ones."""
    spec, resolved = _resolve(name, params)
    return int(spec.dims(resolved))


def network_divisor(name: str, **params: Any) -> int:
    """The total down-sampling factor: every input spatial size must be a multiple of it."""
    spec, resolved = _resolve(name, params)
    return int(spec.divisor(resolved))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what the papers report)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check_patch(name: str, patch: list[int] | tuple[int, ...], batch_size: int, **params: Any) -> None:
    """Whether training batches of `batch_size` patches go through network `name` (dimension,
    divisibility, a bottleneck the normalisation can normalise): checked when the config is
    validated, before any job runs."""
    from dicebench.networks.shapes import check_shape

    spec, resolved = _resolve(name, params)
    check_shape(name, (int(batch_size), 1, *map(int, patch)), int(spec.dims(resolved)),
                int(spec.divisor(resolved)), resolved["norm"], training=True)
