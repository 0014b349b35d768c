"""The audio VAE-GAN of MeLoDy: HiFi-GAN-style encoder → diagonal Gaussian → HiFi-GAN decoder.

The encoder predicts a mean and log-variance per frame and latent dimension. The latent handed
to diffusion is the posterior mean, scaled and clipped as in the paper: ``z = clip(μ / 3, -1, 1)``;
with ``posterior_sample=True`` it is a posterior sample instead, ``clip((μ + σ·ε) / 3, -1, 1)``
(ε from torch's global generator, so seed it for repeatable latents).
The KL term (however small its weight) pulls ``E[μ² + σ²]`` towards 1 — the reconstruction
loss is blind to the latent's overall scale, so the KL alone sets it — hence ``μ/3`` lands
mostly inside [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Codec, CodecConfig
from .losses import gaussian_kl


@dataclass
class VAEGANConfig(CodecConfig):
    latent_scale: float = 3.0  # z = clip(mean / latent_scale, -1, 1)
    logvar_min: float = -30.0  # clamp of the predicted log-variance (numerical safety)
    posterior_sample: bool = False  # encode() returns a posterior sample instead of the mean


class VAEGAN(Codec):
    """VAE-GAN codec (the discriminators and losses live in the trainer, not here)."""

    def __init__(self, config: VAEGANConfig):
        super().__init__(config, encoder_out=2 * config.latent_dim)

    def posterior(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio ``[B, T]`` → (mean, log-variance), each ``[B, L, D]``, unscaled."""
        return self._split(self.features(audio))

    def _split(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = features.transpose(1, 2).chunk(2, dim=-1)
        return mean, logvar.clamp(min=self.config.logvar_min, max=10.0)

    def latent_from_features(self, features: torch.Tensor) -> torch.Tensor:
        mean, logvar = self._split(features)
        if self.config.posterior_sample:
            mean = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        return (mean / self.config.latent_scale).clamp(-1.0, 1.0)

    def decoder_input(self, z: torch.Tensor) -> torch.Tensor:
        return (z * self.config.latent_scale).transpose(1, 2)

    def forward_train(self, audio: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One training pass: sample the posterior, decode. ``[B, T]`` → (``[B, T']``, aux losses).

        ``T' = ceil(T / hop)·hop``; aux holds ``kl`` (mean per element) and the batch's posterior
        statistics (``mean_std``, ``sigma``) for monitoring.
        """
        mean, logvar = self.posterior(audio)
        std = (0.5 * logvar).exp()
        sample = mean + std * torch.randn_like(mean)
        recon = self.decoder(sample.transpose(1, 2))[:, 0]
        kl = gaussian_kl(mean, logvar)
        return recon, {"kl": kl, "mean_std": mean.detach().std(), "sigma": std.detach().mean()}
