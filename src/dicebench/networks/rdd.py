"""RDD: the residual encoder-decoder with dense dilated spatial pyramid pooling of
Liu & Fu 2018 (PROMISE12), in 2D or 3D (`dims`).

From the paper (Sec. 1.1): an encode subnet and a decode subnet divided into stages by
resolution, whose blocks are residual blocks with short residual connections; long
residual connections add the encoder features element-wise to the decoder stage of the
same resolution ("unlike the U-net simply using the concatenation"); between them the
dense dilated spatial pyramid pooling (DDSPP) block: dilated convolutions, as in ASPP,
but densely connected so each one sees the input and all earlier outputs, plus the
image-level (globally pooled) feature.

The paper gives no channel numbers, rates or stage counts, so these are ours and
documented as such: width 16 doubling per level, 4 levels (total down-sampling 8),
one residual block per stage, rates (1, 2, 4, 8), growth = half the bottom width,
InstanceNorm (the paper trains with batch size 1).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dicebench.networks._blocks import check_input, conv, conv_norm_act, conv_transpose
from dicebench.networks._blocks import norm as make_norm


class ResidualBlock(nn.Module):
    """Short residual connection: relu(x + norm(conv(relu(norm(conv(x))))))."""

    def __init__(self, dims: int, ch: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_norm_act(dims, ch, ch, norm),
                                  conv(dims, ch, ch, bias=False), make_norm(norm, dims, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class LongResidual(nn.Module):
    """The long connection: element-wise sum of decoder and same-resolution encoder features
    (a module of its own so that the structure can be inspected and hooked)."""

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        return decoder + encoder


class DDSPP(nn.Module):
    """Dense dilated spatial pyramid pooling. With input x (c channels) and rates r_1..r_n,
    y_i = relu(norm(conv3_{r_i}([x, y_1, ..., y_{i-1}]))) has `growth` channels, so layer i
    reads c + (i-1)*growth channels (dense connectivity instead of ASPP's parallel branches).
    The image-level feature p = conv1(avgpool(x)) (c channels) is broadcast over the grid and
    added after the fusion's normalisation: out = relu(norm(conv1([x, y_1..y_n])) + p).
    Concatenated before an InstanceNorm, a spatially constant map would be subtracted away
    as the per-image mean, so it would never reach the output."""

    def __init__(self, dims: int, ch: int, rates: Sequence[int], growth: int, norm: str) -> None:
        super().__init__()
        self.rates = tuple(rates)
        self.layers = nn.ModuleList()
        cin = ch
        for r in self.rates:
            self.layers.append(conv_norm_act(dims, cin, growth, norm, dilation=r))
            cin += growth
        self.image_pool = conv(dims, ch, ch, kernel=1)  # no norm: one value per channel
        self.fuse = nn.Sequential(conv(dims, cin, ch, kernel=1, bias=False), make_norm(norm, dims, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        pooled = self.image_pool(x.mean(dim=tuple(range(2, x.dim())), keepdim=True))
        return F.relu(self.fuse(torch.cat(feats, dim=1)) + pooled)


class RDD(nn.Module):
    """Encoder: stem conv, then per level `blocks` residual blocks and a stride-2 conv
    doubling the channels; bottom: residual blocks and DDSPP; decoder: stride-2 transposed
    conv halving the channels, + encoder features of that level (LongResidual), residual
    blocks; a 1x1 conv gives the logits."""

    def __init__(self, in_channels: int, num_classes: int, dims: int = 3, width: int = 16, depth: int = 4,
                 blocks: int = 1, rates: Sequence[int] = (1, 2, 4, 8), growth: int | None = None,
                 norm: str = "instance") -> None:
        super().__init__()
        self.dims, self.depth, self.norm_kind = dims, depth, norm
        chans = [width * 2**lvl for lvl in range(depth)]
        self.stem = conv_norm_act(dims, in_channels, width, norm)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for lvl in range(depth - 1):
            self.enc.append(nn.Sequential(*[ResidualBlock(dims, chans[lvl], norm) for _ in range(blocks)]))
            self.down.append(nn.Sequential(conv(dims, chans[lvl], chans[lvl + 1], kernel=2, stride=2,
                                                padding=0, bias=False),
                                           make_norm(norm, dims, chans[lvl + 1]), nn.ReLU(inplace=True)))
        bottom = chans[-1]
        self.bottom = nn.Sequential(*[ResidualBlock(dims, bottom, norm) for _ in range(blocks)])
        self.ddspp = DDSPP(dims, bottom, rates, growth or max(bottom // 2, 1), norm)
        self.up = nn.ModuleList()
        self.long = nn.ModuleList()
        self.dec = nn.ModuleList()
        for lvl in reversed(range(depth - 1)):
            self.up.append(nn.Sequential(conv_transpose(dims, chans[lvl + 1], chans[lvl], bias=False),
                                         make_norm(norm, dims, chans[lvl]), nn.ReLU(inplace=True)))
            self.long.append(LongResidual())
            self.dec.append(nn.Sequential(*[ResidualBlock(dims, chans[lvl], norm) for _ in range(blocks)]))
        self.head = conv(dims, width, num_classes, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("rdd", x, self.dims, 2 ** (self.depth - 1), self.norm_kind, self.training)
        x = self.stem(x)
        skips = []
        for enc, down in zip(self.enc, self.down):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.ddspp(self.bottom(x))
        for up, long, dec in zip(self.up, self.long, self.dec):
            x = dec(long(up(x), skips.pop()))
        return self.head(x)
