"""MuLan: a joint text–audio embedding trained contrastively (InfoNCE, learnable temperature).

* text tower: frozen all-MiniLM-L6-v2 (384-d, see ``text_tower.py``) → trainable MLP projection;
* audio tower: frame features ``[B, C, frames]`` at 50 frames/s, standardised per channel with
  statistics of the training set (buffers) → 1-D conv stem → residual conv blocks, each halving the
  frame rate → mean ‖ max pooling over time (‖ a tempogram, below) → MLP projection. The features
  are ``audio_features``: ``"mel"`` (``n_mels`` log-mel bands: timbre, register) or
  ``"mel_chroma_onset"`` (the same bands + 12 chroma bins + 2 onset-strength values per frame,
  ``features.py``: pitch class for the key, attacks for the rhythm). With ``tempogram`` the head
  also sees the autocorrelation of the onset envelope at the lags of 30–300 bpm (how periodic
  the attacks are, and at which period) — the tempo as one vector rather than something the conv
  stack must discover.

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
from .features import mel_chroma_onset
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
    audio_features: str = "mel"  # or "mel_chroma_onset" (+ 12 chroma, 2 onset channels)
    feature_n_fft: int = 2048  # the STFT of mel_chroma_onset (128 ms at 16 kHz, for the chroma)
    chroma_fmin: float = 55.0
    chroma_fmax: float = 4000.0
    tempogram: bool = False  # onset autocorrelation at 30–300 bpm lags into the head
    channels: int = 128
    num_blocks: int = 4  # each block: residual conv pair, then a stride-2 downsampling
    embed_dim: int = 128
    text_hidden: int = 256
    init_temperature: float = 0.07
    rvq_levels: int = 12
    rvq_codebook_size: int = 64

    @property
    def in_channels(self) -> int:
        """Feature channels per frame: ``n_mels`` (+ 14 for ``mel_chroma_onset``)."""
        if self.audio_features not in AUDIO_FEATURES:
            raise UserError(f"unknown MuLan audio_features {self.audio_features!r}; choose one of "
                            f"{', '.join(AUDIO_FEATURES)}")
        return self.n_mels + (14 if self.audio_features == "mel_chroma_onset" else 0)

    @property
    def tempo_lags(self) -> range:
        """Autocorrelation lags (frames) of the tempogram: 30–300 bpm at ``sr / hop`` frames/s."""
        rate = self.sample_rate / self.hop_length
        return range(max(1, round(60 * rate / 300)), round(60 * rate / 30) + 1)


AUDIO_FEATURES = ("mel", "mel_chroma_onset")

MULAN_PRESETS = {
    "micro": MuLanConfig(n_mels=32, channels=32, num_blocks=2, embed_dim=32, text_hidden=64,
                         rvq_levels=4, rvq_codebook_size=8),
    # pitch class and rhythm beside the mel bands, and the tempogram (issue 13: the key and the
    # tempo were lost in the plan with log-mel alone)
    "tiny": MuLanConfig(audio_features="mel_chroma_onset", tempogram=True),
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


def tempogram(onset: torch.Tensor, lags: range) -> torch.Tensor:
    """Onset envelope ``[B, frames]`` → normalised autocorrelation at ``lags`` ``[B, len(lags)]``.

    The envelope's mean is removed and the autocorrelation (computed with an FFT, zero-padded so
    it is not circular) is divided by its value at lag 0, so it lies in [-1, 1]: a peak at lag
    ``L`` means attacks recur every ``L`` frames. Lags past the crop's length are 0.
    """
    x = onset - onset.mean(-1, keepdim=True)
    n = x.shape[-1]
    spec = torch.fft.rfft(x, n=2 * n)
    ac = torch.fft.irfft(spec.real**2 + spec.imag**2, n=2 * n)[..., :n]
    ac = ac / ac[..., :1].clamp(min=1e-6)
    ac = F.pad(ac, (0, max(0, lags.stop - n)))
    return ac[..., lags.start: lags.stop]


class AudioTower(nn.Module):
    """Standardised features ``[B, in_channels, frames]`` → unnormalised embedding ``[B, embed_dim]``.

    ``mel_mean``/``mel_std`` ``[in_channels, 1]`` are the per-channel training statistics (named
    for the log-mel of the first presets; they cover every feature channel)."""

    def __init__(self, cfg: MuLanConfig):
        super().__init__()
        self.config = cfg
        self.register_buffer("mel_mean", torch.zeros(cfg.in_channels, 1))
        self.register_buffer("mel_std", torch.ones(cfg.in_channels, 1))
        self.stem = nn.Conv1d(cfg.in_channels, cfg.channels, 3, padding=1)
        layers: list[nn.Module] = []
        for _ in range(cfg.num_blocks):
            layers += [ConvBlock(cfg.channels),
                       nn.Conv1d(cfg.channels, cfg.channels, 4, stride=2, padding=1)]
        self.blocks = nn.Sequential(*layers)
        self.norm = nn.GroupNorm(1, cfg.channels)
        pooled = 2 * cfg.channels
        if cfg.tempogram:
            self.tempo = nn.Sequential(nn.Linear(len(cfg.tempo_lags), cfg.channels), nn.GELU())
            pooled += cfg.channels
        self.head = nn.Sequential(nn.Linear(pooled, cfg.channels), nn.GELU(),
                                  nn.Linear(cfg.channels, cfg.embed_dim))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = self.stem((feats - self.mel_mean) / self.mel_std)
        x = F.gelu(self.norm(self.blocks(x)))
        pooled = [x.mean(-1), x.amax(-1)]
        if c.tempogram:  # the onset-strength mean channel (right after mel and chroma)
            pooled.append(self.tempo(tempogram(feats[:, c.n_mels + 12], c.tempo_lags)))
        return self.head(torch.cat(pooled, dim=-1))


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
    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` at ``sample_rate`` → features ``[B, in_channels, frames]`` (no params):
        log-mel (``T // hop + 1`` frames) or mel + chroma + onset (``ceil(T / hop)`` frames)."""
        c = self.config
        if c.in_channels == c.n_mels:
            return log_mel(audio, c.sample_rate, c.n_fft, c.hop_length, c.n_mels)
        return mel_chroma_onset(audio, c.sample_rate, c.hop_length, c.feature_n_fft, c.n_mels,
                                c.chroma_fmin, c.chroma_fmax).transpose(1, 2)

    def embed_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Features ``[B, in_channels, frames]`` (see :meth:`features`) → unit ``[B, E]``."""
        return F.normalize(self.audio_tower(feats), dim=-1)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` (or ``[T]``) float in [-1, 1] at ``sample_rate`` → unit ``[B, E]``."""
        if audio.dim() == 1:
            audio = audio[None]
        if audio.shape[-1] < self.config.n_fft:
            raise UserError(f"audio is too short for MuLan: {audio.shape[-1]} samples "
                            f"(need at least {self.config.n_fft})")
        return self.embed_features(self.features(audio))

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
                         caption_ids: torch.Tensor | None = None,
                         hard_negatives: torch.Tensor | None = None,
                         hard_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE over a batch of unit embeddings ``[B, E]``.

        ``caption_ids [B]`` marks identical captions: they are all positives of each other (many
        clips share a caption built from the same attribute words), so they are never pushed apart.
        ``hard_negatives [B, K, E]``: unit embeddings of captions that differ from clip ``i``'s in
        one attribute (``data.captions.counterfactual_captions``), extra negatives of clip ``i``
        only, in the audio → text direction; ``hard_mask [B, K]`` (bool) marks the real ones.
        """
        scale = self.log_inv_temperature.clamp(max=math.log(100.0)).exp()
        logits = scale * text_emb @ audio_emb.T
        if caption_ids is None:
            caption_ids = torch.arange(len(logits), device=logits.device)
        target = (caption_ids[:, None] == caption_ids[None, :]).float()
        target = target / target.sum(-1, keepdim=True)
        audio_to_text = logits.T
        if hard_negatives is not None:
            extra = scale * torch.einsum("be,bke->bk", audio_emb, hard_negatives)
            if hard_mask is not None:
                extra = extra.masked_fill(~hard_mask, -1e4)  # finite: 0 · log p stays 0
            audio_to_text = torch.cat([audio_to_text, extra], dim=1)
            target_a = F.pad(target.T, (0, extra.shape[1]))
        else:
            target_a = target.T
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(audio_to_text, target_a))


MULANS: Registry = Registry("mulan")
MULANS.register("mulan", config=MuLanConfig, presets=MULAN_PRESETS)(MuLan)


def build_mulan(preset: str = "tiny", **overrides) -> MuLan:
    """An untrained MuLan of a preset (``micro``, ``tiny``, ``paper``, ``paper_micro``) with config
    overrides."""
    return MULANS.build("mulan", preset, **overrides)
