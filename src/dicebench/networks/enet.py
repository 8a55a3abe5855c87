"""ENet (Paszke et al. 2016, arXiv:1606.02147), the lightweight 2D network of Kervadec &
de Bruijne 2023.

Layout (Paszke et al., Table 1; channels at the published width w=16):
initial block (3x3 stride-2 conv of w - C_in filters concatenated with a 2x2 max-pool of the
input) -> bottleneck1.0 down to 4w, 4 x regular -> bottleneck2.0 down to 8w, then
[regular, dilated 2, asymmetric 5, dilated 4, regular, dilated 8, asymmetric 5, dilated 16]
-> the same eight again (stage 3) -> bottleneck4.0 up to 4w, 2 x regular -> bottleneck5.0 up
to w, 1 x regular -> 2x2 stride-2 full convolution to the classes. Each bottleneck is
1x1 projection (ratio 4) -> main conv -> 1x1 expansion, each followed by BN and PReLU,
spatial dropout (p/10 in stage 1, p after), added to the main branch (max-pool + zero
channel padding when down-sampling, 1x1 conv + max-unpool with the matching indices when
up-sampling). Total down-sampling factor 8. Convolutions followed by a norm have no bias
(the norm's shift makes it redundant and its gradient zero); the only biased layer is the
final full convolution. Count at the published width: 362,763 parameters for 1 input channel
and 4 classes (ACDC), 363,499 for 3 channels and 12 classes (CamVid; Paszke et al.: 0.37 M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dicebench.networks._blocks import check_input
from dicebench.networks._blocks import norm as make_norm


class InitialBlock(nn.Module):
    """3x3 stride-2 conv (w - C_in filters) concatenated with a 2x2 max-pool of the input,
    then BN + PReLU. If the input has as many channels as w or more, the conv alone gives w."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.pool_input = cout > cin
        self.conv = nn.Conv2d(cin, cout - cin if self.pool_input else cout, 3, stride=2, padding=1, bias=False)
        self.bn = make_norm(norm, 2, cout)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool_input:
            y = torch.cat([y, F.max_pool2d(x, 2, 2)], dim=1)
        return self.act(self.bn(y))


class Bottleneck(nn.Module):
    """Regular / dilated / asymmetric / down-sampling bottleneck (Paszke et al., Fig. 2b)."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float, kind: str = "regular",
                 dilation: int = 1, asym: int = 5, downsample: bool = False) -> None:
        super().__init__()
        internal = max(cout // 4, 1)
        self.downsample = downsample
        self.pad = cout - cin
        if downsample:
            proj = nn.Conv2d(cin, internal, 2, stride=2, bias=False)
        else:
            proj = nn.Conv2d(cin, internal, 1, bias=False)
        if kind == "asymmetric":
            main: nn.Module = nn.Sequential(
                nn.Conv2d(internal, internal, (asym, 1), padding=(asym // 2, 0), bias=False),
                nn.Conv2d(internal, internal, (1, asym), padding=(0, asym // 2), bias=False))
        else:
            main = nn.Conv2d(internal, internal, 3, padding=dilation, dilation=dilation, bias=False)
        self.ext = nn.Sequential(
            proj, make_norm(norm, 2, internal), nn.PReLU(internal),
            main, make_norm(norm, 2, internal), nn.PReLU(internal),
            nn.Conv2d(internal, cout, 1, bias=False), make_norm(norm, 2, cout),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        indices = None
        main = x
        if self.downsample:
            main, indices = F.max_pool2d(x, 2, 2, return_indices=True)
        if self.pad > 0:
            zeros = main.new_zeros(main.shape[0], self.pad, *main.shape[2:])
            main = torch.cat([main, zeros], dim=1)
        return self.act(main + self.ext(x)), indices


class UpsamplingBottleneck(nn.Module):
    """Up-sampling bottleneck: main branch 1x1 conv + BN then max-unpool with the indices of
    the matching down-sampling; extension 1x1 -> 3x3 stride-2 transposed conv -> 1x1."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float) -> None:
        super().__init__()
        internal = max(cout // 4, 1)
        self.main = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), make_norm(norm, 2, cout))
        self.ext = nn.Sequential(
            nn.Conv2d(cin, internal, 1, bias=False), make_norm(norm, 2, internal), nn.PReLU(internal),
            nn.ConvTranspose2d(internal, internal, 3, stride=2, padding=1, output_padding=1, bias=False),
            make_norm(norm, 2, internal), nn.PReLU(internal),
            nn.Conv2d(internal, cout, 1, bias=False), make_norm(norm, 2, cout),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        main = F.max_unpool2d(self.main(x), indices, 2, 2, output_size=[2 * s for s in x.shape[2:]])
        return self.act(main + self.ext(x))


def _stage23(ch: int, norm: str, dropout: float) -> list[nn.Module]:
    """The eight bottlenecks of stages 2 and 3 (after bottleneck2.0)."""
    def b(kind: str = "regular", dilation: int = 1) -> nn.Module:
        return Bottleneck(ch, ch, norm, dropout, kind=kind, dilation=dilation)
    return [b(), b(dilation=2), b("asymmetric"), b(dilation=4),
            b(), b(dilation=8), b("asymmetric"), b(dilation=16)]


class ENet(nn.Module):
    """ENet; `width` is the initial block's channels (16 published), stages use 4w and 8w."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, norm: str = "batch",
                 dropout: float = 0.1) -> None:
        super().__init__()
        w = width
        self.norm_kind = norm
        self.initial = InitialBlock(in_channels, w, norm)
        self.down1 = Bottleneck(w, 4 * w, norm, dropout / 10, downsample=True)
        self.stage1 = nn.Sequential(*[Bottleneck(4 * w, 4 * w, norm, dropout / 10) for _ in range(4)])
        self.down2 = Bottleneck(4 * w, 8 * w, norm, dropout, downsample=True)
        self.stage2 = nn.ModuleList(_stage23(8 * w, norm, dropout))
        self.stage3 = nn.ModuleList(_stage23(8 * w, norm, dropout))
        self.up4 = UpsamplingBottleneck(8 * w, 4 * w, norm, dropout)
        self.stage4 = nn.ModuleList([Bottleneck(4 * w, 4 * w, norm, dropout) for _ in range(2)])
        self.up5 = UpsamplingBottleneck(4 * w, w, norm, dropout)
        self.stage5 = nn.ModuleList([Bottleneck(w, w, norm, dropout)])
        self.fullconv = nn.ConvTranspose2d(w, num_classes, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("enet2d", x, 2, 8, self.norm_kind, self.training)
        x = self.initial(x)
        x, idx1 = self.down1(x)
        for blk in self.stage1:
            x, _ = blk(x)
        x, idx2 = self.down2(x)
        for blk in (*self.stage2, *self.stage3):
            x, _ = blk(x)
        x = self.up4(x, idx2)
        for blk in self.stage4:
            x, _ = blk(x)
        x = self.up5(x, idx1)
        for blk in self.stage5:
            x, _ = blk(x)
        return self.fullconv(x)
