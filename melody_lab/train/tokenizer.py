"""``melody-lab train tokenizer``: fit the semantic tokenizer's k-means on the train split.

k-means is not gradient training, so this command does not go through the shared loop; it writes
the same run layout (``OUT/config.json``, ``OUT/ckpt-00000001/tokenizer.safetensors`` +
``state.json``, ``OUT/latest``) with the same atomic checkpoint writer, so every loader treats it
like any other run. Re-running on a finished folder with the same settings does nothing.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..data.splits import load_split
from ..errors import UserError
from ..io import component_record
from ..semantic.features import SSL_POOLINGS
from ..semantic.tokenizer import TOKENIZER_PRESETS, SemanticTokenizer
from .checkpoint import check_run_record, latest_checkpoint, save_checkpoint
from .loop import LoopConfig
from .semantic_common import add_common_args


@dataclass
class TokenizerStageConfig(Config):
    """What :func:`fit_tokenizer` fits: the tokenizer of size ``preset`` (``TOKENIZER_PRESETS``),
    its frame ``features`` (None: the preset's) and, for ``features="ssl"``, the local SSL model."""

    preset: str = "tiny"
    features: str | None = None
    ssl_path: str | None = None
    ssl_layer: int | None = None  # None: the preset's
    ssl_pooling: str | None = None  # None: the preset's

    def __post_init__(self):
        if self.preset not in TOKENIZER_PRESETS:
            raise UserError(f"unknown tokenizer preset {self.preset!r}; choose one of: "
                            f"{', '.join(TOKENIZER_PRESETS)}")

    @classmethod
    def for_preset(cls, preset: str) -> "TokenizerStageConfig":
        return cls(preset)

    def loop(self, steps: int | None = None, seed: int = 0, max_minutes: float | None = None,
             progress: bool = True) -> LoopConfig:
        """k-means has no steps: only the seed of the returned loop settings is used."""
        return LoopConfig(max_steps=1, seed=seed, max_minutes=max_minutes, progress=progress)


def token_usage(tokens: torch.Tensor, vocab: int) -> dict[str, float]:
    """How much of the vocabulary ``tokens`` use: fraction of codes seen and unigram perplexity."""
    counts = torch.bincount(tokens.flatten(), minlength=vocab).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {"used_fraction": (counts > 0).double().mean().item(),
            "unigram_perplexity": math.exp(entropy)}


def fit_tokenizer(config: TokenizerStageConfig, data: str | Path, out: str | Path,
                  loop: LoopConfig | None = None) -> dict:
    """Fit (or find already fitted) the tokenizer of ``config`` into run folder ``out``
    (k-means seeded with ``loop.seed``; the loop's other settings do not apply)."""
    out = Path(out)
    preset, seed = config.preset, (loop or config.loop()).seed
    cfg = TOKENIZER_PRESETS[preset]
    if config.features:
        cfg = cfg.replace(features=config.features, ssl_path=config.ssl_path)
    if config.ssl_layer is not None:
        cfg = cfg.replace(ssl_layer=config.ssl_layer)
    if config.ssl_pooling is not None:
        cfg = cfg.replace(ssl_pooling=config.ssl_pooling)
    tokenizer = SemanticTokenizer(cfg)
    record = {"task": "tokenizer", "model": component_record(tokenizer), "preset": preset,
              "seed": seed}
    if check_run_record(out, record, write=False) and latest_checkpoint(out) is not None:
        return json.loads((latest_checkpoint(out) / "state.json").read_text())
    started = time.monotonic()
    train = load_split(data, "train", cfg.sample_rate)  # a bad corpus fails before OUT is written
    check_run_record(out, record)
    tokenizer.fit(train.audio, seed=seed)
    valid = load_split(data, "valid", cfg.sample_rate)
    usage = token_usage(tokenizer.tokenize(valid.audio), cfg.vocab_size)
    state = {"valid": usage, "fit_seconds": time.monotonic() - started,
             "train_clips": len(train.audio)}
    save_checkpoint(out, 1, {"tokenizer": tokenizer}, state=state)
    return {"step": 1, **state}


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "tokenizer", help="fit the semantic tokenizer (frame features → k-means vocabulary)",
        description="Fit standardisation and k-means of the semantic tokenizer on the train split "
        "of a built corpus; writes a run folder that `train lm --tokenizer` reads.")
    add_common_args(parser, list(TOKENIZER_PRESETS))
    parser.add_argument("--features", choices=["mel_chroma_onset", "ssl"], default=None,
                        help="frame features (default: the preset's, mel_chroma_onset)")
    parser.add_argument("--ssl-path", default=None,
                        help="local folder of a transformers SSL audio model (with --features ssl)")
    parser.add_argument("--ssl-layer", type=int, default=None,
                        help="hidden-state index of the SSL model: 0 = transformer input, i = "
                        "layer i, -1 = last (default: the preset's, 6)")
    parser.add_argument("--ssl-pooling", choices=list(SSL_POOLINGS), default=None,
                        help="model frames to token frames: mean over each token's span, or the "
                        "frame at its centre (default: mean)")
