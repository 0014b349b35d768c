"""Parse one :class:`~melody_lab.data.sources.Work` with music21 into plain note lists.

The result (:class:`ParsedScore`) holds, per voice, notes as ``(onset, duration, midi_pitch)`` in
quarter notes, plus the meter and the key. Repeats are not expanded (clips are a few seconds of
the tune as written); tied notes are merged; grace notes are dropped.

Key and mode: the Irish/Scottish collections state the mode in their ``K:`` header (``Ador``,
``Gm``, ``Dmix``…), which is used as is. Essen ``K:`` headers give only a key signature and the
chorales none at all, so for those the key is estimated with music21's Krumhansl–Schmuckler
analysis (major/minor only).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from .sources import Work, corpus_root

MODE_NAMES = {"": "major", "maj": "major", "ion": "major", "m": "minor", "min": "minor",
              "aeo": "minor", "dor": "dorian", "mix": "mixolydian", "lyd": "lydian",
              "phr": "phrygian", "loc": "locrian"}
CHORALE_VOICES = ("soprano", "alto", "tenor", "bass")


class ScoreError(ValueError):
    """A work could not be turned into notes (unparseable, empty, or without a usable part)."""


@dataclass
class ParsedScore:
    """Notes of one work. ``voices[i]`` is a list of ``(onset_q, duration_q, midi_pitch)``."""

    voices: list[list[tuple[float, float, int]]]
    voice_names: list[str]
    meter: str | None  # e.g. "6/8"; None when the piece changes meter
    beat_quarters: float  # length of the meter's beat in quarter notes (dotted quarter in 6/8)
    bar_quarters: float
    tonic: str  # e.g. "F#", "Bb"
    mode: str  # major, minor, dorian, mixolydian, …
    extra: dict = field(default_factory=dict)

    @property
    def end_quarters(self) -> float:
        return max(on + dur for voice in self.voices for on, dur, _ in voice)

    def median_note_quarters(self) -> float:
        """Median note length of the top voice in quarter notes (its 'running' note value)."""
        durations = sorted(dur for _, dur, _ in self.voices[0])
        return durations[len(durations) // 2]


def header_key(key_field: str) -> tuple[str, str] | None:
    """``K:`` header → ``(tonic, mode)``, e.g. ``"Ador" → ("A", "dorian")``; None if unusable."""
    match = re.match(r"\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)", key_field)
    if not match or key_field.strip().upper().startswith("HP"):
        return None
    mode = MODE_NAMES.get(match.group(3).lower()[:3] if match.group(3).lower() != "m" else "m")
    if mode is None:
        return None
    return match.group(1).upper() + match.group(2), mode


def _tonic_name(pitch) -> str:
    return pitch.name.replace("-", "b")


def _voice_notes(stream) -> list[tuple[float, float, int]]:
    notes = []
    for element in stream.flatten().stripTies().notes:
        duration = float(element.quarterLength)
        if duration <= 0:
            continue  # grace notes
        onset = float(element.offset)
        for pitch in element.pitches:
            notes.append((onset, duration, int(pitch.midi)))
    notes.sort()
    return notes


def _meter(score) -> tuple[str | None, float, float]:
    signatures = list(score.flatten().getElementsByClass("TimeSignature"))
    if not signatures:
        return "4/4", 1.0, 4.0
    first = signatures[0]
    distinct = {ts.ratioString for ts in signatures}
    meter = first.ratioString if len(distinct) == 1 else None
    return meter, float(first.beatDuration.quarterLength), float(first.barDuration.quarterLength)


def parse_work(work: Work) -> ParsedScore:
    """music21 → :class:`ParsedScore`. Raises :class:`ScoreError` when the work is unusable."""
    from music21 import converter

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if work.kind == "abc":
                score = converter.parseData(work.locator, format="abc")
            else:
                score = converter.parse(str(corpus_root() / work.locator))
    except Exception as err:  # music21 raises many exception types on odd input
        raise ScoreError(f"music21 could not parse {work.work_id}: {err}") from err

    if work.kind == "score":
        parts = {str(p.partName or "").strip().lower(): p for p in score.parts}
        chosen = [(name, parts[name]) for name in CHORALE_VOICES if name in parts]
        if len(chosen) < 4:
            raise ScoreError(f"{work.work_id}: no soprano/alto/tenor/bass parts ({sorted(parts)})")
        voices = [_voice_notes(part.flatten()) for _, part in chosen]
        names = [name for name, _ in chosen]
    else:
        flat = score.flatten()
        voices = [_voice_notes(flat)]
        names = ["melody"]
    if any(len(v) < 4 for v in voices):
        raise ScoreError(f"{work.work_id}: fewer than 4 notes in a voice")
    meter, beat_q, bar_q = _meter(score)
    key = header_key(work.key_header) if work.collection.split()[0] in ("O'Neill's", "Ryan's", "Aird's") else None
    if key is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimated = score.analyze("key")
        key = (_tonic_name(estimated.tonic), estimated.mode)
    return ParsedScore(voices, names, meter, beat_q, bar_q, key[0], key[1])
