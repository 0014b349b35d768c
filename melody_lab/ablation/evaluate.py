"""Evaluate one configuration: generate from the fixed prompt set, then every metric with its CI.

The evaluation set is fixed by the grid, never by the configuration: the first ``eval.prompts``
captions of ``eval.split`` in a seed-independent hash order of clip ids (cycling through each
clip's alternative captions when more prompts than clips are asked for), each generated once per
seed in ``eval.seeds``. So n = prompts × len(seeds) for every row, and all rows see the same prompts.

Attribute accuracy: each prompt is a caption of a real clip, so the generated clip "should" have that
clip's attributes (genre, mode, tempo class, solo instrument). The evaluation CLAP classifies them
zero-shot (one text prompt per class, :data:`ATTRIBUTES`); the same classifier on the real clips of
the evaluation split against their own attributes is the ceiling. A caption does not mention every
attribute (a prompt may name only the genre), which lowers both numbers alike.
"""
from __future__ import annotations

import hashlib
import math
import re
import time

import numpy as np
import torch

from ..errors import UserError
from .grid import Configuration, EvalSection


def column_name(embedder: str) -> str:
    """``evalclap-tiny`` → ``evalclap_tiny`` (a CSV-friendly column stem)."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", embedder).strip("_").lower()


def _solo_instrument(row: dict) -> str | None:
    instruments = row.get("instruments") or []
    return instruments[0]["name"] if len(instruments) == 1 else None


#: attribute column → (its value in a corpus row or a ClipDataset ``attributes`` dict, class prompt)
ATTRIBUTES = {
    "genre": (lambda r: r.get("genre"), "a {value}"),
    "mode": (lambda r: r.get("mode"), "a tune in a {value} key"),
    "tempo": (lambda r: r.get("tempo_word"), "a {value} tune"),
    "instrument": (_solo_instrument, "solo {value}"),
}


def attribute_labels(row: dict, attributes: dict = ATTRIBUTES) -> dict:
    """``{attribute: value or None}`` of one corpus row (``attributes``: a table like :data:`ATTRIBUTES`)."""
    return {key: read(row) for key, (read, _) in attributes.items()}


def attribute_class_prompts(corpus, attributes: dict = ATTRIBUTES) -> dict[str, dict[str, str]]:
    """``{attribute: {value: prompt}}`` over every value found in the corpus (all splits); an
    attribute with fewer than 2 values is left out (``attributes``: a table like :data:`ATTRIBUTES`)."""
    from ..data import load_metadata
    from ..metrics import attribute_prompts

    values = {key: set() for key in attributes}
    for row in load_metadata(corpus):
        for key, value in attribute_labels(row, attributes).items():
            if value is not None:
                values[key].add(str(value))
    return {key: attribute_prompts(sorted(vals), attributes[key][1])
            for key, vals in values.items() if len(vals) >= 2}


def prompted_rows(corpus, split: str, count: int) -> list[tuple[dict, str]]:
    """``count`` (corpus row, caption) pairs of ``split`` in the fixed order of the module docstring."""
    from ..data import load_metadata

    rows = [r for r in load_metadata(corpus) if split == "all" or r["split"] == split]
    if not rows:
        raise UserError(f"split {split!r} of {corpus} has no clips to take prompts from")
    rows.sort(key=lambda r: hashlib.sha256(r["clip_id"].encode()).hexdigest())
    pairs = []
    for i in range(count):
        row = rows[i % len(rows)]
        captions = row.get("captions") or [row["caption"]]
        pairs.append((row, captions[(i // len(rows)) % len(captions)]))
    return pairs


def evaluation_set(corpus, split: str, count: int) -> tuple[list[str], list[dict]]:
    """``count`` captions of ``split`` in a fixed order (see module docstring) and the attribute
    labels (:func:`attribute_labels`) of the clip each caption describes."""
    pairs = prompted_rows(corpus, split, count)
    return [caption for _, caption in pairs], [attribute_labels(row) for row, _ in pairs]


def prompt_targets(corpus, split: str, count: int) -> list[dict]:
    """For the same prompts as :func:`evaluation_set`: ``tonic``, ``mode``, ``tempo_bpm`` and
    ``clip_id`` of the clip each caption describes (transcription adherence, control rows)."""
    return [{k: row.get(k) for k in ("tonic", "mode", "tempo_bpm", "clip_id")}
            for row, _ in prompted_rows(corpus, split, count)]


def attribute_accuracy_columns(clap_model, audio, sample_rate: int, labels: list[dict],
                               class_prompts: dict, suffix: str = "") -> tuple[dict, dict]:
    """Zero-shot accuracy per attribute and their mean → (``attr_<name><suffix>`` columns, detail).

    ``labels``: one :func:`attribute_labels` dict per clip of ``audio [N, T]``. Without a CLAP
    model every column is NaN (never another model's numbers).
    """
    from ..metrics import zero_shot_attribute_accuracy

    names = [f"attr_{k}{suffix}" for k in ATTRIBUTES] + [f"attr_mean{suffix}"]
    if clap_model is None or not class_prompts:
        return {n: math.nan for n in names}, {}
    results = zero_shot_attribute_accuracy(clap_model, audio, labels, class_prompts, sample_rate)
    columns = {f"attr_{k}{suffix}": results[k].accuracy if k in results else math.nan
               for k in ATTRIBUTES}
    found = [r.accuracy for r in results.values()]
    columns[f"attr_mean{suffix}"] = float(np.mean(found)) if found else math.nan
    return columns, {k: r.to_dict() for k, r in results.items()}


def build_embedders(names: list[str]) -> tuple[dict, dict[str, str]]:
    """``{name: Embedder}`` for those that can be built, and ``{name: reason}`` for those that cannot."""
    from ..metrics import build_embedder

    built, skipped = {}, {}
    for name in names:
        try:
            built[name] = build_embedder(name)
        except (UserError, KeyError, ValueError) as err:
            skipped[name] = f"skipped: {err}"
    return built, skipped


@torch.no_grad()
def generate_set(model, config: Configuration, prompts: list[str], seeds: list[int],
                 duration_s: float, batch_size: int) -> torch.Tensor:
    """Audio ``[len(prompts) · len(seeds), T]``; batch b of seed s uses generation seed 1000·s + b."""
    clips = []
    for seed in seeds:
        for b, start in enumerate(range(0, len(prompts), batch_size)):
            clips.append(model.generate(prompts[start:start + batch_size], duration_s=duration_s,
                                        steps=config.steps, schedule=config.schedule,
                                        guidance=config.guidance, seed=1000 * seed + b))
    return torch.cat(clips)


def measure_speed(model, config: Configuration, prompt: str, duration_s: float, warmup: int,
                  repeats: int):
    """RTF per stage (the pipeline's own stage timings) of one prompt, after warm-up."""
    from ..metrics import measure_rtf

    def run(timer):
        model.generate([prompt], duration_s=duration_s, steps=config.steps,
                       schedule=config.schedule, guidance=config.guidance, seed=0)
        for stage in ("mulan", "lm", "diffusion", "decode"):
            timer.seconds[stage] += model.last_timings.get(stage, 0.0)

    return measure_rtf(run, duration_s, warmup=warmup, repeats=repeats, device="cpu")


def _ci_columns(prefix: str, ci) -> dict:
    return {prefix: ci.estimate, f"{prefix}_low": ci.low, f"{prefix}_high": ci.high}


def score_audio(audio: torch.Tensor, sample_rate: int, prompts: list[str], model, embedders: dict,
                references: dict, clap_model, clap_status: str, settings: EvalSection,
                labels: list[dict] | None = None) -> tuple[dict, dict]:
    """Every quality metric of generated ``audio [n, T]`` → (CSV columns, full detail);
    ``settings``: the grid's eval section.

    FAD (+ bootstrap CI, + FAD∞ when n ≥ ``fad_infinity_min_n``) per embedder against its
    reference embeddings; CLAP score under ``clap_model`` (None: NaN with ``clap_status`` saying
    why — never replaced by another model); MCC under the generator's own MuLan. A transcribing
    embedder (``basic-pitch``) also gives the note statistics and key/tempo adherence of
    :mod:`~melody_lab.metrics.transcribed` against ``labels`` (one per clip). ``detail["per_clip"]``
    holds per-clip arrays (embeddings, cosines, adherence) for paired comparisons between rows.
    """
    from ..metrics import (bootstrap_fad_ci, bootstrap_mean_ci, clap_score, fad_infinity,
                           mulan_cycle_consistency)

    seed, resamples, confidence = 0, settings.bootstrap_resamples, settings.confidence
    columns, detail = {}, {"fad": {}, "fad_infinity": {}, "per_clip": {}}
    for name, embedder in embedders.items():
        stem = column_name(name)
        if hasattr(embedder, "transcriber"):
            emb = _score_transcriptions(embedder, audio, sample_rate, labels, references[f"{name}/notes"][0],
                                        columns, detail)
        else:
            emb = embedder.embed(audio, sample_rate)
        detail["per_clip"][f"emb_{stem}"] = emb
        ref_emb, ref_name = references[name]
        result, ci = bootstrap_fad_ci(emb, ref_emb, embedder=name, reference=ref_name,
                                      confidence=confidence, n_resamples=resamples, seed=seed)
        columns.update(_ci_columns(f"fad_{stem}", ci))
        detail["fad"][name] = {**result.to_dict(), "ci": ci.to_dict()}
        if len(emb) >= settings.fad_infinity_min_n:
            inf = fad_infinity(emb, ref_emb, embedder=name, reference=ref_name, seed=seed)
            columns[f"fad_inf_{stem}"] = inf.score
            detail["fad_infinity"][name] = inf.to_dict()
        else:
            columns[f"fad_inf_{stem}"] = math.nan
            detail["fad_infinity"][name] = f"skipped: n = {len(emb)} < fad_infinity_min_n"
    if clap_model is None:
        columns.update(clap=math.nan, clap_low=math.nan, clap_high=math.nan,
                       clap_model=settings.clap or "", clap_status=clap_status)
    else:
        clap = clap_score(clap_model, prompts, audio, sample_rate, name=settings.clap)
        detail["per_clip"]["clap"] = np.asarray(clap.cosines)
        ci = bootstrap_mean_ci(clap.cosines, confidence=confidence, seed=seed)
        columns.update(**_ci_columns("clap", ci), clap_model=settings.clap, clap_status="ok")
        detail["clap"] = {**clap.to_dict(), "ci": ci.to_dict()}
    mcc = mulan_cycle_consistency(model.mulan, prompts, audio, sample_rate, name="generator-mulan")
    ci = bootstrap_mean_ci(mcc.cosines, confidence=confidence, seed=seed)
    columns.update(**_ci_columns("mcc", ci))
    detail["mcc"] = {**mcc.to_dict(), "ci": ci.to_dict()}
    detail["per_clip"]["mcc"] = np.asarray(mcc.cosines)
    return columns, detail


def _score_transcriptions(embedder, audio, sample_rate: int, labels, reference_stats, columns: dict,
                          detail: dict) -> np.ndarray:
    """One transcription pass: note measures into ``columns``/``detail``; returns the pooled embedding."""
    from ..metrics.musicality import STATISTICS
    from ..metrics.transcribed import ADHERENCE, transcription_scores

    transcriptions = embedder.transcriber.transcribe(audio, sample_rate)
    scores, per_clip = transcription_scores(transcriptions, labels, reference_stats)
    columns.update(scores)
    detail["transcription"] = {"model": embedder.fingerprint, "estimated_keys": [c.get("estimated_key") for c in per_clip],
                               "estimated_bpm": [c.get("estimated_bpm") for c in per_clip]}
    for name in (*STATISTICS, *ADHERENCE):
        detail["per_clip"][name if name in ADHERENCE else f"notes_{name}"] = \
            np.array([c.get(name, math.nan) for c in per_clip], dtype=np.float64)
    return embedder.pool(transcriptions)


def model_metrics(model, corpus, split: str, max_clips: int = 32) -> dict:
    """Sampling-independent numbers of the configuration's codec and denoiser on real clips:
    codec reconstruction (MR-STFT, SI-SDR) and the denoiser's single-pass velocity MSE / SI-SNRi."""
    from ..data import ClipDataset
    from ..denoisers import count_parameters, single_pass_metrics
    from ..codecs.metrics import evaluate_codec

    started = time.perf_counter()
    audio = ClipDataset(corpus, split).load_all_audio()[:max_clips]
    codec = evaluate_codec(model.codec, audio)
    model.codec.eval()
    latents = torch.cat([model.codec.encode(chunk) for chunk in audio.split(8)])
    tokens = model.tokenizer.tokenize(audio)
    denoise = single_pass_metrics(model.denoiser, latents, tokens)
    return {"denoiser_params": count_parameters(model.denoiser),
            "velocity_mse": denoise["velocity_mse"], "si_snri_db": denoise["si_snri_db"],
            "codec_mr_stft": codec["mr_stft"], "codec_si_sdr": codec["si_sdr"],
            "model_eval_clips": len(audio), "model_eval_seconds": time.perf_counter() - started}


def real_attribute_accuracy(corpus, split: str, clap_model, class_prompts: dict) -> tuple[dict, dict]:
    """The ceiling: :func:`attribute_accuracy_columns` of the real clips of ``split`` against their
    own attributes (columns suffixed ``_real``)."""
    from ..data import ClipDataset

    dataset = ClipDataset(corpus, split)
    labels = [attribute_labels(row) for row in dataset.rows]
    return attribute_accuracy_columns(clap_model, dataset.load_all_audio(), dataset.sample_rate,
                                      labels, class_prompts, suffix="_real")


def reference_embeddings(corpus, split: str, embedders: dict) -> tuple[dict, int]:
    """``{name: (embeddings [N, E], reference name)}`` of the real clips of ``split``, and N; a
    transcribing embedder adds ``{name}/notes``: (note-statistics matrix [N, S], reference name)."""
    from ..data import ClipDataset

    dataset = ClipDataset(corpus, split)
    audio = dataset.load_all_audio()
    if len(audio) < 2:
        raise UserError(f"split {split!r} of {corpus} has {len(audio)} clip(s); FAD needs >= 2 "
                        f"reference clips (use eval.split: all for a micro smoke run)")
    ref_name = f"{corpus}:{split}"
    references = {}
    for name, embedder in embedders.items():
        if hasattr(embedder, "transcriber"):  # one pass: pooled embedding + note statistics
            from ..metrics.transcribed import reference_statistics

            transcriptions = embedder.transcriber.transcribe(audio, dataset.sample_rate)
            references[name] = (embedder.pool(transcriptions), ref_name)
            references[f"{name}/notes"] = (reference_statistics(transcriptions), ref_name)
        else:
            references[name] = (np.asarray(embedder.embed(audio, dataset.sample_rate)), ref_name)
    return references, len(audio)
