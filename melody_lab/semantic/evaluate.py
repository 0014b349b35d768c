"""Measure a trained MuLan on a corpus split: retrieval and zero-shot attribute classification.

    from melody_lab.semantic import MuLan
    from melody_lab.semantic.evaluate import evaluate_mulan
    report = evaluate_mulan(MuLan.from_pretrained("runs/mulan_tiny"), "data/tiny", "test")

Zero-shot classification: for an attribute (e.g. ``genre``) with values ``v_1 … v_K`` in the
split, each clip is assigned the value whose text prompt (``template.format(value)``) has the
highest cosine to the clip's audio embedding; accuracy is reported next to the majority-class rate
and 1/K. Attributes with one value, or more than ``max_values`` values, are skipped.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from .mulan import MuLan
from .retrieval import retrieval_metrics


@torch.no_grad()
def zero_shot_accuracy(mulan: MuLan, audio_emb: torch.Tensor, labels: list,
                       template: str = "{}") -> dict[str, float]:
    """``audio_emb [N, E]`` (unit) with one label each → accuracy and chance levels."""
    values = sorted({str(v) for v in labels})
    prompts = mulan.embed_text([template.format(v) for v in values])
    predicted = (audio_emb @ prompts.T).argmax(-1)
    truth = torch.tensor([values.index(str(v)) for v in labels])
    majority = Counter(str(v) for v in labels).most_common(1)[0][1] / len(labels)
    return {"accuracy": (predicted == truth).float().mean().item(), "classes": len(values),
            "chance_majority": majority, "chance_uniform": 1 / len(values)}


@torch.no_grad()
def evaluate_mulan(mulan: MuLan, data: str | Path, split: str = "test", max_values: int = 30,
                   templates: dict[str, str] | None = None) -> dict:
    """Retrieval (text → audio, see ``retrieval.py``) and zero-shot accuracy per attribute."""
    from ..train.mulan import caption_index
    from ..train.semantic_common import load_split

    mulan.eval()
    clips = load_split(data, split, mulan.config.sample_rate)
    audio = torch.cat([mulan.embed_audio(clips.audio[i: i + 64])
                       for i in range(0, len(clips.audio), 64)])
    unique, cap_idx = caption_index(clips.captions)
    text = mulan.embed_text(unique)[cap_idx]
    report = {"split": split, "retrieval": retrieval_metrics(text, audio, cap_idx),
              "distinct_captions": len(unique), "zero_shot": {}}
    keys = sorted({k for a in clips.attributes for k in a})
    for key in keys:
        labels = [a.get(key) for a in clips.attributes]
        if any(v is None or isinstance(v, (dict, list)) for v in labels):
            continue
        if not 2 <= len(set(map(str, labels))) <= max_values:
            continue
        template = (templates or {}).get(key, "{}")
        report["zero_shot"][key] = zero_shot_accuracy(mulan, audio, labels, template)
    return report
