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

**Work done once per window.** The tokens (and so the doubled CFG token batch) are the same for every
sampler step of a window. :func:`guided_denoiser` builds the doubled token batch once and, when the
denoiser offers ``bind_tokens(tokens) -> velocity(z, angles)`` (DPD and U-Net do: it embeds the tokens
and caches the cross-attention keys/values on first use), binds it once; the sampler then calls the
returned function at every step. A plain ``(z, angles, tokens)`` callable works unchanged.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["NULL_TOKEN", "Denoiser", "null_rows", "drop_tokens", "guided_denoiser", "guided_velocity"]

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


def _bound(denoiser: Denoiser, tokens: torch.Tensor | None):
    bind = getattr(denoiser, "bind_tokens", None)
    if tokens is None or bind is None:
        return lambda z, angles: denoiser(z, angles, tokens)
    return bind(tokens)


def guided_denoiser(denoiser: Denoiser, tokens: torch.Tensor | None,
                    guidance: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``velocity(z [B, L, D], angles [B, L]) -> v̂ [B, L, D]`` for fixed ``tokens`` [B, T_st] | None
    and guidance scale w: the same values as :func:`guided_velocity`, with the token-side work
    (doubled token batch, embedding, cross-attention keys/values) done once for all calls.

    - ``tokens is None``: one unconditional call (w has nothing to mix).
    - ``w == 1``: one conditional call — exactly the conditional path, not ``v_u + 1·(v_c − v_u)``.
    - otherwise: ONE call on the doubled batch ``[z; z]`` with tokens ``[tokens; NULL_TOKEN rows]``,
      then ``v_u + w · (v_c − v_u)``.
    """
    if tokens is None or guidance == 1.0:
        return _bound(denoiser, tokens)
    net = _bound(denoiser, torch.cat([tokens, torch.full_like(tokens, NULL_TOKEN)]))

    def velocity(z: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0]
        v = net(torch.cat([z, z]), torch.cat([angles, angles]))
        v_cond, v_uncond = v[:batch], v[batch:]
        return v_uncond + guidance * (v_cond - v_uncond)

    return velocity


def guided_velocity(
    denoiser: Denoiser,
    z: torch.Tensor,
    angles: torch.Tensor,
    tokens: torch.Tensor | None,
    guidance: float,
) -> torch.Tensor:
    """v̂ [B, L, D] for latents z [B, L, D] at per-frame angles [B, L] under guidance scale w
    (one call of :func:`guided_denoiser`; see there for the three cases)."""
    return guided_denoiser(denoiser, tokens, guidance)(z, angles)
