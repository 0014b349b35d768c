"""Note statistics, key and tempo estimation, and prompt adherence on synthetic note lists (exact answers)."""
import math

import numpy as np
import pytest

from melody_lab.metrics.adherence import (clip_adherence, estimate_tempo, key_score, parse_key, pitch_class,
                                          tempo_accuracy)
from melody_lab.metrics.musicality import (STATISTICS, estimate_key, note_statistics, statistics_distance,
                                           statistics_matrix)

C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def melody(pitches, bpm: float, seconds: float = 8.0, chord: int = 1) -> np.ndarray:
    """One note per beat at ``bpm`` cycling through ``pitches``, ``chord`` notes deep (+12 each)."""
    beat = 60.0 / bpm
    rows = []
    for i in range(int(seconds / beat)):
        for voice in range(chord):
            rows.append((i * beat, (i + 0.9) * beat, pitches[i % len(pitches)] + 12 * voice, 0.5))
    return np.array(rows)


def test_key_estimates_tonic_and_mode():
    assert estimate_key(melody(C_MAJOR_SCALE, 120))[0] == "C major"
    a_minor = [57, 59, 60, 62, 64, 65, 68, 69, 64, 57]         # harmonic minor, tonic and fifth stressed
    assert estimate_key(melody(a_minor, 120))[0] == "A minor"
    assert estimate_key(melody([p + 2 for p in C_MAJOR_SCALE], 120))[0] == "D major"
    key, correlation = estimate_key(np.zeros((0, 4)))
    assert key is None and math.isnan(correlation)


def test_statistics_of_a_known_melody():
    stats = note_statistics(melody(C_MAJOR_SCALE, 120), 8.0)
    assert set(stats) == set(STATISTICS)
    assert stats["notes_per_s"] == pytest.approx(2.0)
    assert stats["polyphony"] == pytest.approx(1.0)
    assert stats["note_coverage"] == pytest.approx(0.9, abs=0.03)
    assert stats["key_clarity"] > 0.7
    assert stats["onset_regularity"] > 0.9                     # perfectly periodic onsets
    assert 0 < stats["pitch_class_entropy"] < math.log2(7) + 1e-9
    chords = note_statistics(melody(C_MAJOR_SCALE, 120, chord=3), 8.0)
    assert chords["polyphony"] == pytest.approx(3.0) and chords["pitch_range"] > stats["pitch_range"] + 20
    rng = np.random.default_rng(0)
    onsets = np.sort(rng.uniform(0, 8, 16))
    random = np.stack([onsets, onsets + 0.2, rng.integers(48, 84, 16), np.full(16, 0.5)], 1)
    assert note_statistics(random, 8.0)["onset_regularity"] < stats["onset_regularity"] - 0.3
    empty = note_statistics(np.zeros((0, 4)), 5.0)
    assert empty["notes_per_s"] == 0 and empty["note_coverage"] == 0 and math.isnan(empty["key_clarity"])


def test_tempo_estimate_and_mirex_accuracy():
    for bpm in (72.0, 100.0, 150.0):
        estimate = estimate_tempo(melody(C_MAJOR_SCALE, bpm)[:, 0], 8.0)
        assert tempo_accuracy(bpm, estimate)[1] == 1.0, (bpm, estimate)
    assert tempo_accuracy(100, 107) == (1.0, 1.0)
    assert tempo_accuracy(100, 109) == (0.0, 0.0)
    assert tempo_accuracy(100, 200) == (0.0, 1.0) and tempo_accuracy(90, 30) == (0.0, 1.0)
    assert all(math.isnan(v) for v in tempo_accuracy(100, math.nan))
    assert math.isnan(estimate_tempo([0.1, 0.2], 5.0))


def test_key_names_and_mirex_key_score():
    assert pitch_class("C#") == pitch_class("Db") == 1 and pitch_class("Bb") == 10 and pitch_class("B") == 11
    assert parse_key("F# Minor") == (6, "minor")
    with pytest.raises(ValueError):
        pitch_class("H")
    assert key_score("C major", "C major") == 1.0
    assert key_score("C major", "G major") == 0.5 and key_score("C major", "F major") == 0.0
    assert key_score("C major", "A minor") == 0.3 and key_score("A minor", "C major") == 0.3
    assert key_score("C major", "C minor") == 0.2 and key_score("C major", "D major") == 0.0


def test_clip_adherence_against_prompt_attributes():
    notes = melody([p + 2 for p in C_MAJOR_SCALE], 100)        # D major at 100 bpm
    hit = clip_adherence(notes, 8.0, {"tonic": "D", "mode": "major", "tempo_bpm": 100})
    assert hit["key_match"] == hit["key_score"] == hit["mode_match"] == 1.0 and hit["tempo_acc2"] == 1.0
    miss = clip_adherence(notes, 8.0, {"tonic": "Eb", "mode": "minor", "tempo_bpm": 61})
    assert miss["key_match"] == 0.0 and miss["mode_match"] == 0.0 and miss["tempo_acc2"] == 0.0
    modal = clip_adherence(notes, 8.0, {"tonic": "D", "mode": "mixolydian", "tempo_bpm": 100})
    assert math.isnan(modal["key_match"]) and modal["tempo_acc2"] == 1.0   # modal keys: not applicable
    silent = clip_adherence(np.zeros((0, 4)), 8.0, {"tonic": "D", "mode": "major", "tempo_bpm": 100})
    assert silent["key_match"] == 0.0 and silent["tempo_acc2"] == 0.0      # no notes: a miss


def test_statistics_distance_zero_for_the_same_set_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, (200, len(STATISTICS))) * 3 + 10
    same = statistics_distance(real, real)
    assert same.frechet == pytest.approx(0.0, abs=1e-6) and same.n_real == 200
    shifted = real.copy()
    j = STATISTICS.index("key_clarity")                         # a statistic on its own scale
    shifted[:, j] += 3 * real[:, j].std(ddof=1)                 # 3 real stds higher
    far = statistics_distance(shifted, real)
    assert far.frechet == pytest.approx(9.0, rel=1e-3) and far.effect_sizes["key_clarity"] == pytest.approx(3.0)
    doubled = real.copy()
    doubled[:, 0] = 2 * (real[:, 0] + 0.5) - 0.5                # notes/s: compared as log(x + 0.5)
    log_std = np.log(real[:, 0] + 0.5).std(ddof=1)
    assert statistics_distance(doubled, real).effect_sizes["notes_per_s"] == pytest.approx(np.log(2) / log_std)
    with_nan = np.vstack([real[:10], np.full((3, len(STATISTICS)), np.nan)])
    assert statistics_distance(with_nan, real).dropped_generated == 3
    assert statistics_matrix([note_statistics(melody(C_MAJOR_SCALE, 120), 8.0)]).shape == (1, len(STATISTICS))
