"""``melody-lab train tokenizer``: fit the semantic tokenizer's k-means on the train split.

k-means is not gradient training, so this command does not go through the shared loop; it writes
the same run layout (``OUT/config.json``, ``OUT/ckpt-00000001/tokenizer.safetensors`` +
``state.json``, ``OUT/latest``) with the same atomic checkpoint writer, so every loader treats it
like any other run. Re-running on a finished folder with the same settings does nothing.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..semantic.tokenizer import TOKENIZER_PRESETS, SemanticTokenizer
from .checkpoint import latest_checkpoint, save_checkpoint
from .semantic_common import add_common_args, guard_run_folder, load_split


def token_usage(tokens: torch.Tensor, vocab: int) -> dict[str, float]:
    """How much of the vocabulary ``tokens`` use: fraction of codes seen and unigram perplexity."""
    counts = torch.bincount(tokens.flatten(), minlength=vocab).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {"used_fraction": (counts > 0).double().mean().item(),
            "unigram_perplexity": math.exp(entropy)}


def fit_tokenizer(preset: str, data: str | Path, out: str | Path, seed: int = 0,
                  features: str | None = None, ssl_path: str | None = None) -> dict:
    """Fit (or find already fitted) the tokenizer of ``preset`` into run folder ``out``."""
    out = Path(out)
    cfg = TOKENIZER_PRESETS[preset]
    if features:
        cfg = cfg.replace(features=features, ssl_path=ssl_path)
    tokenizer = SemanticTokenizer(cfg)
    record = {"task": "tokenizer", "model": tokenizer.config.to_dict(), "preset": preset,
              "seed": seed}
    if (out / "config.json").exists() and guard_run_folder(out, record) \
            and latest_checkpoint(out) is not None:
        import json
        return json.loads((latest_checkpoint(out) / "state.json").read_text())
    started = time.monotonic()
    train = load_split(data, "train", cfg.sample_rate)  # a bad corpus fails before OUT is written
    guard_run_folder(out, record)
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

    def run(args) -> int:
        state = fit_tokenizer(args.preset, args.data, args.out, args.seed, args.features,
                              args.ssl_path)
        print(f"tokenizer: fitted in {args.out}; validation usage {state.get('valid')}")
        return 0

    parser.set_defaults(func=run)
