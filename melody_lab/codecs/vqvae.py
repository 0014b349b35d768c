"""VQ-VAE baseline: the same encoder/decoder with a residual vector quantiser (EMA codebooks).

The encoder's output is bounded by ``tanh`` and quantised by ``num_quantizers`` codebooks in
sequence (each quantises the residual the previous ones left). The latent handed to diffusion is
the *quantised continuous embedding* (sum of the chosen code vectors), clipped to [-1, 1]; the
integer codes are available too, and ``decode_codes(codes) == decode(encode(audio))``.

Codebooks learn by exponential moving averages (van den Oord et al. 2017; SoundStream), start
from random encoder outputs, and codes unused for a while are re-seeded from the batch. Their
randomness uses the global torch RNG, which the training loop seeds per step (exact resume).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Codec, CodecConfig


@dataclass
class VQVAEConfig(CodecConfig):
    num_quantizers: int = 4
    codebook_size: int = 256
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.5  # EMA usage (vectors per step) under which a code is re-seeded


class EMACodebook(nn.Module):
    """One codebook ``[K, D]`` updated by EMA of the vectors assigned to each code."""

    def __init__(self, size: int, dim: int, decay: float, dead_threshold: float):
        super().__init__()
        self.decay, self.dead_threshold = decay, dead_threshold
        self.register_buffer("embedding", torch.zeros(size, dim))
        self.register_buffer("cluster_size", torch.ones(size))
        self.register_buffer("embedding_sum", torch.zeros(size, dim))
        self.register_buffer("initialised", torch.zeros(()))

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Vectors ``[N, D]`` → nearest code indices ``[N]`` (long)."""
        distance = (x.pow(2).sum(1, keepdim=True) - 2 * x @ self.embedding.T
                    + self.embedding.pow(2).sum(1)[None])
        return distance.argmin(dim=1)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """EMA update from vectors ``x [N, D]`` assigned to ``codes [N]`` (training only)."""
        size = self.embedding.shape[0]
        if not bool(self.initialised):
            pick = torch.randint(0, x.shape[0], (size,), device=x.device)
            self.embedding.copy_(x[pick])
            self.embedding_sum.copy_(x[pick])
            self.cluster_size.fill_(1.0)
            self.initialised.fill_(1.0)
            return
        onehot = F.one_hot(codes, size).type_as(x)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embedding_sum.mul_(self.decay).add_(onehot.T @ x, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (n + size * 1e-5) * n
        self.embedding.copy_(self.embedding_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        if bool(dead.any()):
            pick = torch.randint(0, x.shape[0], (int(dead.sum()),), device=x.device)
            self.embedding[dead] = x[pick]
            self.embedding_sum[dead] = x[pick]
            self.cluster_size[dead] = 1.0


class ResidualCodebooks(nn.Module):
    """``num_quantizers`` EMA codebooks applied to successive residuals."""

    def __init__(self, num_quantizers: int, size: int, dim: int, decay: float, dead_threshold: float):
        super().__init__()
        self.books = nn.ModuleList(EMACodebook(size, dim, decay, dead_threshold)
                                   for _ in range(num_quantizers))

    def forward(self, x: torch.Tensor, update: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [N, D]`` → (quantised ``[N, D]`` (no gradient path), codes ``[N, Q]``)."""
        residual, quantised, codes = x.detach(), torch.zeros_like(x), []
        for book in self.books:
            if update:
                book.update(residual, book.codes(residual))
            idx = book.codes(residual)
            chosen = book.embedding[idx]
            quantised = quantised + chosen
            residual = residual - chosen
            codes.append(idx)
        return quantised, torch.stack(codes, dim=1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[N, Q]`` → quantised vectors ``[N, D]``."""
        return sum(book.embedding[codes[:, q]] for q, book in enumerate(self.books))


class VQVAE(Codec):
    """VQ-VAE codec; the latent is the quantised embedding (already in [-1, 1] up to clipping)."""

    def __init__(self, config: VQVAEConfig):
        super().__init__(config, encoder_out=config.latent_dim)
        self.quantizer = ResidualCodebooks(config.num_quantizers, config.codebook_size,
                                           config.latent_dim, config.ema_decay,
                                           config.dead_code_threshold)

    def _bounded(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(features.transpose(1, 2))  # [B, L, D]

    def encode_with_codes(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio ``[B, T]`` → (latent ``[B, L, D]`` in [-1, 1], codes ``[B, L, Q]`` long)."""
        h = self._bounded(self.features(audio))
        q, codes = self.quantizer(h.reshape(-1, self.latent_dim))
        return (q.clamp(-1.0, 1.0).view_as(h),
                codes.view(h.shape[0], h.shape[1], -1))

    def latent_from_features(self, features: torch.Tensor) -> torch.Tensor:
        h = self._bounded(features)
        q, _ = self.quantizer(h.reshape(-1, self.latent_dim))
        return q.clamp(-1.0, 1.0).view_as(h)

    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, L, Q]`` → latent ``[B, L, D]`` (what ``encode`` returns for them)."""
        b, n, q = codes.shape
        return self.quantizer.lookup(codes.reshape(-1, q)).clamp(-1.0, 1.0).view(b, n, -1)

    def decode_codes(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Codes ``[B, L, Q]`` → audio ``[B, L·hop]`` (or ``[B, length]``)."""
        return self.decode(self.codes_to_latent(codes), length)

    def decoder_input(self, z: torch.Tensor) -> torch.Tensor:
        return z.transpose(1, 2)

    def forward_train(self, audio: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Quantise (updating the codebooks), decode through a straight-through estimator.

        Returns (audio ``[B, T']``, aux) with aux ``commit`` (‖h − sg(q)‖², mean per element)
        and ``perplexity`` of the first codebook (monitoring).
        """
        h = self._bounded(self.features(audio))
        flat = h.reshape(-1, self.latent_dim)
        q, codes = self.quantizer(flat, update=True)
        straight = flat + (q - flat).detach()
        recon = self.decoder(straight.view_as(h).transpose(1, 2))[:, 0]
        commit = (flat - q.detach()).pow(2).mean()
        usage = torch.bincount(codes[:, 0], minlength=self.config.codebook_size).float()
        p = usage / usage.sum()
        perplexity = torch.exp(-(p * torch.log(p + 1e-10)).sum())
        return recon, {"commit": commit, "perplexity": perplexity}
