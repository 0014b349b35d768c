"""Optional pretrained embedders behind user-supplied local checkpoints: ``vggish`` and ``laion_clap``.

Nothing here downloads anything. Without a checkpoint (argument or environment variable) building
either raises a :class:`~melody_lab.errors.UserError` that says what to download, from where and
where to put it; neither ever falls back to another embedder. Nothing optional is imported until
an adapter is built, so the core never depends on these packages.

- ``vggish``: Google's AudioSet VGGish, re-implemented here in plain torch (no extra package) and
  loaded from the PyTorch port's weights (harritaylor/torchvggish). One 128-d vector per 0.96 s
  example before the PCA/quantisation post-processing (as FAD uses it); ``embed`` averages the
  examples of a clip, ``embed_frames`` returns them all (frame-level FAD, as Google's FAD does).
- ``laion_clap``: the ``laion_clap`` package (``pip install 'melody-lab[laion-clap]'``) with a
  local checkpoint; also offers ``embed_text`` / ``embed_audio`` for the CLAP score.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..audio import resample
from ..config import Config
from ..errors import UserError
from .embedders import EMBEDDERS, Embedder, _path_str, as_clip_list, resolve_checkpoint

VGGISH_ENV = "MELODY_LAB_VGGISH_CKPT"
LAION_CLAP_ENV = "MELODY_LAB_LAION_CLAP_CKPT"
VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
LAION_CLAP_URL = "https://huggingface.co/lukewys/laion_clap/resolve/main/music_audioset_epoch_15_esc_90.14.pt"

VGGISH_HELP = (
    f"The vggish embedder needs VGGish weights, which melody_lab never downloads: fetch {VGGISH_URL} "
    f"(PyTorch port of Google's AudioSet VGGish, ~275 MB), put it e.g. at "
    f"~/.cache/melody_lab/vggish-10086976.pth, and pass checkpoint=PATH or set {VGGISH_ENV}=PATH "
    "(.pth state dicts are read with torch.load(weights_only=True); .safetensors also works).")
LAION_CLAP_HELP = (
    f"The laion_clap embedder needs a LAION-CLAP checkpoint, which melody_lab never downloads: fetch "
    f"{LAION_CLAP_URL} (the music checkpoint fadtk uses; audio model HTSAT-base), put it e.g. at "
    f"~/.cache/melody_lab/music_audioset_epoch_15_esc_90.14.pt, pass checkpoint=PATH or set "
    f"{LAION_CLAP_ENV}=PATH, and install the optional package: pip install 'melody-lab[laion-clap]' "
    "(it needs a torchvision build that matches your torch).")


class VGGishNet(nn.Module):
    """VGGish: log-mel examples ``[K, 1, 96, 64]`` → embeddings ``[K, 128]`` (no final ReLU).

    Module names and indices match the torchvggish state dict (``features.0`` … ``embeddings.4``).
    """

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True),
                                        nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128))

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples)                       # [K, 512, 6, 4]
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF's NHWC flattening order
        return self.embeddings(x)


def vggish_mel_matrix(sample_rate: int = 16000, n_fft: int = 512, n_mels: int = 64,
                      f_min: float = 125.0, f_max: float = 7500.0) -> np.ndarray:
    """VGGish's own triangular HTK mel matrix ``[n_fft//2 + 1, n_mels]`` (peak 1, DC bin zeroed)."""
    def to_mel(hz):
        return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)
    bins_mel = to_mel(np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1))
    edges = np.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


def vggish_examples(clip: np.ndarray) -> np.ndarray:
    """16 kHz clip ``[T]`` → log-mel examples ``[K, 96, 64]`` (25 ms Hann, 10 ms hop, 0.96 s each).

    Clips shorter than one example are zero-padded to one.
    """
    window, hop, frames_per_example = 400, 160, 96
    min_len = window + hop * (frames_per_example - 1)
    clip = np.pad(np.asarray(clip, np.float64), (0, max(0, min_len - len(clip))))
    count = 1 + (len(clip) - window) // hop
    frames = np.lib.stride_tricks.sliding_window_view(clip, window)[::hop][:count]
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    magnitude = np.abs(np.fft.rfft(frames * periodic_hann, 512))
    log_mel = np.log(magnitude @ vggish_mel_matrix() + 0.01)
    usable = (len(log_mel) // frames_per_example) * frames_per_example
    return log_mel[:usable].reshape(-1, frames_per_example, 64)


def _load_state_dict(path) -> dict[str, torch.Tensor]:
    if str(path).endswith(".safetensors"):
        from ..io import read_safetensors  # the header is checked before anything is allocated
        return read_safetensors(path)
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict (a dict of tensors)")
    return state.get("state_dict", state)


@dataclass
class VGGishConfig(Config):
    """``vggish``: the weights file (None: ``$MELODY_LAB_VGGISH_CKPT``) and the torch device."""

    checkpoint: str | None = None
    device: str = "cpu"

    def __post_init__(self):
        self.checkpoint = _path_str(self.checkpoint)


@EMBEDDERS.register("vggish", config=VGGishConfig, presets={"default": VGGishConfig()})
class VGGishEmbedder(Embedder):
    """``vggish`` adapter: clip embedding = mean over its 0.96 s VGGish examples, ``[N, 128]``."""

    name = "vggish"
    sample_rate = 16000

    def __init__(self, config: VGGishConfig | None = None):
        self.config = config = config if config is not None else VGGishConfig()
        self.checkpoint = resolve_checkpoint(config.checkpoint, VGGISH_ENV, VGGISH_HELP)
        state = _load_state_dict(self.checkpoint)
        self.net = VGGishNet()
        expected = set(self.net.state_dict())
        if not expected <= set(state):
            raise UserError(f"{self.checkpoint} is not a VGGish state dict (missing keys such as "
                            f"{sorted(expected - set(state))[:3]}). {VGGISH_HELP}")
        self.net.load_state_dict({k: state[k] for k in expected})
        self.device = torch.device(config.device)
        self.net.to(self.device).eval()
        self.name = f"vggish:{self.checkpoint.name}"

    @torch.no_grad()
    def embed_frames(self, audio, sample_rate: int) -> list[np.ndarray]:
        """Per clip, all example embeddings ``[K_i, 128]`` (for frame-level FAD: concatenate them)."""
        out = []
        for clip in as_clip_list(audio):
            examples = torch.from_numpy(vggish_examples(resample(clip, sample_rate, 16000))).float()
            out.append(self.net(examples[:, None].to(self.device)).cpu().double().numpy())
        return out

    def _embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        return np.stack([frames.mean(axis=0) for frames in self.embed_frames(clips, self.sample_rate)])


@dataclass
class LaionClapConfig(Config):
    """``laion_clap``: the checkpoint (None: ``$MELODY_LAB_LAION_CLAP_CKPT``), the audio model and
    fusion flag it was trained with (``laion_clap.CLAP_Module``'s arguments) and the torch device."""

    checkpoint: str | None = None
    amodel: str = "HTSAT-base"
    enable_fusion: bool = False
    device: str = "cpu"

    def __post_init__(self):
        self.checkpoint = _path_str(self.checkpoint)


@EMBEDDERS.register("laion_clap", config=LaionClapConfig, presets={"default": LaionClapConfig()})
class LaionClapEmbedder(Embedder):
    """``laion_clap`` adapter (48 kHz): audio ``[N, 512]``; clips over 10 s are averaged over 10 s chunks.

    ``embed_text(list[str])`` / ``embed_audio([B, T] at 48 kHz)`` return L2-normalised ``[B, 512]``
    so the model also serves :func:`melody_lab.metrics.clap_score`.
    """

    name = "laion_clap"
    sample_rate = 48000
    chunk_samples = 480000

    def __init__(self, config: LaionClapConfig | None = None):
        self.config = config = config if config is not None else LaionClapConfig()
        self.checkpoint = resolve_checkpoint(config.checkpoint, LAION_CLAP_ENV, LAION_CLAP_HELP)
        try:
            import laion_clap  # optional extra, imported only here
        except Exception as err:  # ImportError, or torchvision failing to import beside this torch
            raise UserError(f"cannot import the optional package laion_clap ({err}). {LAION_CLAP_HELP}") from err
        self.model = laion_clap.CLAP_Module(enable_fusion=config.enable_fusion, amodel=config.amodel,
                                            device=config.device)
        self.model.load_ckpt(str(self.checkpoint), verbose=False)
        self.name = f"laion_clap:{self.checkpoint.name}"

    def _embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        out = []
        for clip in clips:
            clip = (np.clip(clip, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32767  # as fadtk
            chunks = [clip[i:i + self.chunk_samples] for i in range(0, len(clip), self.chunk_samples)]
            chunks = [c for c in chunks if len(c) >= self.sample_rate // 10] or chunks[:1]
            emb = [self.model.get_audio_embedding_from_data(x=c[None], use_tensor=False)[0] for c in chunks]
            out.append(np.mean(emb, axis=0))
        return np.stack(out)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        emb = np.asarray(self.model.get_text_embedding(list(texts), use_tensor=False), dtype=np.float64)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def embed_audio(self, audio) -> np.ndarray:
        emb = self.embed(audio, self.sample_rate)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)
