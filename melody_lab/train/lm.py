"""``melody-lab train lm``: the semantic LM on cached (MuLan codes, semantic tokens) pairs.

Before training, every train/valid clip is tokenized once and its MuLan codes computed twice —
from the clip's audio embedding and from its caption's text embedding — and cached in
``OUT/cache/<split>.safetensors`` (reused while the MuLan and tokenizer checkpoints are the same).
Each training example uses the caption codes with probability ``text_prob`` and the audio codes
otherwise: at generation time the codes come from a text prompt, so the LM must know both sides
of MuLan's modality gap. With the preset's ``cond_dropout > 0`` (classifier-free guidance, see
:mod:`melody_lab.semantic.lm`) a sequence's codes are replaced by the learnt null prefix with that
probability, drawn from the step's generator (resume stays exact). Validation reports perplexity (exp of the mean token cross-entropy)
with audio codes and with caption codes, next to the unigram baseline fitted on the train tokens.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from safetensors.torch import load_file, save_file

from ..config import Config
from ..data.splits import load_split
from ..errors import UserError
from ..io import component_record
from ..semantic.evaluate import bigram_cross_entropy, sequence_stats, unigram_cross_entropy
from ..semantic.lm import LM_PRESETS, SemanticLM
from ..semantic.mulan import MuLan
from ..semantic.rvq import ResidualVQ
from ..semantic.tokenizer import SemanticTokenizer
from ..io import atomic_write, atomic_write_text, check_same_config, load_init, locate, resolve
from . import distributed
from .loop import LoopConfig, run_training
from .semantic_common import SemanticStageConfig, add_common_args, add_loop_args, lr_at, set_lr


@dataclass
class LMTrainConfig(Config):
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    text_prob: float = 0.5
    steps: int = 3000
    val_every: int = 250


LM_TRAIN_PRESETS = {
    "micro": LMTrainConfig(batch_size=8, lr=3e-3, warmup_steps=10, steps=100, val_every=50),
    "tiny": LMTrainConfig(),
    "paper": LMTrainConfig(batch_size=256, lr=3e-4, warmup_steps=2000, steps=300_000,
                           val_every=5000),
    "paper_micro": LMTrainConfig(batch_size=8, lr=3e-3, warmup_steps=10, steps=100, val_every=50),
}


@dataclass
class LMStageConfig(SemanticStageConfig):
    """What :func:`train_lm` trains: the LM of size ``preset`` (``LM_PRESETS``; vocabulary and
    code sizes follow the upstream runs) with the ``train`` hyper-parameters (None: the preset's,
    ``LM_TRAIN_PRESETS``). ``init_from`` (a bundle, ``tiny``, an LM export or run folder):
    start from its LM's weights (fine-tuning; its config must be the preset's)."""

    preset: str = "tiny"
    train: LMTrainConfig | None = None
    init_from: str | None = None
    TRAIN_PRESETS: ClassVar[dict] = LM_TRAIN_PRESETS


def _source_name(path: Path, kind: str) -> str:
    """The folder whose weights a cache was computed from (a run's checkpoint, or the export)."""
    return str(resolve(path, kind)[1].parent.resolve())


@torch.no_grad()
def build_cache(data, split: str, mulan_dir: Path, tokenizer_dir: Path, cache_dir: Path,
                batch: int = 32) -> dict[str, torch.Tensor]:
    """``tokens [N, T]``, ``audio_codes [N, L]``, ``text_codes [N, C, L]`` of a split (cached).

    ``text_codes[i, j]`` are the codes of clip i's caption j (clips with fewer than ``C``
    captions repeat their main caption).
    """
    meta = {"data": str(Path(data).resolve()), "split": split,
            "mulan": _source_name(mulan_dir, "mulan"),
            "tokenizer": _source_name(tokenizer_dir, "tokenizer")}
    path, meta_path = cache_dir / f"{split}.safetensors", cache_dir / f"{split}.json"
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return load_file(str(path))
    mulan, tokenizer = MuLan.from_pretrained(mulan_dir), SemanticTokenizer.from_pretrained(tokenizer_dir)
    rvq = ResidualVQ.from_pretrained(mulan_dir / "rvq")
    clips = load_split(data, split, tokenizer.config.sample_rate)
    tokens, audio_codes = [], []
    for i in range(0, len(clips.audio), batch):
        chunk = clips.audio[i: i + batch]
        tokens.append(tokenizer.tokenize(chunk))
        audio_codes.append(rvq.quantize(mulan.embed_audio(chunk)))
    width = max(len(cs) for cs in clips.caption_lists)
    padded = [cs + [cs[0]] * (width - len(cs)) for cs in clips.caption_lists]
    flat = [c for cs in padded for c in cs]
    text_codes = torch.cat([rvq.quantize(mulan.embed_text(flat[i: i + 256]))
                            for i in range(0, len(flat), 256)]).view(len(padded), width, -1)
    out = {"tokens": torch.cat(tokens), "audio_codes": torch.cat(audio_codes),
           "text_codes": text_codes}
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(out, str(tmp)))
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return out


class LMTask:
    """A :class:`~melody_lab.train.loop.TrainTask` for the semantic LM.

    The token/code caches stay on the CPU (batches are drawn there); the model, its optimizer
    state, each batch and the loss live on ``device`` (bf16 autocast on CUDA)."""

    name = "lm"

    def __init__(self, model: SemanticLM, cfg: LMTrainConfig, train: dict, valid: dict,
                 total_steps: int, device: torch.device | str = "cpu"):
        self.model, self.cfg, self.train, self.valid, self.total = model, cfg, train, valid, total_steps
        self.device = torch.device(device)
        model.to(self.device)
        distributed.broadcast_parameters(model)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     betas=(0.9, 0.95))
        self.unigram = unigram_cross_entropy(train["tokens"], valid["tokens"],
                                             model.config.semantic_vocab)

    def modules(self):
        return {"lm": self.model}

    def optimizers(self):
        return {"opt": self.opt}

    def _crop(self, tokens: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        t = self.model.config.max_tokens
        return torch.stack([row[s: s + t] for row, s in zip(tokens, starts)])

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        tokens = self.train["tokens"]
        idx = torch.randperm(len(tokens), generator=generator)[: self.cfg.batch_size]
        span = max(0, tokens.shape[1] - self.model.config.max_tokens)
        starts = torch.randint(0, span + 1, (len(idx),), generator=generator)
        use_text = torch.rand(len(idx), generator=generator) < self.cfg.text_prob
        text_codes = self.train["text_codes"][idx]  # [B, C, L]
        which = torch.randint(0, text_codes.shape[1], (len(idx),), generator=generator)
        codes = torch.where(use_text[:, None], text_codes[torch.arange(len(idx)), which],
                            self.train["audio_codes"][idx])
        null = None  # CFG dropout: drawn only when asked, so runs without it keep their stream
        if self.model.config.cond_dropout > 0:
            null = torch.rand(len(idx), generator=generator) < self.model.config.cond_dropout
            null = null.to(self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss = self.model.loss(codes.to(self.device),
                                   self._crop(tokens[idx], starts).to(self.device), null).float()
        set_lr(self.opt, lr_at(step, self.cfg.lr, self.cfg.warmup_steps, self.total))
        self.opt.zero_grad()
        loss.backward()
        distributed.average_gradients(self.model)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return {"loss": loss.item()}

    def _nll(self, codes: torch.Tensor) -> float:
        tokens = self.valid["tokens"][:, : self.model.config.max_tokens]
        total = 0.0
        for i in range(0, len(tokens), 64):
            total += self.model.loss(codes[i: i + 64].to(self.device),
                                     tokens[i: i + 64].to(self.device)).item() \
                * len(tokens[i: i + 64])
        return total / len(tokens)

    def validate(self) -> dict[str, float]:
        """Perplexity with audio codes, with main-caption codes, and of the unigram baseline."""
        audio = self._nll(self.valid["audio_codes"])
        text = self._nll(self.valid["text_codes"][:, 0])
        return {"nll": audio, "ppl": math.exp(audio), "ppl_text_codes": math.exp(text),
                "ppl_unigram": math.exp(self.unigram)}


def _with_cond_dropout(lm: SemanticLM, cond_dropout: float) -> SemanticLM:
    """``lm``'s weights in a model with another ``cond_dropout`` (fine-tuning an LM trained
    without classifier-free guidance dropout with it: its null prefix starts fresh, std 0.02)."""
    model = SemanticLM(lm.config.replace(cond_dropout=cond_dropout))
    state = {k: v for k, v in lm.state_dict().items() if k != "null_prefix"}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - {"null_prefix"} or unexpected:
        raise RuntimeError(f"LM state mismatch: missing {missing}, unexpected {unexpected}")
    return model.train()


def train_lm(config: LMStageConfig, data, out, loop: LoopConfig | None = None, *,
             mulan: str | Path, tokenizer: str | Path) -> dict:
    """Cache tokens/codes, then train (or resume) the LM into ``out``; ``mulan`` (with its
    ``rvq/``) and ``tokenizer`` are the upstream run folders or exports."""
    loop = loop or config.loop()
    device = distributed.setup()
    out, mulan_dir, tokenizer_dir = Path(out), locate(mulan), locate(tokenizer)
    if not (mulan_dir / "rvq" / "config.json").is_file():
        raise UserError(f"{mulan_dir} has no rvq/ folder: train MuLan with `melody-lab train "
                        f"mulan` (it fits the RVQ at the end)")
    rvq = ResidualVQ.from_pretrained(mulan_dir / "rvq")
    vocab = SemanticTokenizer.from_pretrained(tokenizer_dir).config.vocab_size
    preset = config.preset
    cfg = LM_PRESETS[preset].replace(semantic_vocab=vocab, mulan_levels=rvq.config.levels,
                                     mulan_codebook_size=rvq.config.codebook_size)
    init, provenance = None, {}
    if config.init_from is not None:  # checked before anything is written
        init, provenance = load_init("lm", config.init_from)
        # max_tokens is a length, cond_dropout a training setting (plus the null prefix, which
        # _with_cond_dropout adds or drops): neither needs the source to match
        fields = [f for f in cfg.to_dict() if f not in ("max_tokens", "cond_dropout")]
        check_same_config(f"--init-from {config.init_from}", init.config.to_dict(),
                          cfg.to_dict(), fields)
    train = build_cache(data, "train", mulan_dir, tokenizer_dir, out / "cache")
    valid = build_cache(data, "valid", mulan_dir, tokenizer_dir, out / "cache")
    tcfg = config.train
    torch.manual_seed(loop.seed)
    if init is not None and init.config.cond_dropout != cfg.cond_dropout:
        init = _with_cond_dropout(init, cfg.cond_dropout)
    model = init if init is not None else SemanticLM(
        cfg.replace(max_tokens=min(cfg.max_tokens, train["tokens"].shape[1])))
    task = LMTask(model, tcfg, train, valid, total_steps=loop.max_steps, device=device)
    record = {"model": component_record(model), "train": tcfg.to_dict(), "preset": preset,
              "mulan": str(mulan_dir.resolve()), "tokenizer": str(tokenizer_dir.resolve()),
              **provenance}
    return run_training(task, out, loop, record)


@torch.no_grad()
def evaluate_lm(lm_run: str | Path, data: str | Path, split: str = "valid",
                sampling: tuple[tuple[float, int | None], ...] = ((1.0, None), (1.0, 50),
                                                                   (0.8, 50), (0.0, None))) -> dict:
    """Perplexities of a ``melody-lab train lm`` run on ``split`` next to baselines, and the
    statistics of sampled sequences (one per clip, from its main caption's codes) per setting.

    Perplexity rows: conditioned on the clip's audio codes, its caption codes, *another* clip's
    codes (does the conditioning matter?), and add-one unigram / bigram models of the train tokens.
    The run's token/code cache (``RUN/cache``, see :func:`build_cache`) is reused or built.
    """
    run = Path(lm_run)
    record = json.loads((run / "config.json").read_text())
    mulan_dir, tok_dir = Path(record["mulan"]), Path(record["tokenizer"])
    lm = SemanticLM.from_pretrained(run).eval()
    vocab, length = lm.config.semantic_vocab, lm.config.max_tokens
    train = build_cache(data, "train", mulan_dir, tok_dir, run / "cache")["tokens"]
    cache = build_cache(data, split, mulan_dir, tok_dir, run / "cache")
    tokens = cache["tokens"][:, :length]

    def ppl(codes: torch.Tensor) -> float:
        total = sum(lm.loss(codes[i: i + 64], tokens[i: i + 64]).item() * len(tokens[i: i + 64])
                    for i in range(0, len(tokens), 64))
        return math.exp(total / len(tokens))

    other = torch.roll(torch.arange(len(tokens)), 1)
    report = {"split": split, "clips": len(tokens), "ppl_audio_codes": ppl(cache["audio_codes"]),
              "ppl_caption_codes": ppl(cache["text_codes"][:, 0]),
              "ppl_other_clip_codes": ppl(cache["audio_codes"][other]),
              "ppl_unigram": math.exp(unigram_cross_entropy(train, tokens, vocab)),
              "ppl_bigram": math.exp(bigram_cross_entropy(train, tokens, vocab)),
              "real": sequence_stats(tokens, tokens, vocab), "sampling": {}}
    for temperature, top_k in sampling:
        sampled = lm.generate(cache["text_codes"][:, 0], tokens.shape[1], temperature, top_k, seed=0)
        report["sampling"][f"temperature={temperature},top_k={top_k}"] = \
            sequence_stats(sampled, tokens, vocab)
    return report


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "lm", help="train the semantic LM (MuLan codes → semantic tokens)",
        description="Train the LLaMA-style semantic LM on a built corpus, tokenized with a trained "
        "tokenizer and conditioned on the codes of a trained MuLan + RVQ.")
    add_common_args(parser, list(LM_PRESETS))
    parser.add_argument("--mulan", required=True, help="MuLan run folder (with rvq/), or a bundle "
                        "folder / 'tiny' (its mulan/ + rvq/)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer run folder, export, or "
                        "bundle folder / 'tiny'")
    parser.add_argument("--init-from", default=None, metavar="BUNDLE_OR_RUN",
                        help="fine-tune: start from the LM of a bundle folder, 'tiny' (the shipped "
                        "bundle) or an LM run folder (its config must match --preset)")
    parser.add_argument("--text-prob", type=float, default=None, metavar="P",
                        help="share of training sequences conditioned on a caption's codes (the "
                        "rest on the clip's audio codes); default: the preset's (tiny 0.5)")
    add_loop_args(parser)
