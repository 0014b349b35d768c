"""Classifier-free guidance (CFG): the null-token convention, training dropout, guided velocity.

One model learns both v(z; tokens) and v(z; ∅): during training a row's semantic tokens are dropped
(p = 0.1 in the paper); at sampling the two predictions are mixed,

    v̂ = v_uncond + w · (v_cond − v_uncond)          (w = 2.5 for the paper's samples)

**The null-token convention.** The denoiser signature stays ``forward(z, angles, tokens)``. To run
the conditional and unconditional passes in *one* forward call, the sampler concatenates the batch
with itself and marks the unconditional half by filling its token rows with ``NULL_TOKEN`` (= −1, never
a valid token id). A denoiser must treat every row whose tokens are all ``NULL_TOKEN`` exactly like
``tokens=None`` (its learned null embedding); :func:`null_rows` finds those rows. Training uses the
same marker (:func:`drop_tokens`), so a batch can mix conditional and unconditional rows.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["NULL_TOKEN", "Denoiser", "null_rows", "drop_tokens", "guided_velocity"]

NULL_TOKEN = -1
"""Token id marking an unconditional row: a row of ``tokens`` that is all ``NULL_TOKEN`` means "no tokens"."""

Denoiser = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""Any callable ``(z [B, L, D], angles [B, L], tokens [B, T_st] long | None) -> v [B, L, D]``."""


def null_rows(tokens: torch.Tensor) -> torch.Tensor:
    """bool [B]: True where a row of ``tokens`` [B, T_st] is entirely ``NULL_TOKEN`` (unconditional)."""
    return (tokens == NULL_TOKEN).all(dim=-1)


def drop_tokens(tokens: torch.Tensor | None, p: float, generator: torch.Generator) -> torch.Tensor | None:
    """CFG training dropout: each row of ``tokens`` [B, T_st] becomes ``NULL_TOKEN`` with probability p.

    Returns a new tensor (the input is not modified); ``None`` stays ``None``. The coin flips are
    drawn from ``generator`` (one uniform per row), so a training step stays reproducible.
    """
    if tokens is None:
        return None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    coin = torch.rand(tokens.shape[0], generator=generator, device=generator.device)
    drop = (coin < p).to(tokens.device).unsqueeze(-1)
    return torch.where(drop, torch.full_like(tokens, NULL_TOKEN), tokens)


def guided_velocity(
    denoiser: Denoiser,
    z: torch.Tensor,
    angles: torch.Tensor,
    tokens: torch.Tensor | None,
    guidance: float,
) -> torch.Tensor:
    """v̂ [B, L, D] for latents z [B, L, D] at per-frame angles [B, L] under guidance scale w.

    - ``tokens is None``: one unconditional call (w has nothing to mix).
    - ``w == 1``: one conditional call — exactly the conditional path, not ``v_u + 1·(v_c − v_u)``.
    - otherwise: ONE call on the doubled batch ``[z; z]`` with tokens ``[tokens; NULL_TOKEN rows]``,
      then ``v_u + w · (v_c − v_u)``.
    """
    if tokens is None:
        return denoiser(z, angles, None)
    if guidance == 1.0:
        return denoiser(z, angles, tokens)
    batch = z.shape[0]
    v = denoiser(
        torch.cat([z, z]),
        torch.cat([angles, angles]),
        torch.cat([tokens, torch.full_like(tokens, NULL_TOKEN)]),
    )
    v_cond, v_uncond = v[:batch], v[batch:]
    return v_uncond + guidance * (v_cond - v_uncond)
