"""Measure the trained semantic stage on a corpus split.

    from melody_lab.semantic import MuLan
    from melody_lab.semantic.evaluate import evaluate_mulan
    report = evaluate_mulan(MuLan.from_pretrained("runs/mulan_tiny"), "data/tiny", "test")
    from melody_lab.train.lm import evaluate_lm          # an LM training run and its token cache
    report = evaluate_lm("runs/lm_tiny", "data/tiny", "valid")   # perplexities + baselines

MuLan: text → audio retrieval (``retrieval.py``) and zero-shot attribute classification. LM:
the n-gram baselines and sequence statistics ``train.lm.evaluate_lm`` reports.

Zero-shot classification: for an attribute (e.g. ``genre``) with values ``v_1 … v_K`` in the
split, each clip is assigned the value whose text prompt (``template.format(value)``) has the
highest cosine to the clip's audio embedding; accuracy is reported next to the majority-class rate
and 1/K. Only attributes with a prompt template are scored, over the clips that have a value,
when there are 2 … ``max_values`` values.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from .mulan import MuLan
from .retrieval import retrieval_metrics

# Prompt per attribute (``{}`` is the value); the corpus's captions use these words (docs/corpus.md).
DEFAULT_TEMPLATES = {"genre": "a {}", "instrument": "played on the {}", "mode": "a tune in {}",
                     "key": "a tune in {}",
                     "tempo_word": "a {} tune", "origin": "{} music", "meter": "in {} time",
                     "ensemble": "played by a {}"}


def _attribute_table(attributes: list[dict]) -> list[dict]:
    """Flatten the corpus schema: a single instrument becomes ``instrument`` (its name)."""
    rows = []
    for a in attributes:
        row = {k: v for k, v in a.items() if not isinstance(v, (dict, list))}
        instruments = a.get("instruments")
        if isinstance(instruments, list) and len(instruments) == 1:
            first = instruments[0]
            row["instrument"] = first.get("name") if isinstance(first, dict) else first
        if a.get("tonic") and a.get("mode") in ("major", "minor"):  # the 24 keys a caption names
            row["key"] = f"{a['tonic']} {a['mode']}"
        rows.append(row)
    return rows


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
    from ..data.splits import load_split
    from .retrieval import caption_index

    mulan.eval()
    clips = load_split(data, split, mulan.config.sample_rate)
    audio = torch.cat([mulan.embed_audio(clips.audio[i: i + 64])
                       for i in range(0, len(clips.audio), 64)])
    unique, cap_idx = caption_index(clips.captions)
    text = mulan.embed_text(unique)[cap_idx]
    report = {"split": split, "retrieval": retrieval_metrics(text, audio, cap_idx),
              "distinct_captions": len(unique), "zero_shot": {}}
    templates = {**DEFAULT_TEMPLATES, **(templates or {})}
    table = _attribute_table(clips.attributes)
    for key in sorted(templates):
        keep = [i for i, row in enumerate(table) if row.get(key) is not None]
        labels = [table[i][key] for i in keep]
        if len(keep) < 10 or not 2 <= len(set(map(str, labels))) <= max_values:
            continue
        result = zero_shot_accuracy(mulan, audio[keep], labels, templates[key])
        report["zero_shot"][key] = {**result, "n": len(keep)}
    return report


def unigram_cross_entropy(train_tokens: torch.Tensor, eval_tokens: torch.Tensor, vocab: int) -> float:
    """Nats per token of ``eval_tokens`` under add-one-smoothed train token frequencies."""
    counts = torch.bincount(train_tokens.flatten(), minlength=vocab).double() + 1
    logp = (counts / counts.sum()).log()
    return -logp[eval_tokens.flatten()].mean().item()


def bigram_cross_entropy(train_tokens: torch.Tensor, eval_tokens: torch.Tensor, vocab: int) -> float:
    """Nats per token of ``eval_tokens [N, T]`` under an add-one bigram of ``train_tokens``
    (the first token of each sequence under the add-one unigram)."""
    counts = torch.ones(vocab, vocab, dtype=torch.float64)
    counts.index_put_((train_tokens[:, :-1].flatten(), train_tokens[:, 1:].flatten()),
                      torch.ones(train_tokens[:, 1:].numel(), dtype=torch.float64), accumulate=True)
    logp = (counts / counts.sum(1, keepdim=True)).log()
    first = unigram_cross_entropy(train_tokens, eval_tokens[:, :1], vocab) * len(eval_tokens)
    return (first - logp[eval_tokens[:, :-1], eval_tokens[:, 1:]].sum().item()) / eval_tokens.numel()


def sequence_stats(tokens: torch.Tensor, real: torch.Tensor, vocab: int) -> dict[str, float]:
    """Repeat rate, distinct tokens per sequence, and JS divergence (nats) of the histogram
    of ``tokens`` from that of ``real``."""
    def hist(x):
        h = torch.bincount(x.flatten(), minlength=vocab).double()
        return h / h.sum()

    p, q = hist(tokens), hist(real)
    m = 0.5 * (p + q)

    def kl(a, b):
        return (a[a > 0] * (a[a > 0] / b[a > 0]).log()).sum().item()

    return {"repeat_rate": (tokens[:, 1:] == tokens[:, :-1]).float().mean().item(),
            "distinct_per_sequence": sum(len(t.unique()) for t in tokens) / len(tokens),
            "js_divergence_vs_real": 0.5 * kl(p, m) + 0.5 * kl(q, m)}
