"""Text–audio agreement: CLAP score and MCC (the paper's MuLan cycle consistency).

Both are the mean cosine similarity between the embedding of each prompt text and the embedding of
the audio generated from it, under a joint text–audio model with the MuLan-like interface

    embed_text(list[str]) -> [B, E]        embed_audio(audio [B, T]) -> [B, E]     (L2-normalised)

- **CLAP score**: under an *evaluation* model that the generator never saw (the project's
  evaluation CLAP, or LAION-CLAP through ``build_embedder("laion_clap", …)``).
- **MCC**: the same computation under the generator's *own* MuLan (the paper's metric; it measures
  self-consistency, so it can be gamed by the generator and is no substitute for a CLAP score).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Protocol, Sequence

import numpy as np
import torch

from ..audio import resample
from .embedders import as_clip_list


class TextAudioModel(Protocol):
    """Anything with MuLan's two towers; audio is resampled to ``model.sample_rate`` (or
    ``model.config.sample_rate``) when the model has one."""

    def embed_text(self, texts: list[str]): ...

    def embed_audio(self, audio): ...


@dataclass(frozen=True)
class TextAudioScore:
    """Mean (and std) of per-item text–audio cosines; ``metric`` is ``"clap_score"`` or ``"mcc"``."""

    metric: str
    score: float
    std: float
    n: int
    model: str
    cosines: tuple[float, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def _unit_norm_rows(emb) -> np.ndarray:
    if torch.is_tensor(emb):
        emb = emb.detach().cpu().double().numpy()
    emb = np.asarray(emb, dtype=np.float64)
    return emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)


def model_sample_rate(model) -> int | None:
    """``model.sample_rate``, else ``model.config.sample_rate`` (MuLan), else None."""
    return getattr(model, "sample_rate", None) or getattr(getattr(model, "config", None), "sample_rate", None)


def model_name(model, fallback: str | None = None) -> str:
    return fallback or getattr(model, "name", None) or type(model).__name__


@contextmanager
def _eval_mode(model):
    """Run ``nn.Module`` models in eval mode without gradients; restore their mode after."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train()


def embed_text_batches(model: TextAudioModel, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """Unit-norm float64 text embeddings ``[N, E]``."""
    with _eval_mode(model):
        return np.concatenate([_unit_norm_rows(model.embed_text([str(t) for t in texts[i:i + batch_size]]))
                               for i in range(0, len(texts), batch_size)])


def embed_audio_batches(model: TextAudioModel, audio, sample_rate: int | None = None,
                        batch_size: int = 16) -> np.ndarray:
    """Unit-norm float64 audio embeddings ``[N, E]``.

    ``audio``: ``[N, T]`` or a list of N 1-D clips at ``sample_rate`` (resampled to
    ``model.sample_rate`` when both are known); ragged clips are embedded one at a time.
    """
    clips = as_clip_list(audio)
    target_sr = model_sample_rate(model)
    if sample_rate is not None and target_sr is not None:
        clips = [resample(c, sample_rate, target_sr) for c in clips]
    out = []
    with _eval_mode(model):
        for start in range(0, len(clips), batch_size):
            batch = clips[start:start + batch_size]
            if len({len(c) for c in batch}) == 1:
                out.append(_unit_norm_rows(model.embed_audio(torch.from_numpy(np.stack(batch)))))
            else:
                out += [_unit_norm_rows(model.embed_audio(torch.from_numpy(c[None]))) for c in batch]
    return np.concatenate(out)


def text_audio_cosines(model: TextAudioModel, prompts: Sequence[str], audio, sample_rate: int | None = None,
                       batch_size: int = 16) -> np.ndarray:
    """Per-item cosine between prompt ``i`` and clip ``i``: ``[N]`` float64 in [-1, 1]."""
    sound = embed_audio_batches(model, audio, sample_rate, batch_size)
    if len(sound) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(sound)} audio clips")
    text = embed_text_batches(model, prompts, batch_size)
    return np.sum(text * sound, axis=1)


def _score(metric: str, cosines: np.ndarray, name: str) -> TextAudioScore:
    return TextAudioScore(metric, float(cosines.mean()), float(cosines.std()), len(cosines), name,
                          tuple(float(c) for c in cosines))


def clap_score(model: TextAudioModel, prompts: Sequence[str], audio, sample_rate: int | None = None, *,
               name: str | None = None, batch_size: int = 16) -> TextAudioScore:
    """CLAP score: mean cosine(prompt, audio) under an *evaluation* text–audio model."""
    cosines = text_audio_cosines(model, prompts, audio, sample_rate, batch_size)
    return _score("clap_score", cosines, model_name(model, name))


def mulan_cycle_consistency(mulan: TextAudioModel, prompts: Sequence[str], audio, sample_rate: int | None = None,
                            *, name: str | None = None, batch_size: int = 16) -> TextAudioScore:
    """MCC (MuLan cycle consistency, the paper's metric): mean cosine(prompt, audio) under the
    *generator's own* MuLan. Pass that MuLan; report it as MCC, never as a CLAP score."""
    cosines = text_audio_cosines(mulan, prompts, audio, sample_rate, batch_size)
    return _score("mcc", cosines, model_name(mulan, name))
