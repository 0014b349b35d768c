"""Continuation and inpainting at the latent level: the sampler's known-frames mechanism, two masks.

Both rest on multi-chunk training (multichunk.py): known frames sit in the per-frame angle vector at
angle 0, the frames to create start from noise at π/2, and the sampler writes the known frames back
after every step.

- :func:`inpaint` regenerates the frames [start, end) of a latent and keeps every other frame.
- :func:`continue_latent` is the paper's Algorithm 2: slide a window of ``window`` frames by one
  chunk at a time — the last M − 1 chunks of what exists so far are the clean context, one fresh
  noise chunk is appended and sampled — until ``num_frames`` new frames exist (the final chunk is
  generated whole and trimmed, so any target length works).

The semantic tokens of each window come from a pluggable ``token_provider(start, end)``: it gets the
window's frame range in the growing output latent and returns tokens [B, T_st] (or None for
unconditional). The pipeline plugs in its semantic LM's sliding-window continuation here.
"""
from __future__ import annotations

from typing import Callable

import torch

from .guidance import Denoiser
from .multichunk import chunk_bounds
from .sampler import StepCallback, sample

__all__ = ["TokenProvider", "frame_range_mask", "inpaint", "continue_latent"]

TokenProvider = Callable[[int, int], "torch.Tensor | None"]
"""``token_provider(start, end) -> tokens [B, T_st] | None`` for the window of output frames [start, end)."""


def frame_range_mask(
    num_frames: int, start: int, end: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """bool [L]: True for frames in [start, end). Requires 0 <= start < end <= num_frames."""
    if not 0 <= start < end <= num_frames:
        raise ValueError(f"need 0 <= start < end <= {num_frames}, got start={start}, end={end}")
    mask = torch.zeros(num_frames, dtype=torch.bool, device=device)
    mask[start:end] = True
    return mask


def _draw_noise(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        raise ValueError("pass a generator: it draws the noise for the frames to generate")
    noise = torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device)
    return noise.to(like.device)


def inpaint(
    denoiser: Denoiser,
    latent: torch.Tensor,
    start: int,
    end: int,
    angles: torch.Tensor,
    tokens: torch.Tensor | None = None,
    guidance: float = 1.0,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Regenerate frames [start, end) of ``latent`` [B, L, D]; all other frames come back bit-for-bit.

    The noise [B, L, D] is drawn from ``generator``; ``angles`` is a schedule's angle sequence.
    """
    gap = frame_range_mask(latent.shape[1], start, end, device=latent.device)
    noise = _draw_noise(tuple(latent.shape), latent, generator)
    return sample(
        denoiser, noise, angles, tokens=tokens, guidance=guidance,
        known=latent, known_mask=~gap, generator=generator, callback=callback,
    )


def continue_latent(
    denoiser: Denoiser,
    context: torch.Tensor,
    num_frames: int,
    angles: torch.Tensor,
    window: int,
    num_chunks: int,
    token_provider: TokenProvider | None = None,
    guidance: float = 1.0,
    generator: torch.Generator | None = None,
    context_chunks: int | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Extend ``context`` [B, L0, D] by ``num_frames`` frames; returns [B, L0 + num_frames, D].

    Args:
        window: frames the denoiser sees at once (its training length L, e.g. 625 for 5 s `tiny`).
        num_chunks: M of multi-chunk training; each window adds its last chunk,
            ``window − ⌊(M−1)·window/M⌋`` frames, conditioned on up to ``⌊(M−1)·window/M⌋``
            preceding frames (fewer while the output is still shorter than that).
        token_provider: tokens for each window (see :data:`TokenProvider`); None = unconditional.
        generator: draws each window's fresh noise chunk, in window order.
        context_chunks: how many chunks of each window are known context (default M − 1, the
            paper's slide-by-one-chunk). Fewer context chunks add more frames per window, so
            fewer windows are sampled (faster) with less context for each.
        callback: given to every window's :func:`sample` (its ``step`` restarts at 0 per window).

    The first L0 frames of the result are ``context`` bit-for-bit.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    context_chunks = num_chunks - 1 if context_chunks is None else context_chunks
    if not 1 <= context_chunks < num_chunks:
        raise ValueError(f"context_chunks must be in [1, {num_chunks - 1}], got {context_chunks}")
    context_frames = chunk_bounds(window, num_chunks)[context_chunks]  # ⌊c·window/M⌋
    new_frames = window - context_frames
    out = context
    target = context.shape[1] + num_frames
    while out.shape[1] < target:
        ctx = out[:, max(0, out.shape[1] - context_frames):]
        batch, kept, dim = ctx.shape
        noise = _draw_noise((batch, new_frames, dim), context, generator)
        start = out.shape[1] - kept
        tokens = token_provider(start, start + kept + new_frames) if token_provider is not None else None
        known_mask = torch.arange(kept + new_frames, device=context.device) < kept
        known = torch.cat([ctx, torch.zeros_like(noise)], dim=1)
        window_latent = sample(
            denoiser, torch.cat([ctx, noise], dim=1), angles, tokens=tokens, guidance=guidance,
            known=known, known_mask=known_mask, generator=generator, callback=callback,
        )
        out = torch.cat([out, window_latent[:, kept:]], dim=1)
    return out[:, :target]
