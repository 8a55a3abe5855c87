"""Dimension-generic building blocks shared by the networks (2D and 3D from one code path)."""

from __future__ import annotations

from torch import nn

from dicebench.networks.shapes import check_shape

NORMS = ("batch", "instance")


def conv(dims: int, cin: int, cout: int, kernel: int | tuple = 3, stride: int = 1, dilation: int = 1,
         padding: int | tuple | None = None, bias: bool = True) -> nn.Module:
    """A `dims`-D convolution with 'same' padding for odd kernels by default."""
    cls = nn.Conv2d if dims == 2 else nn.Conv3d
    if padding is None:
        if isinstance(kernel, int):
            padding = dilation * (kernel - 1) // 2
        else:
            padding = tuple(dilation * (k - 1) // 2 for k in kernel)
    return cls(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)


def conv_transpose(dims: int, cin: int, cout: int, kernel: int = 2, stride: int = 2, padding: int = 0,
                   output_padding: int = 0, bias: bool = True) -> nn.Module:
    cls = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
    return cls(cin, cout, kernel, stride=stride, padding=padding, output_padding=output_padding, bias=bias)


def norm(kind: str, dims: int, channels: int) -> nn.Module:
    """BatchNorm as in the papers, or affine InstanceNorm, which also trains with batch size 1
    when the bottleneck is a single voxel (BatchNorm then has one value per channel and fails)."""
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    raise ValueError(f"unknown norm {kind!r}")


def max_pool(dims: int, kernel: int = 2, return_indices: bool = False) -> nn.Module:
    cls = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
    return cls(kernel, stride=kernel, return_indices=return_indices)


def conv_norm_act(dims: int, cin: int, cout: int, norm_kind: str, kernel: int = 3, dilation: int = 1,
                  stride: int = 1) -> nn.Sequential:
    """conv -> norm -> ReLU; the conv has no bias because the norm's shift replaces it."""
    return nn.Sequential(conv(dims, cin, cout, kernel, stride=stride, dilation=dilation, bias=False),
                         norm(norm_kind, dims, cout), nn.ReLU(inplace=True))


def check_input(name: str, x, dims: int, divisor: int, norm_kind: str, training: bool) -> None:
    """Fail with a clear message, not a deep PyTorch error, when the input cannot go through
    (`check_shape`)."""
    check_shape(name, tuple(x.shape), dims, divisor, norm_kind, training)
