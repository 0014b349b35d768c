"""Where the prompt is lost: the same attribute measures on held-out real clips after each stage.

    from melody_lab import MeLoDy
    from melody_lab.ablation.diagnostic import run_diagnostic, write_diagnostic
    result = run_diagnostic(MeLoDy.from_pretrained("tiny"), "data/evalclap", n=64, progress=True)
    write_diagnostic(result, "results/diag")   # diagnostic.csv (tidy), diagnostic.md, per_clip.csv

or ``melody-lab diagnose --bundle tiny --corpus data/evalclap --n 64 --out results/diag``.

The first ``n`` clips of the corpus's split, in the fixed hash order of
:func:`~melody_lab.ablation.evaluate.prompted_rows` (the grids' evaluation order), each go
through every PATH; clip i uses seed i, the corpus's clip length and the bundle's default sampling:

    real        the clip itself
    codec       clip → codec encode → decode                              (the rendering's ceiling)
    own_tokens  clip → semantic tokenizer → DPD → codec                   (does the rendering keep it?)
    audio_plan  clip → MuLan audio tower → RVQ → LM → DPD → codec        (does the plan keep it?)
    text_plan   caption → MuLan text tower → RVQ → LM → DPD → codec      (text to music)

Every output is measured against the attributes of the real clip it came from (the caption is that
clip's first caption, which need not state every attribute — as in the grids' attribute accuracy;
``caption="names_key"`` takes instead the first of the clip's captions that names its key, where
one does, so that ``key_match_named`` applies to most clips rather than about one in five):

- ``attr_<a>``: zero-shot accuracy under the evaluation CLAP (``evalclap-tiny``, trained on works
  disjoint from the tiny corpus): the grids' genre (form), mode, tempo word and solo instrument
  (:data:`~melody_lab.ablation.evaluate.ATTRIBUTES`) plus meter and ensemble size (number of
  voices). The classes are every value the corpus has (an attribute with fewer than 2 is not
  available); a clip counts where its value is one of them.
- From one basic-pitch transcription per clip (:mod:`~melody_lab.metrics.adherence`):
  ``key_match`` (clips in a major or minor key), ``key_match_named`` (of those, the clips whose
  caption names the key), ``mode_match``, ``tempo_acc1`` / ``tempo_acc2`` against the clip's
  ``tempo_bpm``, ``notes_per_s``, ``onsets_per_s`` (:func:`onset_rate`: note onsets less than
  50 ms apart count once, so a four-voice chord is one onset — the corpus's tempo word is a
  running-note rate, which notes/s of a four-voice chorale overstates fourfold) and
  ``estimated_bpm``.
- Slow vs lively: ``notes_per_s``, ``onsets_per_s`` and ``estimated_bpm`` of the clips whose tempo
  word is ``slow`` (``*_slow``) and ``lively`` or ``fast`` (``*_lively``), and
  ``*_lively_minus_slow``.

Each value is the mean over the clips it applies to (``n``), with a 95 % percentile-bootstrap
interval over clips (a difference: each group resampled on its own).
"""
from __future__ import annotations

import csv
import io
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .evaluate import ATTRIBUTES, attribute_class_prompts, attribute_labels, prompted_rows

PATHS = ("real", "codec", "own_tokens", "audio_plan", "text_plan")
CAPTION_CHOICES = ("first", "names_key")  # which of a clip's captions is its text prompt
PATH_DESCRIPTIONS = {
    "real": "the real clip",
    "codec": "clip → codec encode/decode (the rendering's ceiling)",
    "own_tokens": "clip → its own semantic tokens → DPD → codec",
    "audio_plan": "clip → MuLan audio → RVQ → LM → DPD → codec",
    "text_plan": "caption → MuLan text → RVQ → LM → DPD → codec",
}
SLOW, LIVELY = ("slow",), ("lively", "fast")
CONFIDENCE, RESAMPLES = 0.95, 2000


def _voices(row: dict) -> str | None:
    voices = row.get("voices")
    return None if not voices else ("1 voice" if voices == 1 else f"{voices} voices")


#: the grids' attributes plus meter and ensemble size: column → (value in a corpus row, class prompt)
DIAGNOSTIC_ATTRIBUTES = {
    **ATTRIBUTES,
    "meter": (lambda r: r.get("meter"), "a tune in {value} time"),
    "ensemble_size": (_voices, "music in {value}"),
}
TRANSCRIPTION_MEASURES = ("key_match", "key_match_named", "mode_match", "tempo_acc1", "tempo_acc2",
                          "notes_per_s", "onsets_per_s", "estimated_bpm")
RATE_MEASURES = ("notes_per_s", "onsets_per_s", "estimated_bpm")
TEMPO_MEASURES = tuple(f"{m}_{g}" for m in RATE_MEASURES for g in ("slow", "lively", "lively_minus_slow"))
ONSET_MERGE_S = 0.05


def onset_rate(notes, duration_s: float, merge_s: float = ONSET_MERGE_S) -> float:
    """Distinct note onsets per second of notes ``[K, 4]`` (onset s first): an onset less than
    ``merge_s`` after the last counted one is the same onset (a chord, a transcription's jitter)."""
    onsets = np.sort(np.asarray(notes, dtype=np.float64).reshape(-1, 4)[:, 0])
    count, last = 0, -math.inf
    for onset in onsets:
        if onset - last >= merge_s:
            count, last = count + 1, onset
    return count / duration_s


def names_key(row: dict, caption: str) -> bool:
    """Whether ``caption`` names the clip's key the way captions write it ("D minor", "G Dorian")."""
    from ..data.captions import MODE_FORMS

    tonic, mode = row.get("tonic"), row.get("mode")
    if not tonic or not mode:
        return False
    forms = MODE_FORMS.get(mode, [mode])
    return any(re.search(rf"(?<![\w#]){re.escape(tonic)} {re.escape(f)}\b", caption) for f in forms)


@torch.no_grad()
def path_audio(model, path: str, clip: torch.Tensor, caption: str, seed: int) -> torch.Tensor:
    """One real ``clip [1, T]`` at ``model.sample_rate`` through ``path`` (:data:`PATHS`) →
    ``[1, T]`` float32 at ``model.sample_rate`` on the CPU (generation with ``seed``, the bundle's
    default steps, schedule and guidance)."""
    seconds = clip.shape[1] / model.sample_rate
    if path == "real":
        return clip
    if path == "codec":
        return model.codec.reconstruct(clip.to(model.device)).clamp(-1, 1).float().cpu()
    if path == "own_tokens":
        return model.render(model.tokenizer.tokenize(clip.to(model.device)), seconds, seed=seed)
    if path == "audio_plan":
        return model.generate_from_audio(clip, model.sample_rate, seconds, seed=seed)
    if path == "text_plan":
        return model.generate([caption], seconds, seed=seed)
    raise UserError(f"unknown diagnostic path {path!r}; choose from {', '.join(PATHS)}")


@dataclass
class DiagnosticResult:
    """What :func:`run_diagnostic` measured.

    ``rows``: tidy dicts (path, measure, value, lo, hi, n); ``per_clip``: path → measure →
    ``[n]`` float64 (NaN: not applicable); ``clip_ids`` / ``captions``: the n clips in order (clip i
    used seed i); ``info``: what was measured with what (bundle, corpus, models, wall time …);
    ``audio``: path → ``[n, T]`` at ``sample_rate`` (only with ``run_diagnostic(keep_audio=True)``)."""

    rows: list[dict]
    per_clip: dict[str, dict[str, np.ndarray]]
    clip_ids: list[str]
    captions: list[str]
    info: dict = field(default_factory=dict)
    audio: dict[str, torch.Tensor] | None = None
    sample_rate: int | None = None


def diagnostic_clips(corpus, split: str, n: int, caption: str = "first"
                     ) -> tuple[list[tuple[dict, str]], torch.Tensor, int]:
    """The first ``min(n, clips in split)`` (row, caption) pairs in the grids' order, their audio
    ``[n, T]`` float32 and its sample rate; ``caption`` (:data:`CAPTION_CHOICES`): the clip's first
    caption, or the first of its captions that names its key (the first caption where none does)."""
    from ..data import ClipDataset

    dataset = ClipDataset(corpus, split)
    count = min(n, len(dataset))
    if count < 2:
        raise UserError(f"split {split!r} of {corpus} has {len(dataset)} clip(s); the diagnostic "
                        f"needs >= 2 for its intervals")
    if caption not in CAPTION_CHOICES:
        raise UserError(f"unknown caption choice {caption!r}; choose from {', '.join(CAPTION_CHOICES)}")
    pairs = prompted_rows(corpus, split, count)
    if caption == "names_key":
        pairs = [(row, next((c for c in row.get("captions") or [] if names_key(row, c)), first))
                 for row, first in pairs]
    index = {row["clip_id"]: i for i, row in enumerate(dataset.rows)}
    audio = torch.stack([dataset[index[row["clip_id"]]]["audio"] for row, _ in pairs])
    return pairs, audio, dataset.sample_rate


def clip_measures(audio: torch.Tensor, sample_rate: int, pairs: list[tuple[dict, str]], clap,
                  class_prompts: dict, transcriber) -> dict[str, np.ndarray]:
    """Per-clip values of every measure (module docstring) of ``audio [n, T]``: measure → ``[n]``
    float64, NaN where a measure does not apply to a clip."""
    from ..metrics import zero_shot_predictions
    from ..metrics.adherence import clip_adherence
    from ..metrics.musicality import note_statistics

    n = len(pairs)
    labels = [attribute_labels(row, DIAGNOSTIC_ATTRIBUTES) for row, _ in pairs]
    out = {}
    predictions = zero_shot_predictions(clap, audio, class_prompts, sample_rate)
    for key in DIAGNOSTIC_ATTRIBUTES:
        values = np.full(n, math.nan)
        if key in class_prompts:
            for i, label in enumerate(labels):
                if label[key] is not None and str(label[key]) in class_prompts[key]:
                    values[i] = float(predictions[key][i] == str(label[key]))
        out[f"attr_{key}"] = values
    columns = {m: np.full(n, math.nan) for m in TRANSCRIPTION_MEASURES}
    for i, (t, (row, caption)) in enumerate(zip(transcriber.transcribe(audio, sample_rate), pairs)):
        adherence = clip_adherence(t.notes, t.duration_s, {k: row.get(k) for k in ("tonic", "mode", "tempo_bpm")})
        for m in ("key_match", "mode_match", "tempo_acc1", "tempo_acc2", "estimated_bpm"):
            columns[m][i] = adherence[m]
        columns["key_match_named"][i] = adherence["key_match"] if names_key(row, caption) else math.nan
        columns["notes_per_s"][i] = note_statistics(t.notes, t.duration_s)["notes_per_s"]
        columns["onsets_per_s"][i] = onset_rate(t.notes, t.duration_s)
    return {**out, **columns}


def majority_rates(pairs: list[tuple[dict, str]], class_prompts: dict) -> dict[str, float]:
    """The floor of each zero-shot column: the share of the clips' commonest value among those
    with a value among the classes (what always answering that value would score)."""
    from collections import Counter

    rates = {}
    for key, classes in class_prompts.items():
        values = [str(v) for v in (attribute_labels(row, DIAGNOSTIC_ATTRIBUTES)[key] for row, _ in pairs)
                  if v is not None and str(v) in classes]
        if values:
            rates[key] = Counter(values).most_common(1)[0][1] / len(values)
    return rates


def _mean_interval(values: np.ndarray, seed: int) -> tuple[float, float, float, int]:
    from ..metrics import bootstrap_mean_ci

    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return (float(finite.mean()) if len(finite) else math.nan), math.nan, math.nan, len(finite)
    ci = bootstrap_mean_ci(finite, confidence=CONFIDENCE, n_resamples=RESAMPLES, seed=seed)
    return ci.estimate, ci.low, ci.high, len(finite)


def difference_interval(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float, int]:
    """mean(a) − mean(b) of two independent groups (NaN values dropped) with a percentile-bootstrap
    interval (each group resampled with replacement on its own) → (value, lo, hi, n = len(a) + len(b))."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        value = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
        return value, math.nan, math.nan, len(a) + len(b)
    rng = np.random.default_rng(seed)
    replicates = (a[rng.integers(0, len(a), (RESAMPLES, len(a)))].mean(1)
                  - b[rng.integers(0, len(b), (RESAMPLES, len(b)))].mean(1))
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return float(a.mean() - b.mean()), float(low), float(high), len(a) + len(b)


def summarise(path: str, per_clip: dict[str, np.ndarray], tempo_words: list[str | None],
              seed: int = 0) -> list[dict]:
    """One path's per-clip values → tidy rows (path, measure, value, lo, hi, n)."""
    rows = []

    def add(measure, value, lo, hi, n):
        rows.append({"path": path, "measure": measure, "value": value, "lo": lo, "hi": hi, "n": n})

    for measure, values in per_clip.items():
        add(measure, *_mean_interval(values, seed))
    words = np.array([w or "" for w in tempo_words])
    slow, lively = np.isin(words, SLOW), np.isin(words, LIVELY)
    for measure in RATE_MEASURES:
        values = per_clip[measure]
        add(f"{measure}_slow", *_mean_interval(values[slow], seed))
        add(f"{measure}_lively", *_mean_interval(values[lively], seed))
        add(f"{measure}_lively_minus_slow", *difference_interval(values[lively], values[slow], seed))
    return rows


def run_diagnostic(model, corpus, split: str = "test", n: int = 64, paths=PATHS, progress: bool = False,
                   clap=None, transcriber=None, keep_audio: bool = False,
                   caption: str = "first") -> DiagnosticResult:
    """Every PATH of the module docstring for the first ``n`` clips of ``split`` (all of them when
    fewer), measured; ``caption``: which caption prompts ``text_plan`` (:func:`diagnostic_clips`); ``clap``: the zero-shot classifier (default ``evalclap-tiny``);
    ``transcriber``: default the process's basic-pitch transcriber. A tqdm bar on stderr with
    ``progress``; ``keep_audio`` keeps every path's clips in the result (for listening, or for
    re-scoring without generating again)."""
    from ..audio import as_batch
    from ..metrics import build_embedder
    from ..metrics.transcription import get_transcriber

    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise UserError(f"unknown diagnostic path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    started = time.perf_counter()
    pairs, audio, sample_rate = diagnostic_clips(corpus, split, n, caption)
    clap = clap if clap is not None else build_embedder("evalclap-tiny")
    transcriber = transcriber if transcriber is not None else get_transcriber()
    class_prompts = attribute_class_prompts(corpus, DIAGNOSTIC_ATTRIBUTES)
    clips = as_batch(audio, sample_rate, model.sample_rate)
    made = {p: [] for p in paths}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs) * len(paths), desc="diagnose", unit="clip")
    generate_seconds = 0.0
    for i, (row, caption) in enumerate(pairs):
        for p in paths:
            if bar is not None:
                bar.set_postfix_str(f"{p} {i + 1}/{len(pairs)}", refresh=False)
            start = time.perf_counter()
            made[p].append(path_audio(model, p, clips[i:i + 1], caption, seed=i))
            generate_seconds += time.perf_counter() - start
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    tempo_words = [row.get("tempo_word") for row, _ in pairs]
    made = {p: torch.cat(clips_of_path) for p, clips_of_path in made.items()}
    per_clip, rows = {}, []
    for p in paths:
        per_clip[p] = clip_measures(made[p], model.sample_rate, pairs, clap, class_prompts, transcriber)
        rows += summarise(p, per_clip[p], tempo_words)
    missing = [k for k in DIAGNOSTIC_ATTRIBUTES if k not in class_prompts]
    info = {"corpus": str(corpus), "split": split, "n": len(pairs), "caption": caption, "seeds": f"clip i uses seed i (0 … {len(pairs) - 1})",
            "clip_seconds": clips.shape[1] / model.sample_rate, "bundle": str(getattr(model, "bundle_dir", "")),
            "sampling": {k: model.config.to_dict()[k] for k in ("steps", "schedule", "guidance", "temperature", "top_k")},
            "classifier": f"{getattr(clap, 'name', type(clap).__name__)} {getattr(clap, 'fingerprint', '')}".strip(),
            "transcriber": getattr(transcriber, "fingerprint", type(transcriber).__name__),
            "class_prompts": class_prompts, "attributes_not_available": missing,
            "majority_rates": majority_rates(pairs, class_prompts),
            "confidence": CONFIDENCE, "bootstrap_resamples": RESAMPLES,
            "generate_seconds": generate_seconds, "wall_seconds": time.perf_counter() - started}
    return DiagnosticResult(rows, per_clip, [row["clip_id"] for row, _ in pairs],
                            [caption for _, caption in pairs], info,
                            made if keep_audio else None, model.sample_rate)


# -- output -------------------------------------------------------------------------------------
_LABELS = {"attr_genre": "form/genre", "attr_tempo": "tempo word", "attr_instrument": "solo instrument"}


def _label(measure: str) -> str:
    return _LABELS.get(measure, measure.removeprefix("attr_").replace("_", " "))


def _cell(row: dict) -> str:
    digits = 0 if "bpm" in row["measure"] else (1 if "_per_s" in row["measure"] else 2)
    value, lo, hi = row["value"], row["lo"], row["hi"]
    if not math.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}"
    return text if not (math.isfinite(lo) and math.isfinite(hi)) else f"{text} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_table(result: DiagnosticResult) -> str:
    """Three markdown tables (attributes, transcription, slow vs lively): paths as rows, measures
    as columns, cells ``value [lo, hi]``; each column header gives its n (clips it applies to)."""
    by = {(r["path"], r["measure"]): r for r in result.rows}
    paths = list(dict.fromkeys(r["path"] for r in result.rows))
    groups = [("zero-shot attribute accuracy (evaluation CLAP)", [f"attr_{k}" for k in DIAGNOSTIC_ATTRIBUTES]),
              ("from the basic-pitch transcription", list(TRANSCRIPTION_MEASURES)),
              ("slow vs lively/fast (by the clip's tempo word)", list(TEMPO_MEASURES))]
    lines = []
    for title, measures in groups:
        headers = []
        for m in measures:
            counts = sorted({by[(p, m)]["n"] for p in paths if (p, m) in by})
            n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
            headers.append(f"{_label(m)} (n={n})")
        lines += [f"**{title}**", "", "| path | " + " | ".join(headers) + " |",
                  "|---|" + "---|" * len(measures)]
        for p in paths:
            lines.append(f"| {p} | " + " | ".join(_cell(by[(p, m)]) if (p, m) in by else "–"
                                                  for m in measures) + " |")
        lines.append("")
    majority = result.info.get("majority_rates") or {}
    if majority:
        lines.append("Majority-class rate (the zero-shot floor): " + ", ".join(
            f"{_label('attr_' + k)} {v:.2f}" for k, v in majority.items()) + "; key match by chance ≈ 1/24.")
        lines.append("")
    missing = result.info.get("attributes_not_available") or []
    if missing:
        lines.append(f"Not available in this corpus (fewer than 2 classes): {', '.join(missing)}.")
        lines.append("")
    return "\n".join(lines)


def write_diagnostic(result: DiagnosticResult, out) -> dict[str, Path]:
    """``out/diagnostic.csv`` (tidy: path, measure, value, lo, hi, n), ``out/diagnostic.md`` (the
    tables), ``out/per_clip.csv`` (path, clip_id, caption, every measure) and
    ``out/diagnostic.json`` (``info``), each file written atomically; with ``result.audio``, also
    ``out/audio/<path>/<clip_id>.flac`` (the folder replaced as a whole)."""
    import json

    from ..audio import save_audio
    from ..io import atomic_folder, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tidy = io.StringIO()
    writer = csv.DictWriter(tidy, fieldnames=["path", "measure", "value", "lo", "hi", "n"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    clips = io.StringIO()
    measures = list(next(iter(result.per_clip.values())))
    writer = csv.writer(clips, lineterminator="\n")
    writer.writerow(["path", "clip_id", "seed", "caption", *measures])
    for p, values in result.per_clip.items():
        for i, clip_id in enumerate(result.clip_ids):
            writer.writerow([p, clip_id, i, result.captions[i], *(values[m][i] for m in measures)])
    files = {"csv": out / "diagnostic.csv", "markdown": out / "diagnostic.md",
             "per_clip": out / "per_clip.csv", "info": out / "diagnostic.json"}
    atomic_write_text(files["csv"], tidy.getvalue())
    atomic_write_text(files["per_clip"], clips.getvalue())
    atomic_write_text(files["info"], json.dumps(result.info, indent=1, default=str) + "\n")
    atomic_write_text(files["markdown"], markdown_table(result))
    if result.audio is not None:
        with atomic_folder(out / "audio") as folder:
            for p, clips in result.audio.items():
                for clip_id, clip in zip(result.clip_ids, clips):
                    save_audio(folder / p / f"{clip_id}.flac", clip.numpy(), result.sample_rate)
        files["audio"] = out / "audio"
    return files
