"""``melody-lab train mulan``: contrastive MuLan training, then the RVQ of its embeddings.

The audio side is cached as the tower's input features (log-mel, or mel + chroma + onset: no
parameters) and the frozen text tower's MiniLM features are computed once per distinct caption
(and once per counterfactual caption, below), so a step costs only the audio tower, the text
projection and the loss. With ``hard_negatives = K``, each clip's audio → text row also scores K
captions that differ from its caption in one attribute (key, bpm, tempo word, instrument or
genre; ``data.captions.counterfactual_captions``, drawn once with the stage's seed): negatives
that only a model hearing that attribute can rank below the true caption. Each step draws a batch of clips, one of each clip's
captions at random, and a random crop of ``crop_seconds`` from each, with the loop's per-step
generator (exact resume). Validation ranks the valid clips by their main caption.

When training stops (finished or out of time), the RVQ is fitted by k-means on the train-split
embeddings — audio and caption embeddings pooled, so that codes of a text prompt (inference)
and of a clip (LM training) come from one codebook — and written to ``OUT/rvq/``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..config import Config
from ..data.captions import counterfactual_captions
from ..data.splits import Split, load_split
from ..io import component_record
from ..semantic.mulan import MULAN_PRESETS, MuLan
from ..semantic.retrieval import caption_index, retrieval_metrics
from ..semantic.rvq import ResidualVQ
from ..semantic.text_tower import encode_captions
from . import distributed
from .loop import LoopConfig, run_training
from .semantic_common import SemanticStageConfig, add_common_args, add_loop_args, lr_at, set_lr


@dataclass
class MuLanTrainConfig(Config):
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    crop_seconds: float = 4.0
    steps: int = 3000  # default --max-steps (also the length of the cosine schedule)
    val_every: int = 250
    hard_negatives: int = 0  # counterfactual captions per caption (audio → text negatives)


MULAN_TRAIN_PRESETS = {
    "micro": MuLanTrainConfig(batch_size=16, lr=3e-3, warmup_steps=10, crop_seconds=1.5,
                              steps=150, val_every=50),
    "tiny": MuLanTrainConfig(batch_size=128, steps=2000, hard_negatives=4),
    "paper": MuLanTrainConfig(batch_size=512, lr=3e-4, warmup_steps=2000, crop_seconds=10.0,
                              steps=200_000, val_every=2000),
    "paper_micro": MuLanTrainConfig(batch_size=16, lr=3e-3, warmup_steps=10, crop_seconds=1.5,
                                    steps=150, val_every=50),
}


@dataclass
class MuLanStageConfig(SemanticStageConfig):
    """What :func:`train_mulan` trains: the MuLan of size ``preset`` (``MULAN_PRESETS``) with the
    ``train`` hyper-parameters (None: the preset's, ``MULAN_TRAIN_PRESETS``)."""

    preset: str = "tiny"
    train: MuLanTrainConfig | None = None
    TRAIN_PRESETS: ClassVar[dict] = MULAN_TRAIN_PRESETS


@torch.no_grad()
def cached_features(model: MuLan, audio: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Audio ``[N, T]`` → the audio tower's input features ``[N, C, frames]`` (``MuLan.features``)."""
    return torch.cat([model.features(audio[i: i + batch]) for i in range(0, len(audio), batch)])


def pad_ragged(flat: torch.Tensor, lengths: list[int], width: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of a ragged list stored back to back (``flat [sum(lengths), ...]``) → a zero-padded
    table ``[len(lengths), width, ...]`` (width: the longest row) and its mask ``[len(lengths), width]``."""
    width = max(lengths, default=0) if width is None else width
    table = flat.new_zeros(len(lengths), width, *flat.shape[1:])
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    offset = 0
    for i, length in enumerate(lengths):
        table[i, :length] = flat[offset: offset + length]
        mask[i, :length] = True
        offset += length
    return table, mask


def counterfactual_table(captions: list[str], count: int, seed: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """``U`` captions → MiniLM features of ``count`` counterfactuals each ``[U, count, 384]`` and
    a mask ``[U, count]`` of the ones that exist (a caption naming no swappable attribute has none)."""
    rng = np.random.default_rng(seed)
    variants = [counterfactual_captions(c, rng, count) for c in captions]
    unique, flat = caption_index([v for vs in variants for v in vs])
    feats = encode_captions(unique)
    return pad_ragged(feats[flat] if len(flat) else feats[:0], [len(vs) for vs in variants], count)


class MuLanTask:
    """A :class:`~melody_lab.train.loop.TrainTask` for MuLan.

    The feature caches are computed (and the text tower runs) on the CPU, with ``model`` still
    there; then the model, its optimizer state, each batch and the loss move to ``device``."""

    name = "mulan"

    def __init__(self, model: MuLan, cfg: MuLanTrainConfig, train: Split, valid: Split,
                 total_steps: int, seed: int = 0, device: torch.device | str = "cpu"):
        self.model, self.cfg, self.total = model, cfg, total_steps
        self.device = torch.device(device)
        self.mels = cached_features(model, train.audio)  # [N, C, frames]
        with torch.no_grad():
            flat = self.mels.transpose(1, 2).reshape(-1, self.mels.shape[1])
            model.audio_tower.mel_mean.copy_(flat.mean(0)[:, None])
            model.audio_tower.mel_std.copy_(flat.std(0).clamp(min=1e-3)[:, None])
        unique, flat_idx = caption_index([c for cs in train.caption_lists for c in cs])
        self.text_feats = encode_captions(unique)  # the text-tower cache: [U, 384]
        self.hard = self.hard_mask = None
        if cfg.hard_negatives:  # [U, K, 384] and [U, K]
            self.hard, self.hard_mask = counterfactual_table(unique, cfg.hard_negatives, seed)
        lengths = [len(cs) for cs in train.caption_lists]
        self.cap_count = torch.tensor(lengths)
        self.cap_table, _ = pad_ragged(flat_idx, lengths)  # [N, width]: clip i's caption ids
        self.cap_idx = self.cap_table[:, 0]  # the main caption of each clip
        self.val_mels = cached_features(model, valid.audio)
        val_unique, self.val_cap_idx = caption_index(valid.captions)
        self.val_text_feats = encode_captions(val_unique)
        # every caption's counterfactuals, for the validation's one-attribute discrimination
        self.val_hard, self.val_hard_mask = counterfactual_table(val_unique, 4, seed + 1)
        c = model.config
        self.crop = min(self.mels.shape[-1], int(cfg.crop_seconds * c.sample_rate / c.hop_length))
        model.to(self.device)
        distributed.broadcast_parameters(model)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def modules(self):
        return {"mulan": self.model}

    def optimizers(self):
        return {"opt": self.opt}

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        n, frames = len(self.mels), self.mels.shape[-1]
        idx = torch.randperm(n, generator=generator)[: self.cfg.batch_size]
        starts = torch.randint(0, frames - self.crop + 1, (len(idx),), generator=generator)
        choice = (torch.rand(len(idx), generator=generator) * self.cap_count[idx]).long()
        mel = torch.stack([self.mels[i, :, s: s + self.crop] for i, s in zip(idx, starts)])
        caps = self.cap_table[idx, choice]
        dev = self.device
        audio_emb = self.model.embed_features(mel.to(dev))
        text_emb = self.model.embed_sentence_features(self.text_feats[caps].to(dev))
        hard = mask = None
        if self.hard is not None:
            hard = self.model.embed_sentence_features(self.hard[caps].to(dev))  # [B, K, E]
            mask = self.hard_mask[caps].to(dev)
        loss = self.model.contrastive_loss(audio_emb, text_emb, caps.to(dev), hard, mask)
        set_lr(self.opt, lr_at(step, self.cfg.lr, self.cfg.warmup_steps, self.total))
        self.opt.zero_grad()
        loss.backward()
        distributed.average_gradients(self.model)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return {"loss": loss.item(), "temp": 1 / self.model.log_inv_temperature.exp().item()}

    def embed_split(self, mels: torch.Tensor, feats: torch.Tensor, cap_idx: torch.Tensor):
        """(text ``[N, E]``, audio ``[N, E]``) embeddings of CPU caches, on the task's device."""
        dev = self.device
        audio = torch.cat([self.model.embed_features(mels[i: i + 64].to(dev))
                           for i in range(0, len(mels), 64)])
        return self.model.embed_sentence_features(feats.to(dev))[cap_idx.to(dev)], audio

    def validate(self) -> dict[str, float]:
        dev, cap_idx = self.device, self.val_cap_idx
        text, audio = self.embed_split(self.val_mels, self.val_text_feats, cap_idx)
        m = retrieval_metrics(text.cpu(), audio.cpu(), cap_idx)
        loss = self.model.contrastive_loss(audio, text, cap_idx.to(dev)).item()
        # one-attribute discrimination: does a clip score its caption above every counterfactual?
        hard = self.model.embed_sentence_features(self.val_hard.to(dev))[cap_idx.to(dev)]  # [N, 4, E]
        true = (audio * text).sum(-1, keepdim=True)
        other = torch.einsum("ne,nke->nk", audio, hard).masked_fill(
            ~self.val_hard_mask[cap_idx].to(dev), -2.0)
        counterfactual_acc = (true > other).all(-1).float().mean().item()
        return {"loss": loss, "counterfactual_acc": counterfactual_acc,
                **{k: m[k] for k in ("r@1", "r@10", "median_rank", "caption_r@1", "mcc")}}

    @torch.no_grad()
    def fit_rvq(self, out_dir: Path, seed: int) -> ResidualVQ:
        """RVQ on train-split audio + caption embeddings, written to ``out_dir`` (export layout)."""
        self.model.eval()
        text, audio = self.embed_split(self.mels, self.text_feats, self.cap_idx)
        unique_text = self.model.embed_sentence_features(self.text_feats.to(self.device))
        c = self.model.config
        rvq = ResidualVQ(c.rvq_levels, c.rvq_codebook_size, c.embed_dim)
        rvq.fit(torch.cat([audio, unique_text]).cpu(), seed=seed)  # k-means on the CPU
        rvq.save_pretrained(out_dir)
        return rvq


def train_mulan(config: MuLanStageConfig, data: str | Path, out: str | Path,
                loop: LoopConfig | None = None) -> dict:
    """Train (or resume) MuLan into ``out``, then fit ``out/rvq``. Returns the final loop state.

    ``loop``: default ``config.loop()``; its ``seed`` also seeds the model and the RVQ fit."""
    loop = loop or config.loop()
    device = distributed.setup()
    cfg, tcfg = MULAN_PRESETS[config.preset], config.train
    torch.manual_seed(loop.seed)
    model = MuLan(cfg)
    train = load_split(data, "train", cfg.sample_rate)
    valid = load_split(data, "valid", cfg.sample_rate)
    task = MuLanTask(model, tcfg, train, valid, total_steps=loop.max_steps, seed=loop.seed,
                     device=device)
    del train, valid  # the task keeps the features only; free the raw audio
    record = {"model": component_record(model), "train": tcfg.to_dict(), "preset": config.preset}
    state = run_training(task, out, loop, record)
    task.fit_rvq(Path(out) / "rvq", seed=loop.seed)
    return state


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "mulan", help="train the MuLan text–audio embedding (then fit its RVQ into OUT/rvq)",
        description="Contrastive MuLan training on a built corpus; the RVQ of the embeddings is "
        "fitted at the end and written to OUT/rvq. Resumes from the newest checkpoint in --out.")
    add_common_args(parser, list(MULAN_PRESETS))
    add_loop_args(parser)
