"""Audio embedders for FAD and friends: one interface, a registry, and the untrained ``features`` embedder.

Every embedder has a ``name`` (it goes into every report), the ``sample_rate`` it works at, and
``embed(audio, sample_rate) -> np.ndarray [N, E]`` (float64) that accepts ``[N, T]`` arrays/tensors
or a list of 1-D clips of any lengths, resampling to its own rate.

Like every component, each embedder is registered with a config class and a preset table
(``{"default": Config()}``: one setting each), and its constructor takes that config::

    build_embedder("features")                        # EMBEDDERS.build("features", "default")
    build_embedder("vggish", checkpoint=path)         # the default preset with an override
    EMBEDDERS.config("evalclap-tiny", "default")      # EvalClapConfig(folder=None, batch_size=16)
    FeatureEmbedder(FeatureEmbedderConfig(batch_size=8))

An embedder is built, never saved: its weights are the shipped ``evalclap-tiny`` folder, the
basic-pitch wheel, or a checkpoint you supply (named in its config), so ``save_pretrained`` /
``from_pretrained`` refuse. The optional pretrained adapters (``vggish``, ``laion_clap``) live in
``adapters.py`` and import nothing optional until they are built.
"""
from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.fft
import torch

from ..audio import mel_filterbank, resample, stft_magnitude
from ..config import Config
from ..errors import UserError
from ..registry import Registry

EMBEDDERS: Registry = Registry("embedder")


def as_clip_list(audio: np.ndarray | torch.Tensor | Sequence) -> list[np.ndarray]:
    """``[N, T]`` / ``[T]`` array or tensor, or a list of 1-D clips → list of float32 ``[T_i]`` arrays."""
    if torch.is_tensor(audio):
        audio = audio.detach().cpu().float().numpy()
    if isinstance(audio, np.ndarray):
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2:
            raise ValueError(f"audio must be [N, T] or a list of 1-D clips; got shape {audio.shape}")
        return [np.asarray(clip, dtype=np.float32) for clip in audio]
    clips = [np.asarray(c.detach().cpu() if torch.is_tensor(c) else c, dtype=np.float32) for c in audio]
    if any(c.ndim != 1 for c in clips):
        raise ValueError("a list of clips must hold 1-D arrays (mono audio)")
    return clips


class Embedder(ABC):
    """Maps audio clips to one embedding vector each. Subclasses set ``name``, ``sample_rate`` and
    keep their config as ``self.config``."""

    name: str
    sample_rate: int
    config: Config

    @classmethod
    def from_config(cls, config: Config) -> "Embedder":
        return cls(config)  # type: ignore[call-arg]

    def save_pretrained(self, *args, **kwargs):
        raise TypeError(f"the {self.name} embedder is not saved by melody_lab; build it from its "
                        f"config: EMBEDDERS.build({type(self).name!r}, preset, **overrides)")

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        raise TypeError(f"the {cls.name} embedder is not loaded from an export folder; build it "
                        f"from its config: EMBEDDERS.build({cls.name!r}, preset, **overrides)")

    def embed(self, audio, sample_rate: int) -> np.ndarray:
        """Clips at ``sample_rate`` Hz (``[N, T]`` or list of ``[T_i]``) → float64 ``[N, E]``."""
        clips = [resample(c, sample_rate, self.sample_rate) for c in as_clip_list(audio)]
        if not clips:
            raise ValueError("no audio clips to embed")
        emb = np.asarray(self._embed_clips(clips), dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != len(clips):
            raise RuntimeError(f"{self.name} returned shape {emb.shape} for {len(clips)} clips")
        return emb

    @abstractmethod
    def _embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        """Float32 clips at ``self.sample_rate`` → ``[N, E]``."""


def build_embedder(name: str, preset: str = "default", /, **overrides) -> Embedder:
    """``build_embedder("features")``, ``build_embedder("vggish", checkpoint=path)``, …:
    ``EMBEDDERS.build(name, preset, **overrides)`` (config fields as overrides)."""
    return EMBEDDERS.build(name, preset, **overrides)


def _path_str(value: str | Path | None) -> str | None:
    """A path field as a plain string (configs hold only JSON values)."""
    return None if value is None else str(value)


def resolve_checkpoint(checkpoint: str | Path | None, env_var: str, instructions: str) -> Path:
    """The checkpoint from the argument, else from ``$env_var``; a UserError with ``instructions``
    (what to download, from where, where to put it) when neither names an existing file."""
    source = "the checkpoint argument"
    if checkpoint is None and os.environ.get(env_var):
        checkpoint, source = os.environ[env_var], f"${env_var}"
    if checkpoint is None:
        raise UserError(f"no checkpoint given (argument or ${env_var}). {instructions}")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint {path} (from {source}) does not exist. {instructions}")
    return path


def _chroma_matrix(sample_rate: int, n_fft: int, f_min: float = 55.0, f_max: float = 5000.0) -> torch.Tensor:
    """``[12, n_fft//2 + 1]`` soft map of STFT bins to pitch classes (C = 0), float64.

    Each bin in [f_min, f_max] votes for pitch classes with a Gaussian of 0.5 semitone width in
    circular semitone distance.
    """
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    valid = (freqs >= f_min) & (freqs <= f_max)
    midi = 69.0 + 12.0 * np.log2(np.where(valid, freqs, 440.0) / 440.0)
    dist = (midi[None] - np.arange(12)[:, None]) % 12.0
    dist = np.minimum(dist, 12.0 - dist)
    return torch.from_numpy(np.exp(-0.5 * (dist / 0.5) ** 2) * valid[None])


@dataclass
class FeatureEmbedderConfig(Config):
    """``features`` embedder: the rate it analyses at (Hz) and clips per STFT batch (speed only)."""

    sample_rate: int = 16000
    batch_size: int = 32


@EMBEDDERS.register("features", config=FeatureEmbedderConfig, presets={"default": FeatureEmbedderConfig()})
class FeatureEmbedder(Embedder):
    """Untrained, deterministic hand-made features: nothing to train, so nothing to game.

    Per STFT frame (16 kHz, n_fft 1024, hop 256, Hann, float64): 20 MFCCs (DCT-II of a 64-band
    log-mel power spectrum), 12 chroma (max-normalised), 6 octave-band spectral contrasts
    (log mean of top / bottom 20 % of bins, bands 0-200-400-800-1600-3200-8000 Hz), spectral
    centroid and 85 % roll-off (fractions of Nyquist), spectral flatness, log frame energy; plus
    spectral flux between consecutive frames. Power is in units of a full-scale sine's peak and
    floored at 1e-10 (−100 dB) before logs. The embedding is the mean and std over frames of
    each: E = 2 · (20 + 12 + 6 + 4 + 1) = 86. Clips must be ≥ n_fft samples.
    """

    name = "features"
    n_mfcc, n_mels, n_fft, hop_length = 20, 64, 1024, 256
    band_edges_hz = (0.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 8000.0)
    contrast_quantile = 0.2
    eps = 1e-10

    def __init__(self, config: FeatureEmbedderConfig | None = None):
        self.config = config = config if config is not None else FeatureEmbedderConfig()
        self.sample_rate = sample_rate = config.sample_rate
        self.batch_size = config.batch_size
        self.mel = mel_filterbank(sample_rate, self.n_fft, self.n_mels).double()
        self.chroma = _chroma_matrix(sample_rate, self.n_fft)
        freqs = torch.linspace(0, sample_rate / 2, self.n_fft // 2 + 1, dtype=torch.float64)
        self.freq_fraction = freqs / (sample_rate / 2)
        edges = [min(e, sample_rate / 2) for e in self.band_edges_hz]
        self.bands = [(freqs >= lo) & (freqs <= hi) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]

    @property
    def dim(self) -> int:
        return 2 * (self.n_mfcc + 12 + len(self.bands) + 4 + 1)

    def _embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        short = [len(c) for c in clips if len(c) < self.n_fft]
        if short:
            raise ValueError(f"the features embedder needs clips of ≥ {self.n_fft} samples; got {min(short)}")
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, clip in enumerate(clips):
            by_length[len(clip)].append(index)
        out = np.zeros((len(clips), self.dim))
        for indices in by_length.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = torch.from_numpy(np.stack([clips[i] for i in chunk])).double()
                out[chunk] = self._features(batch).numpy()
        return out

    def _features(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` float64 → ``[B, E]``."""
        # Power re a full-scale sine's peak bin (|X| = n_fft / 4 for a periodic Hann window), so eps
        # = 1e-10 is a floor at −100 dB: differences far below audibility / 16-bit noise do not count.
        power = (stft_magnitude(audio, self.n_fft, self.hop_length) / (self.n_fft / 4)) ** 2  # [B, F, frames]
        log_mel = torch.log(self.mel @ power + self.eps)
        mfcc = torch.from_numpy(scipy.fft.dct(log_mel.numpy(), type=2, axis=1, norm="ortho"))[:, :self.n_mfcc]
        chroma = self.chroma @ power
        chroma = chroma / (chroma.amax(dim=1, keepdim=True) + self.eps)
        contrast = torch.stack([self._contrast(power[:, band]) for band in self.bands], dim=1)
        total = power.sum(dim=1) + self.eps                                       # [B, frames]
        centroid = (self.freq_fraction[None, :, None] * power).sum(dim=1) / total
        cumulative = power.cumsum(dim=1) / total[:, None]
        rolloff_bin = (cumulative < 0.85).sum(dim=1).clamp(max=power.shape[1] - 1)
        rolloff = self.freq_fraction[rolloff_bin]
        flatness = torch.exp(torch.log(power + self.eps).mean(dim=1)) / (power.mean(dim=1) + self.eps)
        energy = torch.log(power.mean(dim=1) + self.eps)
        frame_features = torch.cat([mfcc, chroma, contrast, torch.stack([centroid, rolloff, flatness, energy], 1)], 1)
        unit = power / (power.norm(dim=1, keepdim=True) + self.eps)
        flux = (unit[:, :, 1:] - unit[:, :, :-1]).norm(dim=1, keepdim=True)    # [B, 1, frames-1]
        return torch.cat([frame_features.mean(-1), frame_features.std(-1), flux.mean(-1), flux.std(-1)], dim=1)

    def _contrast(self, band_power: torch.Tensor) -> torch.Tensor:
        """``[B, bins, frames]`` → log(mean top-q bins / mean bottom-q bins) ``[B, frames]``."""
        ordered = torch.sort(band_power, dim=1).values
        k = max(1, int(round(self.contrast_quantile * ordered.shape[1])))
        valley = ordered[:, :k].mean(dim=1)
        peak = ordered[:, -k:].mean(dim=1)
        return torch.log(peak + self.eps) - torch.log(valley + self.eps)


#: the evaluation CLAP shipped with the package (how it was trained: docs/ablations.md)
EVALCLAP_TINY_DIR = Path(__file__).resolve().parent.parent / "assets" / "metrics" / "evalclap_tiny"


@dataclass
class EvalClapConfig(Config):
    """``evalclap-tiny``: the MuLan export folder (None: the shipped ``EVALCLAP_TINY_DIR``) and
    clips per forward pass (speed only)."""

    folder: str | None = None
    batch_size: int = 16

    def __post_init__(self):
        self.folder = _path_str(self.folder)


@EMBEDDERS.register("evalclap-tiny", config=EvalClapConfig, presets={"default": EvalClapConfig()})
class EvalClapEmbedder(Embedder):
    """The project's evaluation CLAP: a tiny MuLan (same architecture as the generator's) trained
    on the ``evalclap`` corpus, whose works are disjoint from the ``tiny`` corpus the generators
    learn from. ``embed`` gives its unit-norm audio embeddings (``[N, 128]``, for FAD);
    ``embed_text`` / ``embed_audio`` make it usable by :func:`~melody_lab.metrics.clap_score`.
    """

    name = "evalclap-tiny"

    def __init__(self, config: EvalClapConfig | None = None):
        from ..io import resolve
        from ..semantic import MuLan

        self.config = config = config if config is not None else EvalClapConfig()
        folder = Path(config.folder) if config.folder is not None else EVALCLAP_TINY_DIR
        if not (folder / "config.json").is_file():
            raise UserError(f"the evaluation CLAP is not installed: {folder} has no config.json "
                            f"(reinstall melody-lab, or train it as docs/ablations.md describes)")
        self.model = MuLan.from_pretrained(folder).eval()
        self.sample_rate = int(self.model.config.sample_rate)
        weights = resolve(folder, "mulan")[1].read_bytes()
        self.fingerprint = "sha256:" + hashlib.sha256(weights).hexdigest()[:16]  # goes into reports
        self.batch_size = config.batch_size

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """Captions → unit ``[B, E]``."""
        return self.model.embed_text(list(texts))

    @torch.no_grad()
    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` at ``self.sample_rate`` → unit ``[B, E]``."""
        return self.model.embed_audio(audio.float())

    def _embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, clip in enumerate(clips):
            by_length[len(clip)].append(index)
        out = np.zeros((len(clips), self.model.config.embed_dim))
        for indices in by_length.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = torch.from_numpy(np.stack([clips[i] for i in chunk]))
                out[chunk] = self.embed_audio(batch).double().numpy()
        return out


@dataclass
class BasicPitchConfig(Config):
    """``basic-pitch``: ONNX inference threads of the (per-process) transcriber (speed only)."""

    threads: int = 1


@EMBEDDERS.register("basic-pitch", config=BasicPitchConfig, presets={"default": BasicPitchConfig()})
class BasicPitchEmbedder(Embedder):
    """Pooled activations of Spotify's pretrained basic-pitch transcriber (needs the ``[eval]`` extra).

    Per frame (86 /s at 22.05 kHz) the model's note and onset activations ``[88 + 88]`` (piano keys);
    ``embed_frames`` averages them over non-overlapping 0.5-s windows (``[windows, 176]`` per clip,
    for frame-level FAD), ``embed`` over the whole clip (``[N, 176]``). Weights ship in the
    basic-pitch wheel; one inference session per process (``transcription.get_transcriber``).
    """

    name = "basic-pitch"
    window_s = 0.5

    def __init__(self, config: BasicPitchConfig | None = None):
        from .transcription import SAMPLE_RATE, get_transcriber

        self.config = config = config if config is not None else BasicPitchConfig()
        self.transcriber = get_transcriber(config.threads)
        self.sample_rate = SAMPLE_RATE
        self.fingerprint = self.transcriber.fingerprint

    def _frame_features(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        return [np.concatenate([note, onset], axis=1) for note, onset, _ in self.transcriber.activations(clips)]

    def _embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        return np.stack([f.mean(axis=0) for f in self._frame_features(clips)])

    @staticmethod
    def pool(transcriptions: list) -> np.ndarray:
        """Transcriptions (from ``self.transcriber``) → ``[N, 176]``, what ``embed`` returns for their
        audio: one model pass serves the embedding and the note measures."""
        return np.stack([np.concatenate([t.note, t.onset], axis=1).mean(axis=0) for t in transcriptions])

    def embed_frames(self, audio, sample_rate: int) -> list[np.ndarray]:
        """Clips at ``sample_rate`` → per clip float64 ``[windows, 176]`` (0.5-s window means; a
        shorter tail window is dropped unless it is the only one)."""
        from .transcription import FRAME_RATE

        clips = [resample(c, sample_rate, self.sample_rate) for c in as_clip_list(audio)]
        size = max(1, int(round(self.window_s * FRAME_RATE)))
        out = []
        for features in self._frame_features(clips):
            count = max(1, len(features) // size)
            out.append(np.stack([features[i * size:(i + 1) * size].mean(axis=0) for i in range(count)]))
        return out
