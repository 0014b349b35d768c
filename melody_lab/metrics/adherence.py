"""Prompt adherence from a transcription: does the clip play the prompted key, mode and tempo?

Pure numpy on note arrays ``[K, 4]`` (onset s, offset s, MIDI pitch, amplitude) such as
:class:`~melody_lab.metrics.transcription.BasicPitchTranscriber` gives, compared with the attributes of
the corpus clip whose caption was the prompt (``tonic``, ``mode``, ``tempo_bpm``).

- **Key** (:func:`estimate_key`: best of the 24 Krumhansl–Kessler profiles). ``key_match``: tonic and
  mode equal (enharmonics equal); ``key_score``: the MIREX weighted score (1 same key, 0.5 a fifth
  above, 0.3 relative, 0.2 parallel, else 0); ``mode_match``: major/minor equal. Only prompts in
  major or minor count (a KK estimate is never modal); others are NaN — not applicable.
- **Tempo** (:func:`estimate_tempo`): the lag of the highest peak of the onset autocorrelation
  between 30 and 300 bpm, weighted by a log-normal prior centred on 120 bpm with one octave of
  spread (librosa's default beat-tracker prior). MIREX-style: ``tempo_acc1`` = within 8 % of the
  prompted bpm; ``tempo_acc2`` = within 8 % of bpm × {1, 2, 3, ½, ⅓} (octave/metrical-level errors
  allowed); ``tempo_octave_error`` = acc2 but not acc1. The corpus's ``tempo_bpm`` counts beats
  of the written meter (dotted quarters in 6/8), so factor-3 errors are expected on compound meters.
"""
from __future__ import annotations

import math

import numpy as np

from .musicality import PITCH_CLASSES, estimate_key, onset_autocorrelation

TEMPO_TOLERANCE = 0.08
METRICAL_FACTORS = (1.0, 2.0, 3.0, 0.5, 1.0 / 3.0)
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def pitch_class(name: str) -> int:
    """``"C#"``, ``"Db"``, ``"Bb"``, ``"F♯"`` … → 0–11; ValueError for anything else."""
    text = name.strip().replace("♯", "#").replace("♭", "b")
    if not text or text[0].upper() not in _LETTERS or any(c not in "#b" for c in text[1:]):
        raise ValueError(f"not a pitch name: {name!r}")
    return (_LETTERS[text[0].upper()] + text.count("#") - text.count("b")) % 12


def parse_key(key: str) -> tuple[int, str]:
    """``"D minor"`` → (2, "minor"); the mode is lower-cased (``major``, ``minor``, ``dorian`` …)."""
    tonic, _, mode = key.strip().partition(" ")
    return pitch_class(tonic), mode.strip().lower()


def key_score(reference: str, estimate: str) -> float:
    """MIREX weighted key score of ``estimate`` against ``reference`` (both ``"<tonic> major|minor"``)."""
    ref_tonic, ref_mode = parse_key(reference)
    est_tonic, est_mode = parse_key(estimate)
    up = (est_tonic - ref_tonic) % 12
    if up == 0 and est_mode == ref_mode:
        return 1.0
    if est_mode == ref_mode and up == 7:
        return 0.5
    if (ref_mode, est_mode, up) in (("major", "minor", 9), ("minor", "major", 3)):
        return 0.3
    if up == 0:
        return 0.2
    return 0.0


def estimate_tempo(onsets, duration_s: float, prior_bpm: float = 120.0, prior_octaves: float = 1.0,
                   bpm_range: tuple[float, float] = (30.0, 300.0)) -> float:
    """Onset times (s) → tempo (bpm) from the prior-weighted onset autocorrelation; NaN when fewer
    than 3 distinct onsets or no lag of the range fits in half the clip."""
    onsets = np.unique(np.round(np.asarray(onsets, dtype=np.float64), 2))
    if len(onsets) < 3:
        return math.nan
    lags, ac = onset_autocorrelation(onsets, duration_s)
    bpm = np.divide(60.0, lags, out=np.full_like(lags, np.inf), where=lags > 0)
    window = (bpm >= bpm_range[0]) & (bpm <= bpm_range[1]) & (lags <= duration_s / 2)
    if not window.any():
        return math.nan
    prior = np.exp(-0.5 * (np.log2(bpm[window] / prior_bpm) / prior_octaves) ** 2)
    return float(bpm[window][np.argmax(np.maximum(ac[window], 0.0) * prior)])


def tempo_accuracy(reference_bpm: float, estimate_bpm: float) -> tuple[float, float]:
    """(acc1, acc2) ∈ {0, 1} of one estimate (see module docstring); (NaN, NaN) for a NaN estimate."""
    if not (math.isfinite(estimate_bpm) and reference_bpm and reference_bpm > 0):
        return math.nan, math.nan
    close = [abs(estimate_bpm - f * reference_bpm) <= TEMPO_TOLERANCE * f * reference_bpm
             for f in METRICAL_FACTORS]
    return float(close[0]), float(any(close))


def clip_adherence(notes, duration_s: float, attributes: dict) -> dict:
    """One clip's notes ``[K, 4]`` vs the prompt's attributes (``tonic``, ``mode``, ``tempo_bpm``) →
    ``{estimated_key, key_match, key_score, mode_match, estimated_bpm, tempo_acc1, tempo_acc2,
    tempo_octave_error}`` (NaN where not applicable)."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    estimated, _ = estimate_key(notes)
    out = {"estimated_key": estimated, "key_match": math.nan, "key_score": math.nan, "mode_match": math.nan}
    tonic, mode = attributes.get("tonic"), str(attributes.get("mode") or "").lower()
    if tonic and mode in ("major", "minor"):
        reference = f"{PITCH_CLASSES[pitch_class(tonic)]} {mode}"
        if estimated is None:
            out.update(key_match=0.0, key_score=0.0, mode_match=0.0)
        else:
            out.update(key_match=float(parse_key(estimated) == parse_key(reference)),
                       key_score=key_score(reference, estimated),
                       mode_match=float(estimated.split()[1] == mode))
    bpm = estimate_tempo(notes[:, 0], duration_s)
    acc1, acc2 = tempo_accuracy(attributes.get("tempo_bpm") or 0.0, bpm)
    if math.isnan(bpm) and attributes.get("tempo_bpm"):
        acc1 = acc2 = 0.0  # a prompted tempo and no measurable pulse: a miss, not "not applicable"
    out.update(estimated_bpm=bpm, tempo_acc1=acc1, tempo_acc2=acc2,
               tempo_octave_error=acc2 - acc1 if not math.isnan(acc1) else math.nan)
    return out
