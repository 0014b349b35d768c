"""Codec registry and presets, and the codec wrappers around ``melody_lab.io`` save/load.

    codec = build_codec("vaegan", "tiny")                 # fresh, untrained
    codec = build_codec("vqvae", "micro", latent_dim=4)   # preset with overrides
    save_codec(codec, "out/vaegan_tiny", preset="tiny")   # config.json + codec.safetensors
    codec = load_codec("out/vaegan_tiny")                 # or a training run folder
    codec = load_codec("runs/codec", preset="tiny")       # error if it was not trained as tiny

Presets: ``micro`` (unit tests, ~45k parameters), ``tiny`` (16 kHz, hop 128, D = 16: trained on
CPU and shipped), ``paper`` (24 kHz, hop 96, the paper's strides, channels and kernels),
``paper_micro`` (paper's layout at micro widths). The VQ-VAE presets are the VAE-GAN's plus their
codebooks.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from ..io import build_from_record, load_weights, resolve, save_pretrained
from ..registry import Registry
from .base import Codec, CodecConfig
from .vaegan import VAEGAN, VAEGANConfig
from .vqvae import VQVAE, VQVAEConfig

VAEGAN_PRESETS: dict[str, VAEGANConfig] = {
    "micro": VAEGANConfig(sample_rate=16000, latent_dim=8, enc_channels=(4, 8, 16),
                          enc_strides=(2, 4, 4), enc_kernels=(4, 8, 8), dec_channels=(32, 16, 8),
                          dec_strides=(4, 4, 2), dec_kernels=(9, 9, 5), res_kernels=(3,),
                          res_dilations=(1, 3)),
    "tiny": VAEGANConfig(sample_rate=16000, latent_dim=16, enc_channels=(16, 32, 64, 128),
                         enc_strides=(2, 4, 4, 4), enc_kernels=(4, 8, 8, 8),
                         dec_channels=(160, 80, 40, 20), dec_strides=(4, 4, 4, 2),
                         dec_kernels=(7, 7, 7, 5), res_kernels=(3,), res_dilations=(1, 3, 9)),
    "paper": VAEGANConfig(sample_rate=24000, latent_dim=16, enc_channels=(32, 64, 128, 256),
                          enc_strides=(2, 3, 4, 4), enc_kernels=(5, 7, 9, 9),
                          dec_channels=(768, 384, 192, 96), dec_strides=(4, 4, 3, 2),
                          dec_kernels=(9, 9, 5, 7), res_kernels=(3, 7, 11), res_dilations=(1, 3, 5),
                          activation="leaky_relu", enc_layout="stage"),
    # the paper preset's code paths (24 kHz, strides 2·3·4·4 = hop 96, stage layout, its kernels
    # and MRF) at micro widths: the CPU twin that ``train all --preset paper_micro`` runs in tests
    "paper_micro": VAEGANConfig(sample_rate=24000, latent_dim=16, enc_channels=(4, 8, 16, 32),
                                enc_strides=(2, 3, 4, 4), enc_kernels=(5, 7, 9, 9),
                                dec_channels=(32, 16, 8, 4), dec_strides=(4, 4, 3, 2),
                                dec_kernels=(9, 9, 5, 7), res_kernels=(3, 7, 11),
                                res_dilations=(1, 3, 5), activation="leaky_relu",
                                enc_layout="stage"),
}
_CODEBOOKS = {"micro": dict(num_quantizers=2, codebook_size=16),
              "tiny": dict(num_quantizers=4, codebook_size=256),
              "paper": dict(num_quantizers=8, codebook_size=1024),
              "paper_micro": dict(num_quantizers=2, codebook_size=16)}
VQVAE_PRESETS: dict[str, VQVAEConfig] = {
    preset: VQVAEConfig(**{f: getattr(cfg, f) for f in CodecConfig.__dataclass_fields__},
                        **_CODEBOOKS[preset])
    for preset, cfg in VAEGAN_PRESETS.items()}

CODECS: Registry = Registry("codec")
CODECS.register("vaegan", config=VAEGANConfig, presets=VAEGAN_PRESETS)(VAEGAN)
CODECS.register("vqvae", config=VQVAEConfig, presets=VQVAE_PRESETS)(VQVAE)
PRESETS = CODECS.presets  # {"vaegan": {"micro": VAEGANConfig(...), ...}, "vqvae": {...}}


class CodecConfigMismatchError(UserError):
    """A checkpoint's codec config disagrees with the codec/preset the caller asked for."""


def codec_config(name: str, preset: str = "tiny", **overrides) -> CodecConfig:
    """The config of codec ``name`` at ``preset``, with field ``overrides``."""
    return CODECS.config(name, preset, **overrides)


def build_codec(name: str, preset: str = "tiny", **overrides) -> Codec:
    """A fresh (untrained) codec: ``build_codec("vaegan" | "vqvae", PRESET)``, PRESET one of
    ``micro``, ``tiny``, ``paper``, ``paper_micro``."""
    return CODECS.build(name, preset, **overrides)


def save_codec(codec: Codec, folder: str | Path, preset: str | None = None,
               dtype: torch.dtype = torch.float32, extra: dict | None = None) -> Path:
    """``codec.save_pretrained`` with the preset it was built from (fp16 parameters with
    ``dtype=torch.float16``) and ``extra`` info in ``config.json``."""
    return save_pretrained(codec, folder, half=dtype == torch.float16,
                           extra={"preset": preset, **(extra or {})})


def load_codec(path: str | Path, name: str | None = None, preset: str | None = None,
               map_location: str = "cpu") -> Codec:
    """Load a codec saved by :func:`save_codec` or trained by ``melody-lab train codec``.

    With ``name``/``preset`` given, the stored config must equal that preset's config, otherwise
    :class:`CodecConfigMismatchError` names the fields that differ. Reads only JSON and
    safetensors. Weights stored as fp16 are loaded into a float32 model.
    """
    path = Path(path)
    record, weights = resolve(path, "codec")
    if name is not None and record["name"] != name:
        raise CodecConfigMismatchError(
            f"{path} holds a {record['name']!r} codec, not {name!r}")
    codec = build_from_record(CODECS, record, path)
    if preset is not None:
        stored, wanted = codec.config.to_dict(), codec_config(record["name"], preset).to_dict()
        diff = {k: (v, wanted[k]) for k, v in stored.items() if wanted[k] != v}
        if diff:
            details = "; ".join(f"{k}: checkpoint {a} vs preset {b}" for k, (a, b) in diff.items())
            raise CodecConfigMismatchError(
                f"{path} was trained with preset {record.get('preset')!r}, which disagrees with "
                f"the requested preset {preset!r} ({details}); load it without a preset or "
                f"train a {preset!r} codec")
    return load_weights(codec, weights).to(map_location).eval()
