"""A random-weight ``micro`` MeLoDy that builds on a CPU in seconds, for tests and notebooks.

It exercises every code path of :class:`~melody_lab.pipeline.MeLoDy` (LM planning, guided
sampling, continuation, inpainting, bundles) but its output is noise-like: it is not trained.
"""
from __future__ import annotations

import math

import torch

from .pipeline import MeLoDy, MeLoDyConfig


def synthetic_music(num_clips: int, seconds: float, sample_rate: int = 16000,
                    seed: int = 0) -> torch.Tensor:
    """``[N, T]`` plucked-tone melodies (random pitches and onsets): stand-in audio for fitting."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * sample_rate)) / sample_rate
    clips = torch.zeros(num_clips, len(t))
    for i in range(num_clips):
        onsets = torch.arange(0, seconds, float(torch.empty(1).uniform_(0.15, 0.4, generator=g)))
        for onset in onsets.tolist():
            freq = 220 * 2 ** (int(torch.randint(0, 24, (1,), generator=g)) / 12)
            env = torch.where(t >= onset, torch.exp(-(t - onset) * 6), torch.zeros(()))
            clips[i] += env * torch.sin(2 * math.pi * freq * t) * 0.3
    return clips.clamp(-1, 1)


def build_debug_pipeline(seed: int = 0, preset: str = "micro") -> MeLoDy:
    """A MeLoDy with random weights and k-means fitted on :func:`synthetic_music`.

    ``preset="micro"`` builds in seconds (tests); ``preset="tiny"`` has exactly the shipped
    model's sizes, so it times the pipeline honestly before (or without) training.
    """
    from .codecs import build_codec
    from .denoisers import build_denoiser
    from .semantic import ResidualVQ, SemanticTokenizer, build_lm, build_mulan
    from .semantic.tokenizer import TOKENIZER_PRESETS

    torch.manual_seed(seed)
    codec = build_codec("vaegan", preset)
    denoiser = build_denoiser("dpd", preset, latent_dim=codec.latent_dim)
    mulan = build_mulan(preset)
    lm = build_lm(preset)
    audio = synthetic_music(16 if preset == "micro" else 64, 2.0, codec.sample_rate, seed)
    tokenizer = SemanticTokenizer(TOKENIZER_PRESETS[preset]).fit(audio, seed=seed)
    with torch.no_grad():
        emb = torch.nn.functional.normalize(torch.randn(max(64, 4 * lm.config.mulan_codebook_size),
                                                        mulan.config.embed_dim), dim=-1)
    rvq = ResidualVQ(lm.config.mulan_levels, lm.config.mulan_codebook_size,
                     mulan.config.embed_dim).fit(emb, seed=seed)
    config = (MeLoDyConfig(window_seconds=1.0, num_chunks=5, steps=4) if preset == "micro"
              else MeLoDyConfig())
    return MeLoDy(codec, denoiser, mulan, rvq, tokenizer, lm, config)
