"""Musical choices per work: instrument(s), tempo, and the attribute record they produce.

Every genre has a pool of General-MIDI instruments with clearly different timbres (bowed, blown,
reed, plucked, struck, keyboard, voice); chorales are arranged for an ensemble, one instrument per
voice. Tempo is drawn per genre as a *running-note rate* (notes per second of the tune's median
note value), so a reel sounds like a reel whether its ABC was written in 1/8 or 1/16 notes; the
stored ``tempo_bpm`` is then in beats of the written meter (dotted quarters in 6/8).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scores import ParsedScore
from .sources import Work

# GM program (0-based) → (caption name, comfortable MIDI range low, high)
INSTRUMENTS: dict[int, tuple[str, int, int]] = {
    0: ("piano", 48, 84), 6: ("harpsichord", 48, 84), 9: ("glockenspiel", 72, 96),
    10: ("music box", 67, 91), 12: ("marimba", 55, 84), 13: ("xylophone", 65, 91),
    15: ("dulcimer", 55, 84), 19: ("pipe organ", 48, 84), 21: ("accordion", 55, 84),
    22: ("harmonica", 60, 84), 24: ("acoustic guitar", 45, 76), 40: ("violin", 60, 91),
    41: ("viola", 53, 79), 42: ("cello", 40, 67), 46: ("harp", 48, 84), 48: ("string ensemble", 48, 84),
    52: ("choir", 50, 76), 56: ("trumpet", 58, 82), 57: ("trombone", 40, 67), 58: ("tuba", 30, 55),
    60: ("French horn", 45, 72), 61: ("brass section", 48, 76), 68: ("oboe", 60, 86),
    70: ("bassoon", 36, 62), 71: ("clarinet", 52, 82), 72: ("piccolo", 74, 98), 73: ("flute", 62, 91),
    74: ("recorder", 65, 89), 75: ("pan flute", 62, 86), 105: ("banjo", 55, 81), 109: ("bagpipe", 62, 79),
    110: ("fiddle", 57, 88),
}

DANCE_POOL = (110, 73, 21, 105, 0, 46, 109, 74)
INSTRUMENT_POOLS: dict[str, tuple[int, ...]] = {
    "reel": DANCE_POOL, "jig": DANCE_POOL, "hornpipe": DANCE_POOL, "slip jig": DANCE_POOL,
    "clog": DANCE_POOL, "strathspey": (110, 109, 73, 21, 0, 46),
    "highland fling": (110, 109, 73, 21, 0, 46),
    "march": (72, 56, 109, 61, 110, 73, 21),
    "air": (46, 73, 40, 42, 0, 68, 71, 24),
    "folk song": (21, 24, 71, 74, 0, 40, 52, 68, 22),
    "ballad": (24, 0, 46, 40, 42, 52, 74),
    "children's song": (0, 13, 10, 74, 9, 12),
    "chinese folk song": (73, 75, 15, 40, 0, 46, 12),
}
# chorale ensembles: name → GM program per voice (soprano, alto, tenor, bass)
ENSEMBLES: dict[str, tuple[int, int, int, int]] = {
    "pipe organ": (19, 19, 19, 19), "string quartet": (40, 40, 41, 42),
    "brass quartet": (56, 56, 60, 57), "woodwind quartet": (73, 68, 71, 70),
    "choir": (52, 52, 52, 52), "piano": (0, 0, 0, 0), "harpsichord": (6, 6, 6, 6),
    "string ensemble": (48, 48, 48, 48),
}

# genre → (low, high) notes per second of the median note value
NOTE_RATES: dict[str, tuple[float, float]] = {
    "reel": (6.8, 8.4), "jig": (6.0, 7.6), "slip jig": (5.8, 7.2), "hornpipe": (4.6, 6.2),
    "clog": (4.6, 6.0), "strathspey": (4.2, 5.4), "highland fling": (4.4, 5.6), "march": (4.0, 5.6),
    "air": (1.8, 3.2), "folk song": (2.4, 4.0), "ballad": (2.2, 3.6), "children's song": (3.0, 4.6),
    "chorale": (1.0, 1.5),
}
TEMPO_WORDS = ((2.6, "slow"), (4.2, "moderate"), (6.2, "lively"), (float("inf"), "fast"))


@dataclass
class Arrangement:
    """How one work is played: GM program per voice, octave shift, tempo."""

    programs: list[int]
    ensemble: str | None
    transpose: int  # semitones added to every note (whole octaves; a transposed copy adds its shift)
    quarter_bpm: float
    tempo_bpm: int  # beats of the written meter per minute
    tempo_word: str
    note_rate: float


# pitch class → tonic spelling, per mode family (flat keys spelt with flats, as key signatures are)
_MAJOR_SPELLING = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_SPELLING = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def transposed_tonic(tonic: str, mode: str, semitones: int) -> str:
    """The tonic ``semitones`` above ``tonic`` (``"G", "major", 3`` → ``"Bb"``), spelt as the
    shifted key signature would spell it (minor: ``"E", "minor", 4`` → ``"G#"``)."""
    pc = (_PITCH_CLASS[tonic[0].upper()] + tonic[1:].count("#") - tonic[1:].count("b")
          + semitones) % 12
    if mode in ("minor", "dorian", "phrygian"):
        return _MINOR_SPELLING[pc]
    return _MAJOR_SPELLING[pc]


def choose_key_shift(score: ParsedScore, arrangement: Arrangement, rng: np.random.Generator) -> int:
    """A random transposition of −5 … +6 semitones (never 0) for a copy of a work, moved by an
    octave where it would leave the instrument's comfortable range (as the octave choice of
    :func:`choose_arrangement` allows, ±5 semitones) — ensembles keep the written octave."""
    shift = int(rng.choice([s for s in range(-5, 7) if s != 0]))
    if arrangement.ensemble is None:
        _, low, high = INSTRUMENTS[arrangement.programs[0]]
        pitches = sorted(p for _, _, p in score.voices[0])
        if pitches[-1] + arrangement.transpose + shift > high + 5:
            shift -= 12
        elif pitches[0] + arrangement.transpose + shift < low - 5:
            shift += 12
    return shift


def tempo_word(note_rate: float) -> str:
    """Running-note rate (notes/s) → slow / moderate / lively / fast."""
    return next(word for limit, word in TEMPO_WORDS if note_rate < limit)


def choose_arrangement(work: Work, score: ParsedScore, rng: np.random.Generator) -> Arrangement:
    """Pick instrument(s) and tempo for ``work`` (deterministic given ``rng``)."""
    if work.genre == "chorale":
        ensemble = sorted(ENSEMBLES)[int(rng.integers(len(ENSEMBLES)))]
        programs, transpose = list(ENSEMBLES[ensemble]), 0
    else:
        pool_name = "chinese folk song" if work.origin == "Chinese" else work.genre
        pool = INSTRUMENT_POOLS[pool_name]
        program = pool[int(rng.integers(len(pool)))]
        ensemble, programs = None, [program]
        _, low, high = INSTRUMENTS[program]
        pitches = sorted(p for _, _, p in score.voices[0])
        median = pitches[len(pitches) // 2]
        transpose = 12 * int(round(((low + high) / 2 - median) / 12))
        while pitches[-1] + transpose > high + 5 and transpose > -36:
            transpose -= 12
        while pitches[0] + transpose < low - 5 and transpose < 36:
            transpose += 12
    low_rate, high_rate = NOTE_RATES[work.genre]
    wanted_rate = float(rng.uniform(low_rate, high_rate))
    median_q = score.median_note_quarters()
    beat_bpm = int(np.clip(round(60.0 * wanted_rate * median_q / score.beat_quarters), 30, 280))
    quarter_bpm = beat_bpm * score.beat_quarters
    note_rate = quarter_bpm / 60.0 / median_q
    return Arrangement(programs, ensemble, transpose, quarter_bpm, beat_bpm, tempo_word(note_rate), note_rate)


def attribute_record(work: Work, score: ParsedScore, arrangement: Arrangement,
                     key_shift: int = 0) -> dict:
    """The structured attributes a caption may draw on (all JSON-serialisable); ``key_shift``:
    the semitones a transposed copy is played above the written key (its key and tonic follow)."""
    seen: list[int] = []
    for program in arrangement.programs:
        if program not in seen:
            seen.append(program)
    tonic = transposed_tonic(score.tonic, score.mode, key_shift) if key_shift else score.tonic
    return {
        "genre": work.genre,
        "origin": work.origin,
        "key": f"{tonic} {score.mode}",
        "tonic": tonic,
        "mode": score.mode,
        "meter": score.meter,
        "tempo_bpm": arrangement.tempo_bpm,
        "tempo_word": arrangement.tempo_word,
        "instruments": [{"program": p, "name": INSTRUMENTS[p][0]} for p in seen],
        "ensemble": arrangement.ensemble,
        "voices": len(score.voices),
        "title": work.title,
        "collection": work.collection,
    }
