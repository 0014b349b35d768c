"""Latent codecs: audio ``[B, T]`` ⇄ latent ``z [B, L, D]`` in [-1, 1] (see ``base.Codec``).

``vaegan`` is MeLoDy's audio VAE-GAN; ``vqvae`` is the discrete-bottleneck baseline for the
"VAE-GAN vs VQ-VAE latents" ablation. Both are built by name with :func:`build_codec`.
"""
from .base import Codec, CodecConfig
from .build import (CODECS, PRESETS, CodecConfigMismatchError, build_codec, codec_config,
                    load_codec, save_codec)
from .metrics import reconstruction_metrics
from .vaegan import VAEGAN, VAEGANConfig
from .vqvae import VQVAE, VQVAEConfig

__all__ = ["CODECS", "PRESETS", "VAEGAN", "VQVAE", "Codec", "CodecConfig",
           "CodecConfigMismatchError", "VAEGANConfig", "VQVAEConfig", "build_codec", "codec_config",
           "load_codec", "reconstruction_metrics", "save_codec"]
