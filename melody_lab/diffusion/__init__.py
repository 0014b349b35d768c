"""Angle-parameterised v-diffusion: the maths, the schedules, the training target, the sampler.

    from melody_lab.diffusion import get_schedule, sample

    angles = get_schedule("linear").angles(10)             # float64 [11]: π/2 … 0
    z = sample(denoiser, (1, 625, 16), angles, tokens=tokens, guidance=2.5, generator=g)

Files, in reading order: ``angles.py`` (z_δ, v, ẑ, ε̂), ``schedules.py`` (uniform, linear, ratio,
logsnr), ``multichunk.py`` (the training target and loss), ``guidance.py`` (classifier-free
guidance), ``sampler.py`` (the sampler), ``editing.py`` (continuation, inpainting) and
``toys.py`` (an oracle and a Gaussian toy with exact answers). See docs/diffusion.md.

NULL_TOKEN = -1 — the classifier-free-guidance convention every denoiser implements: a row of
``tokens`` [B, T_st] that is entirely ``NULL_TOKEN`` is unconditional, i.e. the denoiser treats it
exactly like ``tokens=None`` (its learned null embedding). The sampler runs the conditional and the
unconditional pass as one call on a doubled batch whose second half has ``NULL_TOKEN`` rows, and
training drops a row's tokens with :func:`drop_tokens` (p = 0.1) using the same marker.
"""
from .angles import add_noise, predict_clean, predict_noise, velocity_target
from .editing import TokenProvider, continue_latent, frame_range_mask, inpaint
from .toys import GaussianLatents, OracleDenoiser, gaussian_w2, sampler_output_distribution
from .guidance import NULL_TOKEN, Denoiser, drop_tokens, guided_denoiser, guided_velocity, null_rows
from .multichunk import (
    MultiChunkTarget,
    chunk_bounds,
    chunk_index,
    draw_chunk_angles,
    frame_angles,
    multichunk_target,
    velocity_loss,
)
from .sampler import StepCallback, sample
from .schedules import (
    SCHEDULES,
    LinearSchedule,
    LogSNRSchedule,
    RatioSchedule,
    Schedule,
    UniformSchedule,
    get_schedule,
)

__all__ = [
    "NULL_TOKEN",
    "add_noise",
    "velocity_target",
    "predict_clean",
    "predict_noise",
    "SCHEDULES",
    "Schedule",
    "UniformSchedule",
    "LinearSchedule",
    "RatioSchedule",
    "LogSNRSchedule",
    "get_schedule",
    "chunk_bounds",
    "chunk_index",
    "draw_chunk_angles",
    "frame_angles",
    "MultiChunkTarget",
    "multichunk_target",
    "velocity_loss",
    "Denoiser",
    "null_rows",
    "drop_tokens",
    "guided_denoiser",
    "guided_velocity",
    "StepCallback",
    "sample",
    "TokenProvider",
    "frame_range_mask",
    "inpaint",
    "continue_latent",
    "OracleDenoiser",
    "GaussianLatents",
    "sampler_output_distribution",
    "gaussian_w2",
]
