"""HiFi-GAN-style building blocks shared by both codecs: Snake, residual blocks, encoder, decoder.

Shapes: audio ``[B, 1, T]`` inside the networks (the codec classes take ``[B, T]``), features
``[B, C, frames]``. The encoder down-samples by ``prod(strides)`` with strided convolutions; the
decoder up-samples with nearest-neighbour repetition followed by a convolution (no transposed
convolutions, so there is no checkerboard tone at the Nyquist frequency of any stage).

Inference (autograd off, e.g. under ``torch.no_grad()``) takes a faster route through the same
function; training (autograd on) runs the plain modules, unchanged. Without autograd:

* features travel as channels-last rows ``[B, C, 1, frames]`` (see :func:`as_rows`): oneDNN's
  2-D convolution on that layout was 1.5–6× faster than ``conv1d`` on ``[B, C, frames]`` for the
  codec's shapes (no reorder to and from blocked formats, no padding of 20 or 40 channels to 32 or
  48); a block called with ``[B, C, frames]`` converts on the way in and back on the way out;
* each :class:`PaddedConv` folds its weight norm ``g · v / ‖v‖`` into a plain weight once and
  caches it (recomputed when a parameter changes: an optimiser step or ``load_state_dict`` bumps
  the parameters' version counters);
* :class:`Snake` runs in place on one buffer, a cache-sized block of time steps at a time
  (bit-identical to the training expression);
* :class:`Upsample` runs as a polyphase convolution at the input rate: repeating each frame
  ``stride`` times and then convolving equals ``stride`` short convolutions of the un-repeated
  input whose kernels are sums of the original taps (``⌈(k + stride − 1) / stride⌉`` taps instead
  of ``k`` per output sample), and in channels-last rows its ``stride·cout`` outputs per input
  frame already lie in the order of the up-sampled frames, so no copy interleaves them;
* residual sums are accumulated in place.

The inference route equals the training route up to float rounding (≲1e-6 relative).
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


def _inference() -> bool:
    """True when autograd is off: the blocks may then take their inference route (module docstring)."""
    return not torch.is_grad_enabled()


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, frames]`` → channels-last rows ``[B, C, 1, frames]`` (memory order B, frames, C)."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


def from_rows(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`as_rows`: ``[B, C, 1, frames]`` → contiguous ``[B, C, frames]``."""
    return x.squeeze(2).contiguous()


def _in_rows(forward, x: torch.Tensor) -> torch.Tensor:
    """Run a 4-D inference ``forward`` on a ``[B, C, frames]`` input and return ``[B, C', frames']``."""
    return from_rows(forward(as_rows(x)))


class PaddedConv(nn.Module):
    """Conv1d that keeps ``frames_out = frames_in / stride`` exactly (zero padding split left/right).

    Works for any kernel ≥ stride, odd or even, so the paper's (stride 3, kernel 7) fits too.
    Without autograd it convolves with :meth:`folded_weight` (weight norm folded once, cached).
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

    def folded_weight(self) -> torch.Tensor:
        """The weight-normalised kernel ``[cout, cin, kernel]`` as a plain tensor, computed once per
        parameter version (an in-place update of g or v, e.g. by an optimiser, invalidates it)."""
        weight = self.conv.parametrizations.weight
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device)
                    for p in (weight.original0, weight.original1))
        if getattr(self, "_folded", (None,))[0] != key:
            with torch.no_grad():
                folded = self.conv.weight.detach()
            self._folded = (key, folded, as_rows(folded))
        return self._folded[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _inference():
            return self.conv(x if self.pad is None else F.pad(x, self.pad))
        if x.dim() == 3:
            return _in_rows(self.forward, x)
        self.folded_weight()
        conv, rows_weight = self.conv, self._folded[2]             # rows_weight [cout, cin, 1, k]
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return F.conv2d(x, rows_weight, conv.bias, (1, conv.stride[0]), (0, conv.padding[0]),
                        (1, conv.dilation[0]))


class Snake(nn.Module):
    """Snake activation ``x + sin²(αx)/α`` with a learned α per channel (BigVGAN / DAC).

    Periodic by design, which suits pitched music better than a leaky ReLU.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))

    block_elements = 1 << 18  # inference: elements per in-place block (1 MiB of fp32, cache-sized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.log_alpha.exp()
        if not _inference():
            return x + torch.sin(alpha * x).pow(2) / (alpha + 1e-9)
        if x.dim() == 4:  # channels-last rows [B, C, 1, frames]
            alpha = alpha.unsqueeze(-1)
        # the same ops in the same order, in place on one output buffer, one block of time steps at
        # a time so the five passes run in cache: bit-identical to the line above
        denominator = alpha + 1e-9
        out = torch.empty_like(x)
        step = max(1024, self.block_elements // max(1, x[..., 0].numel()))
        for start in range(0, x.shape[-1], step):
            part, buffer = x[..., start:start + step], out[..., start:start + step]
            torch.mul(alpha, part, out=buffer).sin_()
            buffer.mul_(buffer).div_(denominator).add_(part)
        return out


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
        if _inference() and x.dim() == 3:
            return _in_rows(self.forward, x)
        for layer in self.layers:
            x = layer(x).add_(x) if _inference() else x + layer(x)
        return x


class MultiReceptiveField(nn.Module):
    """HiFi-GAN's MRF: the mean of several ResBlocks with different kernel sizes."""

    def __init__(self, channels: int, kernels: tuple[int, ...], dilations: tuple[int, ...], act: str):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(channels, k, dilations, act) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _inference() and x.dim() == 3:
            return _in_rows(self.forward, x)
        total = self.blocks[0](x)
        for block in self.blocks[1:]:
            total = total.add_(block(x)) if _inference() else total + block(x)
        return total / len(self.blocks) if len(self.blocks) > 1 else total


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
        return _in_rows(self.net, audio) if _inference() else self.net(audio)


class Upsample(nn.Module):
    """Nearest-neighbour ×stride then a 'same' conv: ``[B, cin, n]`` → ``[B, cout, n·stride]``."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int):
        super().__init__()
        self.stride = stride
        self.conv = PaddedConv(cin, cout, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _inference():
            return self.conv(torch.repeat_interleave(x, self.stride, dim=-1))
        if x.dim() == 3:
            return _in_rows(self.forward, x)
        weight, bias, (left, right) = self.polyphase()
        out = F.conv2d(F.pad(x, (left, right)), weight, bias)      # [B, stride·cout, 1, n], channels last
        batch, _, _, frames = out.shape
        # memory (B, n, stride, cout) is already that of [B, cout, 1, n·stride] in channels last
        return out.permute(0, 2, 3, 1).reshape(batch, 1, frames * self.stride, -1).permute(0, 3, 1, 2)

    def polyphase(self) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]]:
        """The same up-sample + conv as ``stride`` convolutions at the input rate (cached per folded
        weight): returns (weight ``[stride·cout, cin, 1, taps]``, channels last; bias; (left, right)
        input padding).

        Output sample ``n = stride·q + r`` of the conv (kernel k, left padding p) reads repeated
        samples ``n + j − p``, i.e. input frame ``q + ⌊(r + j − p) / stride⌋``: tap j of phase r lands
        on offset ``⌊(r + j − p) / stride⌋``, and taps landing on the same offset are summed.
        Output channel ``r·cout + c`` is phase r of channel c.
        """
        folded = self.conv.folded_weight()
        cached = getattr(self, "_polyphase", None)
        if cached is not None and cached[0] is folded:
            return cached[1]
        cout, cin, kernel = folded.shape
        left_pad = (kernel - 1) // 2                       # PaddedConv's split for stride 1
        lowest, highest = -left_pad // self.stride, (self.stride - 1 + kernel - 1 - left_pad) // self.stride
        weight = folded.new_zeros(self.stride, cout, cin, highest - lowest + 1)
        for r in range(self.stride):
            for j in range(kernel):
                weight[r, :, :, (r + j - left_pad) // self.stride - lowest] += folded[:, :, j]
        bias = self.conv.conv.bias
        result = (as_rows(weight.flatten(0, 1)), None if bias is None else bias.detach().repeat(self.stride),
                  (-lowest, highest))
        self._polyphase = (folded, result)
        return result


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
        return _in_rows(self.net, z) if _inference() else self.net(z)


def hop_of(strides) -> int:
    return int(math.prod(strides))
