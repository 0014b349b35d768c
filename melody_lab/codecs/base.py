"""The codec interface shared by the VAE-GAN and the VQ-VAE, and their common config.

A codec maps mono audio ``[B, T]`` (float32 in [-1, 1], at ``sample_rate``) to a latent
``z [B, L, D]`` in [-1, 1] with ``L = ceil(T / hop_length)`` frames, and back:

    z = codec.encode(audio)             # [B, L, D], every value in [-1, 1]
    y = codec.decode(z)                 # [B, L * hop_length]
    y = codec.decode(z, length=T)       # [B, T]  (the frame padding trimmed off)
    y = codec.reconstruct(audio)        # decode(encode(audio), length=T)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from .blocks import Decoder, Encoder, hop_of


@dataclass
class CodecConfig(Config):
    """Architecture of a codec (the parts both codecs share). Lists are per down/up-sampling stage."""

    sample_rate: int = 16000
    latent_dim: int = 16
    enc_channels: tuple[int, ...] = (16, 32, 64, 128)
    enc_strides: tuple[int, ...] = (2, 4, 4, 4)
    enc_kernels: tuple[int, ...] = (4, 8, 8, 8)
    dec_channels: tuple[int, ...] = (192, 96, 48, 24)
    dec_strides: tuple[int, ...] = (4, 4, 4, 2)
    dec_kernels: tuple[int, ...] = (9, 9, 9, 5)
    res_kernels: tuple[int, ...] = (3,)
    res_dilations: tuple[int, ...] = (1, 3, 9)
    activation: str = "snake"
    enc_layout: str = "widen"  # "stage": every encoder stage at its listed width (see blocks.Encoder)

    def validate(self) -> None:
        if hop_of(self.enc_strides) != hop_of(self.dec_strides):
            raise ValueError(f"encoder strides {self.enc_strides} and decoder strides "
                             f"{self.dec_strides} must have the same product (the hop length)")
        for name, a, b in (("enc", self.enc_strides, self.enc_kernels),
                           ("enc", self.enc_strides, self.enc_channels),
                           ("dec", self.dec_strides, self.dec_kernels),
                           ("dec", self.dec_strides, self.dec_channels)):
            if len(a) != len(b):
                raise ValueError(f"{name}: strides, kernels and channels need one entry per stage")


class Codec(nn.Module):
    """Base class: padding/trimming, the decoder, and the public encode/decode interface.

    Subclasses set ``self.encoder`` (audio → bottleneck features) and implement
    ``latent_from_features`` (features ``[B, C, L]`` → z ``[B, L, D]`` in [-1, 1]) and
    ``decoder_input`` (z → decoder input ``[B, D, L]``).
    """

    kind, name = "codec", "codec"  # ``name``: the registry stamps each registered codec's own

    def __init__(self, config: CodecConfig, encoder_out: int):
        super().__init__()
        config.validate()
        self.config = config
        self.sample_rate = config.sample_rate
        self.latent_dim = config.latent_dim
        self.hop_length = hop_of(config.enc_strides)
        c = config
        self.encoder = Encoder(c.enc_channels, c.enc_strides, c.enc_kernels, c.res_kernels,
                               c.res_dilations, c.activation, encoder_out, c.enc_layout)
        self.decoder = Decoder(c.latent_dim, c.dec_channels, c.dec_strides, c.dec_kernels,
                               c.res_kernels, c.res_dilations, c.activation)

    def num_frames(self, num_samples: int) -> int:
        return math.ceil(num_samples / self.hop_length)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` → encoder features ``[B, C, ceil(T / hop)]`` (right-padded with zeros)."""
        if audio.dim() != 2:
            raise ValueError(f"expected audio [B, T], got shape {tuple(audio.shape)}")
        pad = self.num_frames(audio.shape[-1]) * self.hop_length - audio.shape[-1]
        return self.encoder(F.pad(audio, (0, pad))[:, None])

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` → latent ``z [B, ceil(T / hop_length), latent_dim]`` in [-1, 1]."""
        return self.latent_from_features(self.features(audio))

    def decode(self, z: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Latent ``[B, L, D]`` → audio ``[B, L·hop_length]`` (or ``[B, length]`` when given)."""
        audio = self.decoder(self.decoder_input(z))[:, 0]
        return audio if length is None else audio[:, :length]

    def reconstruct(self, audio: torch.Tensor) -> torch.Tensor:
        """``decode(encode(audio))`` trimmed to the input length: ``[B, T]`` → ``[B, T]``."""
        return self.decode(self.encode(audio), length=audio.shape[-1])

    def latent_from_features(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decoder_input(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def num_parameters(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"encoder": count(self.encoder), "decoder": count(self.decoder),
                "total": count(self)}
