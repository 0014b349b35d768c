"""HiFi-GAN-style building blocks shared by both codecs: Snake, residual blocks, encoder, decoder.

Shapes: audio ``[B, 1, T]`` inside the networks (the codec classes take ``[B, T]``), features
``[B, C, frames]``. The encoder down-samples by ``prod(strides)`` with strided convolutions; the
decoder up-samples with nearest-neighbour repetition followed by a convolution (no transposed
convolutions, so there is no checkerboard tone at the Nyquist frequency of any stage).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def wn_conv1d(cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Conv1d:
    """A weight-normalised Conv1d without built-in padding (callers pad, see :class:`PaddedConv`)."""
    return weight_norm(nn.Conv1d(cin, cout, kernel, stride=stride, dilation=dilation))


class PaddedConv(nn.Module):
    """Conv1d that keeps ``frames_out = frames_in / stride`` exactly (zero padding split left/right).

    Works for any kernel ≥ stride, odd or even, so the paper's (stride 3, kernel 7) fits too.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        total = dilation * (kernel - 1) + 1 - stride
        if total < 0:
            raise ValueError(f"kernel {kernel} is shorter than stride {stride}")
        self.pad = (total // 2, total - total // 2)
        self.conv = wn_conv1d(cin, cout, kernel, stride, dilation)
        if total % 2 == 0:  # symmetric: let the convolution pad (saves a copy of x)
            self.conv.padding, self.pad = (total // 2,), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x if self.pad is None else F.pad(x, self.pad))


class Snake(nn.Module):
    """Snake activation ``x + sin²(αx)/α`` with a learned α per channel (BigVGAN / DAC).

    Periodic by design, which suits pitched music better than a leaky ReLU.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.log_alpha.exp()
        return x + torch.sin(alpha * x).pow(2) / (alpha + 1e-9)


def activation(kind: str, channels: int) -> nn.Module:
    if kind == "snake":
        return Snake(channels)
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.1)
    raise ValueError(f"unknown activation {kind!r}; choose snake or leaky_relu")


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1: for each dilation d, ``x += conv_1(act(conv_d(act(x))))``."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...], act: str):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(activation(act, channels), PaddedConv(channels, channels, kernel, dilation=d),
                          activation(act, channels), PaddedConv(channels, channels, kernel))
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x)
        return x


class MultiReceptiveField(nn.Module):
    """HiFi-GAN's MRF: the mean of several ResBlocks with different kernel sizes."""

    def __init__(self, channels: int, kernels: tuple[int, ...], dilations: tuple[int, ...], act: str):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(channels, k, dilations, act) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(block(x) for block in self.blocks) / len(self.blocks)


class Encoder(nn.Module):
    """Waveform ``[B, 1, T]`` → features ``[B, out_channels, T / prod(strides)]``.

    Two layouts of the same parts (an MRF per stage, a strided conv with kernel ``kernels[i]`` and
    stride ``strides[i]`` per stage, conv(7) in, conv(3) out):

    * ``"widen"`` (micro/tiny): stage ``i`` runs an MRF at width ``channels[i]`` and then the
      strided conv to ``channels[i+1]`` (twice the last width after the final stage), so the
      strided convs output ``2·channels[0] … 2·channels[-1]``;
    * ``"stage"`` (paper): the mirror of :class:`Decoder` — stage ``i`` is the strided conv to
      ``channels[i]`` and then an MRF at ``channels[i]``, so every stage's width is the listed one.
    """

    def __init__(self, channels, strides, kernels, res_kernels, res_dilations, act: str,
                 out_channels: int, layout: str = "widen"):
        super().__init__()
        if layout not in ("widen", "stage"):
            raise ValueError(f"unknown encoder layout {layout!r}; choose widen or stage")
        layers: list[nn.Module] = [PaddedConv(1, channels[0], 7)]
        if layout == "widen":
            widths = list(channels) + [2 * channels[-1]]
            for i, (stride, kernel) in enumerate(zip(strides, kernels)):
                layers += [MultiReceptiveField(widths[i], res_kernels, res_dilations, act),
                           activation(act, widths[i]),
                           PaddedConv(widths[i], widths[i + 1], kernel, stride)]
        else:
            widths = [channels[0], *channels]
            for i, (stride, kernel) in enumerate(zip(strides, kernels)):
                layers += [activation(act, widths[i]),
                           PaddedConv(widths[i], widths[i + 1], kernel, stride),
                           MultiReceptiveField(widths[i + 1], res_kernels, res_dilations, act)]
        layers += [activation(act, widths[-1]), PaddedConv(widths[-1], out_channels, 3)]
        self.net = nn.Sequential(*layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(audio)


class Upsample(nn.Module):
    """Nearest-neighbour ×stride then a 'same' conv: ``[B, cin, n]`` → ``[B, cout, n·stride]``."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int):
        super().__init__()
        self.stride = stride
        self.conv = PaddedConv(cin, cout, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.repeat_interleave(x, self.stride, dim=-1))


class Decoder(nn.Module):
    """Latent features ``[B, in_channels, L]`` → waveform ``[B, 1, L·prod(strides)]`` in (-1, 1).

    ``channels[i]`` is the width after up-sampling stage ``i``; each stage is up-sample + conv
    (kernel ``kernels[i]``) and an MRF. A ``tanh`` bounds the output.
    """

    def __init__(self, in_channels: int, channels, strides, kernels, res_kernels, res_dilations,
                 act: str):
        super().__init__()
        layers: list[nn.Module] = [PaddedConv(in_channels, channels[0], 7)]
        previous = channels[0]
        for width, stride, kernel in zip(channels, strides, kernels):
            layers += [activation(act, previous), Upsample(previous, width, stride, kernel),
                       MultiReceptiveField(width, res_kernels, res_dilations, act)]
            previous = width
        layers += [activation(act, previous), PaddedConv(previous, 1, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def hop_of(strides) -> int:
    return int(math.prod(strides))
