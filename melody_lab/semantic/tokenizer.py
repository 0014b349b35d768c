"""Semantic tokenizer: audio ``[B, T]`` → tokens ``[B, ceil(T / hop)]`` at a fixed token rate.

Frame features (``features.py``; default log-mel + chroma + onset strength, or a local SSL model)
are standardised per dimension with training-set statistics, each block is weighted so that it
contributes ``weight²`` of the total variance whatever its width, and every frame is mapped to the
nearest of ``vocab_size`` k-means centres (scikit-learn ``MiniBatchKMeans``).

    tok = SemanticTokenizer(TOKENIZER_PRESETS["tiny"]).fit(train_audio, seed=0)
    tokens = tok.tokenize(audio)     # [B, 125] long in [0, 256) for 5 s at 16 kHz
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import Config
from ..errors import UserError
from ..registry import Registry
from .features import SSLFeatures, mel_chroma_onset, num_frames


@dataclass
class TokenizerConfig(Config):
    sample_rate: int = 16000
    token_rate: int = 25  # tokens per second (paper: 25 Hz) → hop = sample_rate / token_rate
    vocab_size: int = 256
    features: str = "mel_chroma_onset"  # or "ssl" (needs ssl_path)
    n_fft: int = 2048
    n_mels: int = 48
    chroma_fmin: float = 55.0
    chroma_fmax: float = 4000.0
    mel_weight: float = 1.0
    chroma_weight: float = 1.0
    onset_weight: float = 0.5
    ssl_path: str | None = None
    ssl_layer: int = 6  # hidden-state index: 0 = transformer input, i = layer i, -1 = last
    ssl_sample_rate: int = 16000  # replaced by the folder's preprocessor_config.json, if any
    ssl_pooling: str = "mean"  # model frames → token frames: "mean" (per token span) or "centre"
    ssl_dim: int = 0  # filled in from the SSL model's config when it is loaded
    max_fit_frames: int = 200_000  # frames sub-sampled for k-means

    @property
    def hop(self) -> int:
        if self.sample_rate % self.token_rate:
            raise UserError(f"sample_rate {self.sample_rate} is not a multiple of token_rate "
                            f"{self.token_rate}")
        return self.sample_rate // self.token_rate


TOKENIZER_PRESETS = {
    "micro": TokenizerConfig(vocab_size=16, n_mels=24),
    "tiny": TokenizerConfig(vocab_size=256),
    # 24 kHz (hop 960 = 25 Hz); n_fft 3072 keeps tiny's 128 ms window and 7.8 Hz bins (our choice)
    "paper": TokenizerConfig(sample_rate=24000, vocab_size=1024, n_mels=64, n_fft=3072),
    "paper_micro": TokenizerConfig(sample_rate=24000, vocab_size=16, n_mels=24, n_fft=3072),
}


class SemanticTokenizer(nn.Module):
    """Buffers: ``feat_mean``, ``feat_std``, ``block_scale`` ``[F]`` and ``centres [V, F]``."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.config = cfg
        self._ssl = None
        if cfg.features == "mel_chroma_onset":
            blocks = [(cfg.n_mels, cfg.mel_weight), (12, cfg.chroma_weight), (2, cfg.onset_weight)]
        elif cfg.features == "ssl":
            if not cfg.ssl_path:
                raise UserError("features='ssl' needs ssl_path: a local folder with a "
                                "transformers audio model (HuBERT, MERT, wav2vec2 …)")
            self._ssl = SSLFeatures(cfg.ssl_path, cfg.ssl_layer, cfg.ssl_sample_rate,
                                    cfg.ssl_pooling)
            self.config = cfg = cfg.replace(ssl_dim=self._ssl.dim,
                                            ssl_sample_rate=self._ssl.model_sample_rate)
            blocks = [(cfg.ssl_dim, 1.0)]
        else:
            raise UserError(f"unknown tokenizer features {cfg.features!r}; "
                            f"choose mel_chroma_onset or ssl")
        scale = torch.cat([torch.full((d,), w / d**0.5) for d, w in blocks])
        dim = len(scale)
        self.register_buffer("block_scale", scale)
        self.register_buffer("feat_mean", torch.zeros(dim))
        self.register_buffer("feat_std", torch.ones(dim))
        self.register_buffer("centres", torch.zeros(cfg.vocab_size, dim))

    @property
    def hop(self) -> int:
        return self.config.hop

    def num_tokens(self, num_samples: int) -> int:
        return num_frames(num_samples, self.hop)

    @torch.no_grad()
    def raw_features(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` → unstandardised features ``[B, ceil(T / hop), F]``."""
        c = self.config
        if self._ssl is not None:
            return self._ssl(audio, c.sample_rate, self.hop)
        return mel_chroma_onset(audio, c.sample_rate, self.hop, c.n_fft, c.n_mels,
                                c.chroma_fmin, c.chroma_fmax)

    def _standardise(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.feat_mean) / self.feat_std * self.block_scale

    @torch.no_grad()
    def fit_features(self, frames: torch.Tensor, seed: int = 0) -> "SemanticTokenizer":
        """Fit standardisation and k-means on raw frame features ``[N, F]``."""
        from sklearn.cluster import MiniBatchKMeans

        v = self.config.vocab_size
        if len(frames) <= v:
            raise UserError(f"the tokenizer needs more frames than vocabulary entries "
                            f"({len(frames)} <= {v}): use more audio or a smaller vocab_size")
        g = torch.Generator().manual_seed(seed)
        if len(frames) > self.config.max_fit_frames:
            frames = frames[torch.randperm(len(frames), generator=g)[: self.config.max_fit_frames]]
        self.feat_mean.copy_(frames.mean(0))
        self.feat_std.copy_(frames.std(0).clamp(min=1e-4))
        x = self._standardise(frames).double().numpy()
        km = MiniBatchKMeans(n_clusters=v, random_state=seed, n_init=3,
                             batch_size=max(2048, 4 * v), max_iter=100).fit(x)
        self.centres.copy_(torch.from_numpy(km.cluster_centers_).float())
        return self

    @torch.no_grad()
    def fit(self, audio: torch.Tensor, seed: int = 0, batch_size: int = 64) -> "SemanticTokenizer":
        """Fit on clips ``[N, T]`` (features extracted in batches)."""
        feats = [self.raw_features(audio[i: i + batch_size]).flatten(0, 1)
                 for i in range(0, len(audio), batch_size)]
        return self.fit_features(torch.cat(feats), seed=seed)

    @torch.no_grad()
    def tokenize(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` (or ``[T]``) at ``sample_rate`` → tokens ``[B, ceil(T / hop)]`` long."""
        if audio.dim() == 1:
            audio = audio[None]
        x = self._standardise(self.raw_features(audio))
        dist = torch.cdist(x, self.centres[None].expand(len(x), -1, -1))
        return dist.argmin(-1)


TOKENIZERS: Registry = Registry("tokenizer")
TOKENIZERS.register("tokenizer", config=TokenizerConfig, presets=TOKENIZER_PRESETS)(SemanticTokenizer)
