"""Known-good and known-bad control rows, and how well each metric ranks them (Kendall τ).

With ``eval.controls: true`` the runner also scores, beside the grid's configurations:

- ``control:codec-roundtrip``: the real clip each prompt was written for, through the
  configuration's codec (encode → decode), cropped to ``eval.duration_s`` — the *good* end;
- ``control:shuffled-prompts``: the same audio scored against the prompts shifted by one (every clip
  gets another clip's caption and attributes) — *bad* for every prompt-dependent metric, neutral for
  audio-only metrics (FAD, note statistics), which leave it out of their ranking.

Together with the grid's own known-bad configurations (1 sampling step, guidance 0) they give an
expected quality order: round trip (0) < ordinary configurations (1) < known-bad rows (2).
:func:`control_agreement` reports, per metric, the rank agreement τ
(:func:`~melody_lab.metrics.stats.rank_agreement`: Kendall's τ over the pairs of rows the expected
order ranks) between that order and the metric's values (+1: every such pair in the expected order). Control rows live in OUT/controls/<key>.json
(+ .npz), apart from the configuration rows.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import torch

ROUNDTRIP, SHUFFLED = "control:codec-roundtrip", "control:shuffled-prompts"
#: metrics that depend only on the audio (no prompt): shuffled prompts cannot change them
AUDIO_ONLY_PREFIXES = ("fad_", "notes_")
#: metric column → higher is better
RANKED_METRICS_HIGHER = {"clap": True, "mcc": True, "key_match": True, "tempo_acc2": True, "attr_mean": True,
                         "notes_fd": False}


def control_key(name: str, grid, fingerprints: dict) -> str:
    blob = json.dumps({"control": name, **grid.fixed_settings(), "metric_models": fingerprints}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@torch.no_grad()
def roundtrip_audio(model, corpus, split: str, clip_ids: list[str], duration_s: float) -> torch.Tensor:
    """The real clips ``clip_ids`` (of ``split``) through ``model.codec`` → ``[N, T]`` at its rate."""
    from ..data import ClipDataset

    dataset = ClipDataset(corpus, split)
    index = {row["clip_id"]: i for i, row in enumerate(dataset.rows)}
    audio = dataset.load_all_audio()[[index[c] for c in clip_ids]]
    if dataset.sample_rate != model.sample_rate:
        raise ValueError(f"corpus at {dataset.sample_rate} Hz, codec at {model.sample_rate} Hz")
    audio = audio[:, :round(duration_s * model.sample_rate)]
    model.codec.eval()
    out = torch.cat([model.codec.decode(model.codec.encode(chunk)) for chunk in audio.split(8)])
    return out[:, :audio.shape[1]].clamp(-1.0, 1.0)


def shifted(items: list, prompts_per_seed: int) -> list:
    """Each seed's block of ``prompts_per_seed`` items rotated by one (a derangement within the block)."""
    out = []
    for start in range(0, len(items), prompts_per_seed):
        block = items[start:start + prompts_per_seed]
        out += block[1:] + block[:1]
    return out


def expected_rank(columns: dict) -> int | None:
    """0 for the round trip, 2 for a known-bad row (shuffled prompts, 1 step, guidance 0), else 1."""
    label = columns.get("label", "")
    if label == ROUNDTRIP:
        return 0
    if label == SHUFFLED or columns.get("steps") == 1 or columns.get("guidance") == 0.0:
        return 2
    return 1


def control_agreement(rows: list[dict], controls: list[dict]) -> dict[str, dict]:
    """``{metric: {"tau": τ, "rows": n}}`` over configuration rows and control rows (columns dicts)."""
    from ..metrics.stats import rank_agreement

    everything = [r["columns"] for r in rows] + [c["columns"] for c in controls]
    metrics = [k for k in everything[0] if (k.startswith("fad_") and not k.endswith(("_low", "_high")))
               or k in RANKED_METRICS_HIGHER] if everything else []
    out = {}
    for metric in dict.fromkeys(metrics):
        use = [c for c in everything if not (c.get("label") == SHUFFLED and metric.startswith(AUDIO_ONLY_PREFIXES))]
        values = [c.get(metric, math.nan) for c in use]
        values = [v if isinstance(v, (int, float)) else math.nan for v in values]
        ranks = [expected_rank(c) for c in use]
        if len(set(ranks)) < 2:
            continue
        higher = RANKED_METRICS_HIGHER.get(metric, False)
        out[metric] = {"tau": rank_agreement(ranks, values, higher_is_better=higher),
                       "rows": int(np.isfinite(values).sum())}
    return out


def run_controls(grid, out, config, stages, corpus, prompts: list[str], labels: list[dict], embedders: dict,
                 references: dict, clap_model, clap_status: str, fingerprints: dict, provenance: dict) -> list[dict]:
    """Score the missing control rows into OUT/controls/ (with ``config``'s codec and MuLan); returns all.
    ``labels``: :func:`~melody_lab.ablation.evaluate.prompt_targets` of the prompts (with ``clip_id``)."""
    from ..io import atomic_write_text
    from .evaluate import score_audio
    from .runner import save_arrays

    ev, folder = grid.eval, out / "controls"
    folder.mkdir(exist_ok=True)
    keys = {name: control_key(name, grid, fingerprints) for name in (ROUNDTRIP, SHUFFLED)}
    if any(not (folder / f"{k}.json").is_file() for k in keys.values()):
        model, _ = stages.pipeline(config)
        seeds = len(ev.seeds)
        audio = roundtrip_audio(model, corpus, ev.split, [l["clip_id"] for l in labels], ev.duration_s)
        audio = audio.repeat(seeds, 1)
        for name, (use_prompts, use_labels) in {
                ROUNDTRIP: (prompts * seeds, labels * seeds),
                SHUFFLED: (shifted(prompts * seeds, len(prompts)), shifted(labels * seeds, len(prompts)))}.items():
            if (folder / f"{keys[name]}.json").is_file():
                continue
            columns, detail = score_audio(audio, model.sample_rate, use_prompts, model, embedders, references,
                                          clap_model, clap_status, ev, labels=use_labels)
            columns = {"key": keys[name], "label": name, "codec": config.codec, "n_eval": len(audio),
                       **columns}
            save_arrays(folder / f"{keys[name]}.npz", detail.pop("per_clip"))
            atomic_write_text(folder / f"{keys[name]}.json", json.dumps(
                {"key": keys[name], "control": name, "columns": columns, "detail": detail,
                 "provenance": provenance}, indent=1, default=str))
    return [json.loads((folder / f"{k}.json").read_text()) for k in keys.values()]
