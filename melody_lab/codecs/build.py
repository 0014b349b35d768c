"""Codec registry, presets, and safetensors + JSON save/load.

    codec = build_codec("vaegan", "tiny")                 # fresh, untrained
    codec = build_codec("vqvae", "micro", latent_dim=4)   # preset with overrides
    save_codec(codec, "out/vaegan_tiny", preset="tiny")   # codec.json + codec.safetensors
    codec = load_codec("out/vaegan_tiny")                 # or a training run folder
    codec = load_codec("runs/codec", preset="tiny")       # error if it was not trained as tiny

Presets: ``micro`` (unit tests, ~45k parameters), ``tiny`` (16 kHz, hop 128, D = 16: trained on
CPU and shipped), ``paper`` (24 kHz, hop 96, the paper's strides, channels and kernels).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_model, save_file

from ..errors import UserError
from ..registry import Registry
from .base import Codec, CodecConfig
from .vaegan import VAEGAN, VAEGANConfig
from .vqvae import VQVAE, VQVAEConfig

CODECS: Registry = Registry("codec")
CODECS.register("vaegan")(VAEGAN)
CODECS.register("vqvae")(VQVAE)
CONFIG_CLASSES = {"vaegan": VAEGANConfig, "vqvae": VQVAEConfig}

PRESETS: dict[str, dict] = {
    "micro": dict(sample_rate=16000, latent_dim=8, enc_channels=(4, 8, 16), enc_strides=(2, 4, 4),
                  enc_kernels=(4, 8, 8), dec_channels=(32, 16, 8), dec_strides=(4, 4, 2),
                  dec_kernels=(9, 9, 5), res_kernels=(3,), res_dilations=(1, 3)),
    "tiny": dict(sample_rate=16000, latent_dim=16, enc_channels=(16, 32, 64, 128),
                 enc_strides=(2, 4, 4, 4), enc_kernels=(4, 8, 8, 8), dec_channels=(160, 80, 40, 20),
                 dec_strides=(4, 4, 4, 2), dec_kernels=(7, 7, 7, 5), res_kernels=(3,),
                 res_dilations=(1, 3, 9)),
    "paper": dict(sample_rate=24000, latent_dim=16, enc_channels=(32, 64, 128, 256),
                  enc_strides=(2, 3, 4, 4), enc_kernels=(5, 7, 9, 9),
                  dec_channels=(768, 384, 192, 96), dec_strides=(4, 4, 3, 2), dec_kernels=(9, 9, 5, 7),
                  res_kernels=(3, 7, 11), res_dilations=(1, 3, 5), activation="leaky_relu",
                  enc_layout="stage"),
}
VQ_PRESETS: dict[str, dict] = {
    "micro": dict(num_quantizers=2, codebook_size=16),
    "tiny": dict(num_quantizers=4, codebook_size=256),
    "paper": dict(num_quantizers=8, codebook_size=1024),
}

WEIGHTS_FILE, CONFIG_FILE = "codec.safetensors", "codec.json"


class CodecConfigMismatchError(UserError):
    """A checkpoint's codec config disagrees with the codec/preset the caller asked for."""


def codec_config(name: str, preset: str = "tiny", **overrides) -> CodecConfig:
    """The config of codec ``name`` at ``preset``, with field ``overrides``."""
    cls = CONFIG_CLASSES[CODECS.get(name).name]
    if preset not in PRESETS:
        raise UserError(f"unknown codec preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    fields = {**PRESETS[preset], **(VQ_PRESETS[preset] if name == "vqvae" else {})}
    return cls.from_dict(json.loads(json.dumps(fields))).replace(**overrides)


def build_codec(name: str, preset: str = "tiny", **overrides) -> Codec:
    """A fresh (untrained) codec: ``build_codec("vaegan" | "vqvae", "micro" | "tiny" | "paper")``."""
    return CODECS.get(name)(codec_config(name, preset, **overrides))


def codec_record(codec: Codec, preset: str | None) -> dict:
    """What identifies a codec in a checkpoint: ``{"name", "preset", "config"}``."""
    return {"name": codec.name, "preset": preset, "config": codec.config.to_dict()}


def save_codec(codec: Codec, folder: str | Path, preset: str | None = None,
               dtype: torch.dtype = torch.float32, extra: dict | None = None) -> Path:
    """Write ``folder/codec.json`` (+ ``extra`` info) and ``folder/codec.safetensors``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in codec.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    record = {**codec_record(codec, preset), **(extra or {})}
    (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return folder


def _find_weights(path: Path) -> tuple[dict, Path]:
    """(codec record, weights file) of an exported folder or of a training run folder."""
    if (path / CONFIG_FILE).exists():
        return json.loads((path / CONFIG_FILE).read_text()), path / WEIGHTS_FILE
    if (path / "config.json").exists() and (path / "latest").exists():
        record = json.loads((path / "config.json").read_text()).get("codec")
        if record is None:
            raise UserError(f"{path} is a training run, but not of a codec")
        ckpt = path / (path / "latest").read_text().strip()
        return record, ckpt / WEIGHTS_FILE
    raise UserError(f"{path} holds no codec: expected {CONFIG_FILE} + {WEIGHTS_FILE} (an exported "
                    f"codec) or config.json + latest (a `melody-lab train codec` run)")


def load_codec(path: str | Path, name: str | None = None, preset: str | None = None,
               map_location: str = "cpu") -> Codec:
    """Load a codec saved by :func:`save_codec` or trained by ``melody-lab train codec``.

    With ``name``/``preset`` given, the stored config must equal that preset's config, otherwise
    :class:`CodecConfigMismatchError` names the fields that differ. Reads only JSON and
    safetensors. Weights stored as fp16 are loaded into a float32 model.
    """
    path = Path(path)
    record, weights = _find_weights(path)
    if name is not None and record["name"] != name:
        raise CodecConfigMismatchError(
            f"{path} holds a {record['name']!r} codec, not {name!r}")
    stored = CONFIG_CLASSES[CODECS.get(record["name"]).name].from_dict(record["config"])
    if preset is not None:
        wanted = codec_config(record["name"], preset)
        diff = {k: (v, wanted.to_dict()[k]) for k, v in stored.to_dict().items()
                if wanted.to_dict()[k] != v}
        if diff:
            details = "; ".join(f"{k}: checkpoint {a} vs preset {b}" for k, (a, b) in diff.items())
            raise CodecConfigMismatchError(
                f"{path} was trained with preset {record.get('preset')!r}, which disagrees with "
                f"the requested preset {preset!r} ({details}); load it without a preset or "
                f"train a {preset!r} codec")
    codec = CODECS.get(record["name"])(stored)
    if not weights.exists():
        raise UserError(f"codec weights missing: {weights}")
    load_model(codec, str(weights), strict=True, device=map_location)
    return codec.eval()
