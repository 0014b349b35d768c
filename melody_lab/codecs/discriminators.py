"""Discriminators: HiFi-GAN multi-period (MPD) and UnivNet multi-resolution spectrogram (MRSD).

Each sub-discriminator returns ``(score, features)``: a score map (any shape, one value per
patch) and the list of intermediate feature maps used by the feature-matching loss. Input audio
is ``[B, T]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..config import Config
from ..audio import stft_magnitude


@dataclass
class DiscriminatorConfig(Config):
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    period_channels: tuple[int, ...] = (16, 64, 128, 256)
    resolutions: tuple[int, ...] = (1024, 512, 256)  # n_fft; hop n_fft/4
    spectrogram_channels: int = 16


class PeriodDiscriminator(nn.Module):
    """Folds ``[B, T]`` into ``[B, 1, T/p, p]`` and applies (k×1) convolutions along time."""

    def __init__(self, period: int, channels: tuple[int, ...]):
        super().__init__()
        self.period = period
        widths = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)))
            for a, b in zip(widths[:-1], widths[1:]))
        self.convs.append(weight_norm(nn.Conv2d(widths[-1], widths[-1], (5, 1), 1, padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, audio: torch.Tensor):
        b, t = audio.shape
        pad = (-t) % self.period
        x = F.pad(audio, (0, pad), mode="reflect" if pad < t else "constant")
        x = x.view(b, 1, -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            features.append(x)
        return self.post(x), features


class SpectrogramDiscriminator(nn.Module):
    """UnivNet-style: 2-D convs over one linear-magnitude spectrogram ``[B, 1, frames, bins]``."""

    def __init__(self, n_fft: int, channels: int):
        super().__init__()
        self.n_fft = n_fft
        c = channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor):
        x = stft_magnitude(audio, self.n_fft, self.n_fft // 4).transpose(1, 2)[:, None]
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            features.append(x)
        return self.post(x), features


class CodecDiscriminator(nn.Module):
    """All sub-discriminators together: ``audio [B, T]`` → list of ``(score, features)``."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.subs = nn.ModuleList(
            [PeriodDiscriminator(p, config.period_channels) for p in config.periods]
            + [SpectrogramDiscriminator(n, config.spectrogram_channels) for n in config.resolutions])

    def forward(self, audio: torch.Tensor):
        return [sub(audio) for sub in self.subs]
