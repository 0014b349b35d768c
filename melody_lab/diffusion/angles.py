"""Angle-parameterised diffusion: four one-line maps, all of them rotations.

MeLoDy (after Salimans & Ho's v-prediction) writes a noisy latent at angle δ ∈ [0, π/2] as a point
on the quarter circle spanned by the clean latent z and the noise ε:

    z_δ = cos δ · z + sin δ · ε          (δ = 0: clean,  δ = π/2: pure noise)
    v   = cos δ · ε − sin δ · z          (the velocity: d z_δ / d δ)

(z_δ, v) is (z, ε) rotated by δ, so the inverse is the rotation by −δ:

    z = cos δ · z_δ − sin δ · v
    ε = sin δ · z_δ + cos δ · v

Shapes: latents ``[B, L, D]``; ``delta`` is per frame ``[B, L]`` (broadcast over the D latent
dimensions), or a scalar / 0-d tensor (the same angle everywhere). Angles are radians. The result
has the latent's dtype (the angle is cast to it).
"""
from __future__ import annotations

import torch

__all__ = ["add_noise", "velocity_target", "predict_clean", "predict_noise"]


def _cos_sin(delta: torch.Tensor | float, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos δ and sin δ shaped to broadcast against ``like`` ([B, L, D])."""
    delta = torch.as_tensor(delta, dtype=like.dtype, device=like.device)
    if delta.dim() == like.dim() - 1:  # per-frame angles [B, L] -> [B, L, 1]
        delta = delta.unsqueeze(-1)
    elif delta.dim() not in (0, like.dim()):
        raise ValueError(
            f"angles of shape {tuple(delta.shape)} do not match latents of shape "
            f"{tuple(like.shape)}: pass per-frame angles [B, L] or a scalar"
        )
    return torch.cos(delta), torch.sin(delta)


def add_noise(z: torch.Tensor, noise: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """The noisy latent ``z_δ = cos δ · z + sin δ · ε``.  z, noise: [B, L, D]; delta: [B, L]."""
    cos, sin = _cos_sin(delta, z)
    return cos * z + sin * noise


def velocity_target(z: torch.Tensor, noise: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """The training target ``v = cos δ · ε − sin δ · z``.  z, noise: [B, L, D]; delta: [B, L]."""
    cos, sin = _cos_sin(delta, z)
    return cos * noise - sin * z


def predict_clean(z_delta: torch.Tensor, v: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """The clean-latent estimate ``ẑ = cos δ · z_δ − sin δ · v̂``.  [B, L, D]; delta: [B, L]."""
    cos, sin = _cos_sin(delta, z_delta)
    return cos * z_delta - sin * v


def predict_noise(z_delta: torch.Tensor, v: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """The noise estimate ``ε̂ = sin δ · z_δ + cos δ · v̂``.  [B, L, D]; delta: [B, L]."""
    cos, sin = _cos_sin(delta, z_delta)
    return sin * z_delta + cos * v
