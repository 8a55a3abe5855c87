"""U-Nets: the 2D baseline of Sudre et al. 2017 (MONAI's BasicUNet, rebuilt in torch) and the
3D U-Net of Çiçek et al. 2016 as used by Shen et al. 2018."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from dicebench.networks._blocks import check_input, conv, conv_norm_act, conv_transpose, max_pool
from dicebench.networks._blocks import norm as norm_layer


def unet2d(in_channels: int, num_classes: int, width: int = 64, norm: str = "instance",
           dropout: float = 0.0) -> nn.Module:
    """Ronneberger's U-Net as MONAI ships it (`BasicUNet`): five levels, two 3x3 convs each,
    max-pool down, transposed-conv up, concatenated skips. Feature plan
    (w, 2w, 4w, 8w, 16w) with w=64 the published Ronneberger et al. 2015 size (about 31 M
    parameters with MONAI's padded convs); MONAI's default norm is affine InstanceNorm, which
    trains with batch size 1. The depth is fixed by MONAI (divisor 16). `bias=False` because every
    conv is followed by a norm whose shift makes a bias redundant (its gradient is zero).
    Built here in torch alone (`BasicUNet2D`), with MONAI's module names, so weights move
    between the two either way; importing MONAI cost every job about 3 s of CPU."""
    features = (width, 2 * width, 4 * width, 8 * width, 16 * width, width)
    return BasicUNet2D(in_channels, num_classes, features, norm_kind=norm, dropout=dropout)


def _conv_block(cin: int, cout: int, norm_kind: str, dropout: float) -> nn.Sequential:
    """MONAI's `Convolution` as BasicUNet calls it: 3x3 conv without bias, then `adn` = norm (N),
    dropout (D), LeakyReLU(0.1) (A), in that order and under those names."""
    adn = nn.Sequential(OrderedDict(N=norm_layer(norm_kind, 2, cout), D=nn.Dropout(dropout),
                                    A=nn.LeakyReLU(negative_slope=0.1, inplace=True)))
    return nn.Sequential(OrderedDict(conv=conv(2, cin, cout, 3, bias=False), adn=adn))


def _two_conv(cin: int, cout: int, norm_kind: str, dropout: float) -> nn.Sequential:
    """MONAI's `TwoConv`."""
    return nn.Sequential(OrderedDict(conv_0=_conv_block(cin, cout, norm_kind, dropout),
                                     conv_1=_conv_block(cout, cout, norm_kind, dropout)))


def _down(cin: int, cout: int, norm_kind: str, dropout: float) -> nn.Sequential:
    """MONAI's `Down`: 2x2 max-pool, then `TwoConv`."""
    return nn.Sequential(OrderedDict(max_pooling=max_pool(2), convs=_two_conv(cin, cout, norm_kind, dropout)))


class UpCat(nn.Module):
    """MONAI's `UpCat` in "deconv" mode: a 2x2 stride-2 transposed conv (with bias) to
    `in_chns // 2` channels (`in_chns` when `halves` is False), the encoder features first in
    the concatenation, then `TwoConv`. An upsampled map one short of the encoder's (odd size
    before pooling) is padded by repeating its last row/column, as MONAI does."""

    def __init__(self, in_chns: int, cat_chns: int, out_chns: int, norm_kind: str, dropout: float,
                 halves: bool = True) -> None:
        super().__init__()
        up_chns = in_chns // 2 if halves else in_chns
        self.upsample = nn.Sequential(OrderedDict(deconv=conv_transpose(2, in_chns, up_chns)))
        self.convs = _two_conv(cat_chns + up_chns, out_chns, norm_kind, dropout)

    def forward(self, x: torch.Tensor, x_e: torch.Tensor) -> torch.Tensor:
        x_0 = self.upsample(x)
        pad = [0] * (2 * (x.dim() - 2))  # F.pad order: last axis first, (before, after) each
        for i in range(x.dim() - 2):
            if x_e.shape[-i - 1] != x_0.shape[-i - 1]:
                pad[2 * i + 1] = 1
        if any(pad):
            x_0 = nn.functional.pad(x_0, pad, "replicate")
        return self.convs(torch.cat([x_e, x_0], dim=1))


class BasicUNet2D(nn.Module):
    """MONAI's `BasicUNet(spatial_dims=2, act=LeakyReLU(0.1), norm=(norm_kind, affine),
    bias=False, upsample="deconv")`: the same modules, names, parameter shapes, creation order
    (so one seed gives the same initial weights) and forward, plus a readable error for inputs
    it cannot take. `features`: the five encoder widths and the width after the last upsampling."""

    def __init__(self, in_channels: int, out_channels: int, features: tuple[int, ...],
                 norm_kind: str = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_kind = norm_kind
        f = features
        self.conv_0 = _two_conv(in_channels, f[0], norm_kind, dropout)
        self.down_1 = _down(f[0], f[1], norm_kind, dropout)
        self.down_2 = _down(f[1], f[2], norm_kind, dropout)
        self.down_3 = _down(f[2], f[3], norm_kind, dropout)
        self.down_4 = _down(f[3], f[4], norm_kind, dropout)
        self.upcat_4 = UpCat(f[4], f[3], f[3], norm_kind, dropout)
        self.upcat_3 = UpCat(f[3], f[2], f[2], norm_kind, dropout)
        self.upcat_2 = UpCat(f[2], f[1], f[1], norm_kind, dropout)
        self.upcat_1 = UpCat(f[1], f[0], f[5], norm_kind, dropout, halves=False)
        self.final_conv = conv(2, f[5], out_channels, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("unet2d", x, 2, 16, self.norm_kind, self.training)
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4 = self.down_4(x3)
        u4 = self.upcat_4(x4, x3)
        u3 = self.upcat_3(u4, x2)
        u2 = self.upcat_2(u3, x1)
        u1 = self.upcat_1(u2, x0)
        return self.final_conv(u1)


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
