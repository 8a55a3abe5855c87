"""Dimension-generic building blocks shared by the networks (2D and 3D from one code path)."""

from __future__ import annotations

from torch import nn

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


def check_shape(name: str, shape: tuple[int, ...], dims: int, divisor: int, norm_kind: str, training: bool) -> None:
    """The input shape (batch, channels, *spatial) cannot go through when it has the wrong
    number of dimensions, a spatial size not divisible by the down-sampling factor, or a
    bottleneck where the normalisation sees a single value per channel (BatchNorm training
    with batch size 1 on a 1-voxel bottleneck; InstanceNorm on a 1-voxel bottleneck)."""
    from dicebench.errors import DicebenchError

    if len(shape) != dims + 2:
        raise DicebenchError(f"network '{name}' takes (batch, channels, {dims} spatial dims) input, "
                             f"got shape {tuple(shape)}")
    spatial = tuple(shape[2:])
    if any(s % divisor for s in spatial):
        raise DicebenchError(f"network '{name}': spatial size {list(spatial)} must be divisible by "
                             f"{divisor} (its total down-sampling); choose a patch size that is")
    values = 1
    for s in spatial:
        values *= s // divisor
    if norm_kind == "batch":
        if training:
            values *= shape[0]
        else:
            values = 2
    if values <= 1:
        raise DicebenchError(f"network '{name}': spatial size {list(spatial)} with batch {shape[0]} leaves "
                             f"one value per channel at the bottleneck, which {norm_kind} normalisation "
                             f"cannot normalise; use a patch of at least {2 * divisor} along one axis")
