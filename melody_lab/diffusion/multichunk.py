"""Multi-chunk velocity prediction: the training target that makes continuation and inpainting free.

The paper splits the L frames of a training latent into M chunks (M = 4 for 10 s) at the frames
``⌊mL/M⌋`` (m = 0 … M) and gives every chunk of every example its own angle ``δ = (π/2)·t``,
``t ~ U[0, 1]``. The denoiser sees the per-frame angle vector [B, L]; because it has learnt to
denoise a chunk next to chunks at *any* other angle — including nearly clean ones — a clean context
with angle 0 beside a noisy chunk (continuation) or around a noisy gap (inpainting) is nothing new.

A training step (the denoiser stage does this inside its ``train_step``):

    target = multichunk_target(z, num_chunks=4, generator=generator)
    tokens = drop_tokens(tokens, p=0.1, generator=generator)        # CFG dropout (guidance.py)
    v_hat = denoiser(target.noisy, target.angles, tokens)
    loss = velocity_loss(v_hat, target.velocity)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .angles import add_noise, velocity_target

__all__ = [
    "chunk_bounds",
    "chunk_index",
    "draw_chunk_angles",
    "frame_angles",
    "MultiChunkTarget",
    "multichunk_target",
    "velocity_loss",
]


def chunk_bounds(num_frames: int, num_chunks: int) -> list[int]:
    """The M + 1 chunk boundaries ``⌊mL/M⌋``, m = 0 … M; chunk m is frames [b_m, b_{m+1}).

    >>> chunk_bounds(10, 4)
    [0, 2, 5, 7, 10]
    """
    if num_chunks < 1 or num_chunks > num_frames:
        raise ValueError(f"need 1 <= num_chunks <= num_frames, got {num_chunks} chunks for {num_frames} frames")
    return [m * num_frames // num_chunks for m in range(num_chunks + 1)]


def chunk_index(num_frames: int, num_chunks: int) -> torch.Tensor:
    """long [L]: the chunk each frame belongs to."""
    bounds = chunk_bounds(num_frames, num_chunks)
    sizes = torch.tensor([b - a for a, b in zip(bounds[:-1], bounds[1:])])
    return torch.repeat_interleave(torch.arange(num_chunks), sizes)


def draw_chunk_angles(batch: int, num_chunks: int, generator: torch.Generator) -> torch.Tensor:
    """float64 [B, M]: one angle per chunk per example, δ = (π/2)·t with t ~ U[0, 1), all independent.

    Drawn on the generator's device in float64 (so the stream does not depend on the model's dtype).
    """
    t = torch.rand(batch, num_chunks, generator=generator, dtype=torch.float64, device=generator.device)
    return (math.pi / 2) * t


def frame_angles(chunk_angles: torch.Tensor, num_frames: int) -> torch.Tensor:
    """[B, L]: spread per-chunk angles [B, M] over the frames of each chunk (boundaries ⌊mL/M⌋)."""
    index = chunk_index(num_frames, chunk_angles.shape[1]).to(chunk_angles.device)
    return chunk_angles[:, index]


@dataclass
class MultiChunkTarget:
    """One multi-chunk training example batch (all tensors on the latent's device and dtype)."""

    chunk_angles: torch.Tensor  # [B, M]      the drawn angle of each chunk
    angles: torch.Tensor  # [B, L]            per-frame angles: the denoiser's angle input
    noise: torch.Tensor  # [B, L, D]          ε ~ N(0, I)
    noisy: torch.Tensor  # [B, L, D]          z_δ = cos δ · z + sin δ · ε: the denoiser's input
    velocity: torch.Tensor  # [B, L, D]       v = cos δ · ε − sin δ · z: the regression target


def multichunk_target(z: torch.Tensor, num_chunks: int, generator: torch.Generator) -> MultiChunkTarget:
    """Build the noisy input and velocity target for clean latents z [B, L, D] with M chunks.

    Randomness comes only from ``generator``, in this order: the chunk angles [B, M] (float64
    uniforms), then the noise [B, L, D] (normals in z's dtype).
    """
    batch, num_frames, _ = z.shape
    chunk_angles = draw_chunk_angles(batch, num_chunks, generator).to(device=z.device, dtype=z.dtype)
    angles = frame_angles(chunk_angles, num_frames)
    noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=generator.device).to(z.device)
    return MultiChunkTarget(
        chunk_angles=chunk_angles,
        angles=angles,
        noise=noise,
        noisy=add_noise(z, noise, angles),
        velocity=velocity_target(z, noise, angles),
    )


def velocity_loss(v_hat: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over [B, L, D]; with ``mask`` [B, L] (bool or float frame weights) the
    mean runs over the selected frames only: ``Σ m·(v̂ − v)² / (D · Σ m)``. An all-zero mask gives 0."""
    squared = (v_hat - v).pow(2)
    if mask is None:
        return squared.mean()
    if mask.shape != v.shape[:-1]:
        raise ValueError(f"mask must be [B, L] = {tuple(v.shape[:-1])}, got {tuple(mask.shape)}")
    weight = mask.to(squared.dtype).unsqueeze(-1)
    denominator = weight.sum() * v.shape[-1]
    return (squared * weight).sum() / denominator.clamp_min(torch.finfo(squared.dtype).tiny)
