"""The sampler: deterministic rotations from noise to data (DDIM in angle form, k-diffusion style).

Start at angle δ_0 (= π/2: pure noise). Step i rotates the latent by ω_i = δ_i − δ_{i+1}:

    v̂ = denoiser(z, per-frame angles, tokens)        (with classifier-free guidance)
    z ← cos ω_i · z − sin ω_i · v̂

If v̂ is the true velocity this is exact: rotating (z_δ, v) by ω gives z_{δ−ω} (see angles.py).

Known frames (continuation, inpainting) are clean: they get angle 0 in the per-frame angle vector,
and are written back after every step, so they leave the sampler bit-for-bit as they came in.
The latent is clamped to [-1, 1] at the end (the codec's latent range) before that last write-back.

The sampler is a plain function: no state, no schedule object. It consumes exactly the angle
sequence it is given (``get_schedule(name).angles(T)`` or any hand-made strictly decreasing
sequence) — it never re-derives steps.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .angles import predict_clean
from .guidance import Denoiser, guided_denoiser

__all__ = ["sample", "StepCallback"]

StepCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
"""``callback(step, z, v_hat, z_hat)``: after step ``step`` (0 … T−1); ``z`` is the new latent (at
angle δ_{step+1}), ``v_hat`` the guided velocity and ``z_hat = cos δ · z_in − sin δ · v̂`` the
clean-latent estimate made at this step. All [B, L, D]; do not modify them in place."""


def _check_angles(angles: torch.Tensor) -> torch.Tensor:
    angles = torch.as_tensor(angles, dtype=torch.float64)
    if angles.dim() != 1 or angles.numel() < 2:
        raise ValueError(f"angles must be a 1-D sequence of at least 2 angles, got shape {tuple(angles.shape)}")
    if not bool(torch.isfinite(angles).all()) or not bool((angles[1:] < angles[:-1]).all()):
        raise ValueError("angles must be finite and strictly decreasing (from noise to data)")
    if angles[-1] < 0 or angles[0] > math.pi / 2 + 1e-6:
        raise ValueError(f"angles must lie in [0, π/2], got {angles[0].item():.6f} … {angles[-1].item():.6f}")
    return angles


def _initial_noise(noise: torch.Tensor | Sequence[int], generator: torch.Generator | None) -> torch.Tensor:
    if isinstance(noise, torch.Tensor):
        return noise
    if generator is None:
        raise ValueError("noise was given as a shape: pass a generator to draw it from")
    return torch.randn(tuple(noise), generator=generator, device=generator.device)


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    noise: torch.Tensor | Sequence[int],
    angles: torch.Tensor,
    tokens: torch.Tensor | None = None,
    guidance: float = 1.0,
    known: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Run the sampler; returns the latent [B, L, D] in [-1, 1] (known frames exactly as given).

    Args:
        denoiser: ``(z [B, L, D], angles [B, L], tokens [B, T_st] | None) -> v [B, L, D]``.
        noise: the starting latent at angle ``angles[0]`` [B, L, D] (N(0, I) for generation), or a
            shape ``(B, L, D)`` to draw it (float32) from ``generator``.
        angles: the 1-D angle sequence δ_0 > … > δ_T (radians; a schedule's ``angles(T)``):
            T denoiser evaluations, ω_i = δ_i − δ_{i+1}.
        tokens: semantic tokens [B, T_st] (long) or None (unconditional).
        guidance: classifier-free guidance scale w (see guidance.py for how the unconditional half
            of the single batched call is marked with ``NULL_TOKEN``).
        known: clean latent [B, L, D] whose masked frames are kept (continuation / inpainting).
        known_mask: bool [B, L] or [L]: True where a frame is known.
        generator: the only source of randomness (used to draw ``noise`` given as a shape).
        callback: ``callback(step, z, v_hat, z_hat)`` after each step (see :data:`StepCallback`).
    """
    angles = _check_angles(angles)
    z = _initial_noise(noise, generator)
    batch, num_frames, _ = z.shape
    if tokens is not None and tokens.shape[0] != batch:
        raise ValueError(f"tokens have batch {tokens.shape[0]} but the latent has batch {batch}")
    if (known is None) != (known_mask is None):
        raise ValueError("pass known and known_mask together (or neither)")
    if known is not None:
        known_mask = known_mask.to(device=z.device, dtype=torch.bool).expand(batch, num_frames)
        if known.shape != z.shape:
            raise ValueError(f"known must have the latent's shape {tuple(z.shape)}, got {tuple(known.shape)}")
        known = known.to(device=z.device, dtype=z.dtype)
        keep = known_mask.unsqueeze(-1)
        z = torch.where(keep, known, z)

    velocity = guided_denoiser(denoiser, tokens, guidance)  # token-side work once per window
    for step in range(angles.numel() - 1):
        delta, omega = angles[step].item(), (angles[step] - angles[step + 1]).item()
        frame_angles = torch.full((batch, num_frames), delta, dtype=z.dtype, device=z.device)
        if known is not None:
            frame_angles = frame_angles.masked_fill(known_mask, 0.0)
        v_hat = velocity(z, frame_angles)
        z_in = z
        z = math.cos(omega) * z - math.sin(omega) * v_hat
        if known is not None:
            z = torch.where(keep, known, z)
        if callback is not None:
            callback(step, z, v_hat, predict_clean(z_in, v_hat, frame_angles))

    z = z.clamp(-1.0, 1.0)
    if known is not None:
        z = torch.where(keep, known, z)
    return z
