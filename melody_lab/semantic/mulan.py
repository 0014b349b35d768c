"""MuLan: a joint text–audio embedding trained contrastively (InfoNCE, learnable temperature).

* text tower: frozen all-MiniLM-L6-v2 (384-d, see ``text_tower.py``) → trainable MLP projection;
* audio tower: log-mel ``[B, n_mels, frames]`` (standardised per mel bin with statistics of the
  training set, stored as buffers) → 1-D conv stem → residual conv blocks, each halving the frame
  rate → mean ‖ max pooling over time → MLP projection.

Both outputs are L2-normalised ``[B, embed_dim]`` vectors in one space; the cosine between them is
the paper's MuLan cycle consistency (MCC). GroupNorm (not BatchNorm) keeps every embedding
independent of what else is in the batch, so embeddings are deterministic per input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import log_mel
from ..config import Config
from ..errors import UserError
from ..registry import Registry
from .text_tower import TEXT_TOWER_DIM, encode_captions


@dataclass
class MuLanConfig(Config):
    """Sizes of both towers and of the RVQ fitted on the joint space (``rvq.py``)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 320  # 50 mel frames per second
    n_mels: int = 64
    channels: int = 128
    num_blocks: int = 4  # each block: residual conv pair, then a stride-2 downsampling
    embed_dim: int = 128
    text_hidden: int = 256
    init_temperature: float = 0.07
    rvq_levels: int = 12
    rvq_codebook_size: int = 64


MULAN_PRESETS = {
    "micro": MuLanConfig(n_mels=32, channels=32, num_blocks=2, embed_dim=32, text_hidden=64,
                         rvq_levels=4, rvq_codebook_size=8),
    "tiny": MuLanConfig(),
    # Paper: AST audio tower (~86M) and BERT-base text tower. Here the text tower stays MiniLM
    # (the only text encoder with offline weights); the audio tower is scaled to ~50M parameters.
    # At the paper's 24 kHz (so the 24 kHz corpus trains end to end); n_fft and hop scaled by 1.5
    # from tiny's, keeping its 64 ms window and 50 mel frames per second (our choice).
    "paper": MuLanConfig(sample_rate=24000, n_fft=1536, hop_length=480, n_mels=128, channels=768,
                         num_blocks=6, embed_dim=128, text_hidden=1024, rvq_levels=12,
                         rvq_codebook_size=1024),
    "paper_micro": MuLanConfig(sample_rate=24000, n_fft=1536, hop_length=480, n_mels=32,
                               channels=32, num_blocks=2, embed_dim=32, text_hidden=64,
                               rvq_levels=12, rvq_codebook_size=8),
}


class ConvBlock(nn.Module):
    """``x + conv(gelu(norm(conv(gelu(norm(x))))))`` on ``[B, C, frames]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(1, channels), nn.GroupNorm(1, channels)
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        return x + self.conv2(F.gelu(self.norm2(h)))


class AudioTower(nn.Module):
    """Standardised log-mel ``[B, n_mels, frames]`` → unnormalised embedding ``[B, embed_dim]``."""

    def __init__(self, cfg: MuLanConfig):
        super().__init__()
        self.register_buffer("mel_mean", torch.zeros(cfg.n_mels, 1))
        self.register_buffer("mel_std", torch.ones(cfg.n_mels, 1))
        self.stem = nn.Conv1d(cfg.n_mels, cfg.channels, 3, padding=1)
        layers: list[nn.Module] = []
        for _ in range(cfg.num_blocks):
            layers += [ConvBlock(cfg.channels),
                       nn.Conv1d(cfg.channels, cfg.channels, 4, stride=2, padding=1)]
        self.blocks = nn.Sequential(*layers)
        self.norm = nn.GroupNorm(1, cfg.channels)
        self.head = nn.Sequential(nn.Linear(2 * cfg.channels, cfg.channels), nn.GELU(),
                                  nn.Linear(cfg.channels, cfg.embed_dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.stem((mel - self.mel_mean) / self.mel_std)
        x = F.gelu(self.norm(self.blocks(x)))
        return self.head(torch.cat([x.mean(-1), x.amax(-1)], dim=-1))


class MuLan(nn.Module):
    """Joint embedding: ``embed_text(list[str])`` and ``embed_audio([B, T])`` → unit ``[B, E]``."""

    def __init__(self, cfg: MuLanConfig):
        super().__init__()
        self.config = cfg
        self.audio_tower = AudioTower(cfg)
        self.text_proj = nn.Sequential(nn.Linear(TEXT_TOWER_DIM, cfg.text_hidden), nn.GELU(),
                                       nn.Linear(cfg.text_hidden, cfg.embed_dim))
        self.log_inv_temperature = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))

    # -- audio ---------------------------------------------------------------------------------
    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` at ``sample_rate`` → log-mel ``[B, n_mels, T // hop + 1]`` (no params)."""
        c = self.config
        return log_mel(audio, c.sample_rate, c.n_fft, c.hop_length, c.n_mels)

    def embed_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_tower(mel), dim=-1)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` (or ``[T]``) float in [-1, 1] at ``sample_rate`` → unit ``[B, E]``."""
        if audio.dim() == 1:
            audio = audio[None]
        if audio.shape[-1] < self.config.n_fft:
            raise UserError(f"audio is too short for MuLan: {audio.shape[-1]} samples "
                            f"(need at least {self.config.n_fft})")
        return self.embed_mel(self.mel(audio))

    # -- text ----------------------------------------------------------------------------------
    def embed_sentence_features(self, features: torch.Tensor) -> torch.Tensor:
        """MiniLM features ``[B, 384]`` (cacheable, see ``text_tower``) → unit ``[B, E]``."""
        return F.normalize(self.text_proj(features), dim=-1)

    def embed_text(self, captions: list[str]) -> torch.Tensor:
        """Captions → unit ``[B, E]`` (runs the frozen MiniLM tower, then the projection)."""
        if isinstance(captions, str):
            captions = [captions]
        device = self.log_inv_temperature.device
        return self.embed_sentence_features(encode_captions(list(captions)).to(device))

    # -- training ------------------------------------------------------------------------------
    def contrastive_loss(self, audio_emb: torch.Tensor, text_emb: torch.Tensor,
                         caption_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE over a batch of unit embeddings ``[B, E]``.

        ``caption_ids [B]`` marks identical captions: they are all positives of each other (many
        clips share a caption built from the same attribute words), so they are never pushed apart.
        """
        scale = self.log_inv_temperature.clamp(max=math.log(100.0)).exp()
        logits = scale * text_emb @ audio_emb.T
        if caption_ids is None:
            caption_ids = torch.arange(len(logits), device=logits.device)
        target = (caption_ids[:, None] == caption_ids[None, :]).float()
        target = target / target.sum(-1, keepdim=True)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


MULANS: Registry = Registry("mulan")
MULANS.register("mulan", config=MuLanConfig, presets=MULAN_PRESETS)(MuLan)


def build_mulan(preset: str = "tiny", **overrides) -> MuLan:
    """An untrained MuLan of a preset (``micro``, ``tiny``, ``paper``, ``paper_micro``) with config
    overrides."""
    return MULANS.build("mulan", preset, **overrides)
