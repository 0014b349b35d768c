"""Latent codecs: audio ``[B, T]`` ⇄ latent ``z [B, L, D]`` in [-1, 1] (see ``base.Codec``).

``vaegan`` is MeLoDy's audio VAE-GAN; ``vqvae`` is the discrete-bottleneck baseline for the
"VAE-GAN vs VQ-VAE latents" ablation. Both are built by name with :func:`build_codec`; the
shipped tiny checkpoints load with :func:`load_tiny`.
"""
from pathlib import Path

from .base import Codec, CodecConfig
from .build import (CODECS, PRESETS, CodecConfigMismatchError, build_codec, codec_config,
                    load_codec, save_codec)
from .metrics import different_clip_baseline, reconstruction_metrics
from .vaegan import VAEGAN, VAEGANConfig
from .vqvae import VQVAE, VQVAEConfig

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "codecs"


def load_tiny(name: str) -> Codec:
    """The shipped tiny ``vaegan`` or ``vqvae`` codec (``assets/codecs/<name>_tiny``), eval mode, fp32."""
    from ..errors import UserError

    if name not in CODECS.names():
        raise UserError(f"unknown codec {name!r}; choose one of: {', '.join(CODECS.names())}")
    folder = ASSETS / f"{name}_tiny"
    if not folder.is_dir():
        raise UserError(f"shipped checkpoint {folder} is missing (reinstall melody-lab)")
    return load_codec(folder, name=name, preset="tiny").eval()


__all__ = ["ASSETS", "CODECS", "PRESETS", "VAEGAN", "VQVAE", "Codec", "CodecConfig",
           "CodecConfigMismatchError", "VAEGANConfig", "VQVAEConfig", "build_codec", "codec_config",
           "different_clip_baseline", "load_codec", "load_tiny", "reconstruction_metrics",
           "save_codec"]
