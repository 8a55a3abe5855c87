"""U-Nets: the 2D baseline of Sudre et al. 2017 (MONAI's BasicUNet) and the 3D U-Net of
Çiçek et al. 2016 as used by Shen et al. 2018."""

from __future__ import annotations

import torch
from torch import nn

from dicebench.networks._blocks import check_input, conv, conv_norm_act, conv_transpose, max_pool


def unet2d(in_channels: int, num_classes: int, width: int = 64, norm: str = "instance",
           dropout: float = 0.0) -> nn.Module:
    """Ronneberger's U-Net as MONAI ships it (`BasicUNet`): five levels, two 3x3 convs each,
    max-pool down, transposed-conv up, concatenated skips. Feature plan
    (w, 2w, 4w, 8w, 16w) with w=64 the published Ronneberger et al. 2015 size (about 31 M
    parameters with MONAI's padded convs); MONAI's default norm is affine InstanceNorm, which
    trains with batch size 1. The depth is fixed by MONAI (divisor 16). `bias=False` because every
    conv is followed by a norm whose shift makes a bias redundant (its gradient is zero)."""
    features = (width, 2 * width, 4 * width, 8 * width, 16 * width, width)
    return _CheckedBasicUNet(norm, spatial_dims=2, in_channels=in_channels, out_channels=num_classes,
                             features=features, norm=(norm, {"affine": True}), dropout=dropout,
                             bias=False, upsample="deconv")


def _basic_unet_cls() -> type:
    from monai.networks.nets import BasicUNet
    return BasicUNet


class _CheckedBasicUNet(_basic_unet_cls()):  # type: ignore[misc]
    """MONAI's BasicUNet unchanged, plus a readable error for inputs it cannot take."""

    def __init__(self, norm_kind: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.norm_kind = norm_kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("unet2d", x, 2, 16, self.norm_kind, self.training)
        return super().forward(x)


class UNet3D(nn.Module):
    """3D U-Net (Çiçek et al. 2016, Fig. 1): each analysis level has two 3x3x3 conv-BN-ReLU,
    the second doubling the channels (32-64 / 64-128 / 128-256 / bottom 256-512 at width 32),
    2x2x2 max-pool between levels; each synthesis level has a 2x2x2 up-convolution keeping
    the channels, concatenation with the analysis features of the same resolution, and two
    conv-BN-ReLU halving to the analysis level's output width; a final 1x1x1 conv gives the
    logits. Convolutions are padded so the output size equals the input size (Shen et al. 2018
    segment 64^3 sub-volumes). `depth` counts resolution levels including the bottom one."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, depth: int = 4,
                 norm: str = "batch", dims: int = 3) -> None:
        super().__init__()
        self.depth = depth
        self.dims = dims
        self.norm_kind = norm
        self.encoders = nn.ModuleList()
        cin = in_channels
        plan: list[tuple[int, int]] = []
        for level in range(depth):
            c1 = width * 2**level
            c2 = 2 * c1
            plan.append((c1, c2))
            self.encoders.append(nn.Sequential(conv_norm_act(dims, cin, c1, norm),
                                               conv_norm_act(dims, c1, c2, norm)))
            cin = c2
        self.channel_plan = plan
        self.pool = max_pool(dims)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth - 1)):
            skip = plan[level][1]
            self.ups.append(conv_transpose(dims, cin, cin))
            self.decoders.append(nn.Sequential(conv_norm_act(dims, cin + skip, skip, norm),
                                               conv_norm_act(dims, skip, skip, norm)))
            cin = skip
        self.head = conv(dims, cin, num_classes, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(f"unet{self.dims}d", x, self.dims, 2 ** (self.depth - 1), self.norm_kind, self.training)
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x)
            if i < self.depth - 1:
                skips.append(x)
                x = self.pool(x)
        for up, dec in zip(self.ups, self.decoders):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
