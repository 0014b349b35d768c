"""Residual vector quantisation of MuLan embeddings into ``levels`` codes (paper: 12).

Level 1 quantises the embedding with a k-means codebook; level ``l`` quantises what the first
``l − 1`` levels left over (the residual). Codebooks are fitted once with scikit-learn's k-means,
level by level, on the residuals of the previous levels; nothing is learnt by gradient.

    rvq = ResidualVQ(levels=12, codebook_size=64, dim=128).fit(embeddings, seed=0)
    codes = rvq.quantize(emb)            # [B, 12] long in [0, 64)
    approx = rvq.dequantize(codes)       # [B, 128], error shrinks as levels are added
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..errors import UserError
from ..registry import Registry


@dataclass
class RVQConfig(Config):
    levels: int = 12
    codebook_size: int = 64
    dim: int = 128


class ResidualVQ(nn.Module):
    """Codebooks ``[levels, codebook_size, dim]`` held as a buffer (saved with safetensors)."""

    def __init__(self, levels: int = 12, codebook_size: int = 64, dim: int = 128):
        super().__init__()
        self.config = RVQConfig(levels, codebook_size, dim)
        self.register_buffer("codebooks", torch.zeros(levels, codebook_size, dim))

    @property
    def levels(self) -> int:
        return self.config.levels

    @torch.no_grad()
    def fit(self, embeddings: torch.Tensor, seed: int = 0, n_init: int = 3) -> "ResidualVQ":
        """Fit every level's k-means on ``embeddings [N, dim]`` (needs N > codebook_size)."""
        from sklearn.cluster import KMeans

        x = embeddings.detach().double().cpu().numpy()
        n, k = len(x), self.config.codebook_size
        if n <= k:
            raise UserError(f"RVQ needs more embeddings than codebook entries: {n} <= {k}; "
                            f"use a smaller codebook_size or more data")
        residual = x.copy()
        for level in range(self.levels):
            km = KMeans(n_clusters=k, n_init=n_init, random_state=seed + level).fit(residual)
            centres = km.cluster_centers_
            self.codebooks[level] = torch.from_numpy(centres).float()
            residual = residual - centres[self._nearest(residual, centres)]
        return self

    @staticmethod
    def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
        d = (x**2).sum(1, keepdims=True) - 2 * x @ centres.T + (centres**2).sum(1)[None]
        return d.argmin(1)

    @torch.no_grad()
    def quantize(self, emb: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """``[B, dim]`` → codes ``[B, levels]`` long (greedy nearest centre per residual)."""
        residual = emb.float()
        codes = []
        for level in range(levels or self.levels):
            book = self.codebooks[level]
            code = torch.cdist(residual[None], book[None])[0].argmin(-1)
            codes.append(code)
            residual = residual - book[code]
        return torch.stack(codes, dim=-1)

    @torch.no_grad()
    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, l]`` (any ``l <= levels``: the first ``l`` levels) → ``[B, dim]``."""
        if codes.min() < 0 or codes.max() >= self.config.codebook_size:
            raise UserError(f"RVQ codes must lie in [0, {self.config.codebook_size})")
        return sum(self.codebooks[level][codes[:, level]] for level in range(codes.shape[-1]))

    @classmethod
    def from_config(cls, config: RVQConfig) -> "ResidualVQ":
        return cls(config.levels, config.codebook_size, config.dim)


#: no presets: an RVQ's sizes follow the MuLan it quantises (``MuLanConfig.rvq_*``)
RVQS: Registry = Registry("rvq")
RVQS.register("rvq", config=RVQConfig)(ResidualVQ)
