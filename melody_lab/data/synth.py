"""A small built-in synthesiser, used when no General-MIDI soundfont is installed.

Seven timbres with clearly different spectra and envelopes, chosen per GM program family:
bowed (sawtooth-like with vibrato), blown (near-sine with breath), reed (odd harmonics), plucked
(bright attack, fast decay), keys (piano-like decay), organ (sustained octave stops) and mallet
(inharmonic partials). Everything is additive synthesis in numpy: deterministic, no randomness.
"""
from __future__ import annotations

import numpy as np
import pretty_midi

TIMBRE_OF_PROGRAM = {
    **{p: "keys" for p in range(0, 8)}, 6: "plucked", **{p: "mallet" for p in range(8, 16)},
    15: "plucked", **{p: "organ" for p in range(16, 24)}, 21: "reed", 22: "reed", 23: "reed",
    **{p: "plucked" for p in range(24, 32)}, **{p: "bowed" for p in range(40, 52)}, 46: "plucked",
    52: "organ", 53: "organ", 54: "organ", **{p: "reed" for p in range(56, 72)},
    **{p: "blown" for p in range(72, 80)}, **{p: "plucked" for p in range(104, 109)},
    109: "reed", 110: "bowed", 111: "reed",
}
# timbre → (harmonic amplitudes as a function of harmonic number k, attack s, decay per s, release s)
TIMBRES = {
    "bowed": (lambda k: 1.0 / k, 0.06, 0.0, 0.08),
    "blown": (lambda k: np.where(k == 1, 1.0, 0.12 / k**2), 0.05, 0.0, 0.06),
    "reed": (lambda k: np.where(k % 2 == 1, 1.0 / k, 0.08 / k), 0.03, 0.0, 0.05),
    "plucked": (lambda k: 1.0 / k**1.3, 0.003, 3.5, 0.05),
    "keys": (lambda k: 1.0 / k**1.8, 0.004, 1.6, 0.12),
    "organ": (lambda k: np.where(np.isin(k, [1, 2, 4, 8]), 1.0 / np.sqrt(k), 0.05 / k), 0.02, 0.0, 0.05),
    "mallet": (None, 0.002, 5.0, 0.05),
}
MALLET_RATIOS = np.array([1.0, 3.93, 9.54])  # marimba-like bar partials
MALLET_AMPS = np.array([1.0, 0.35, 0.12])


def _note_wave(timbre: str, frequency: float, samples: int, held: int, sample_rate: int,
               velocity: int) -> np.ndarray:
    t = np.arange(samples) / sample_rate
    partials_fn, attack, decay, release = TIMBRES[timbre]
    if timbre == "mallet":
        ratios, amps = MALLET_RATIOS, MALLET_AMPS
    else:
        count = max(1, min(16, int(0.45 * sample_rate / frequency)))
        ratios = np.arange(1, count + 1, dtype=np.float64)
        amps = np.asarray(partials_fn(ratios), dtype=np.float64) * np.ones_like(ratios)
    keep = ratios * frequency < 0.45 * sample_rate
    ratios, amps = ratios[keep], amps[keep]
    phase = 2 * np.pi * frequency * t
    if timbre == "bowed":  # gentle delayed vibrato
        depth_hz = 0.006 * frequency
        phase = phase + (depth_hz / 5.5) * np.sin(2 * np.pi * 5.5 * t) * np.clip(t / 0.3, 0.0, 1.0)
    wave = (amps[:, None] * np.sin(ratios[:, None] * phase[None])).sum(axis=0)
    if timbre in ("plucked", "keys", "mallet"):  # upper partials die faster
        wave = wave * np.exp(-decay * t)
    if timbre == "blown":
        wave = wave + 0.03 * np.sin(2 * np.pi * 3.1 * frequency * t + np.sin(37.0 * t))
    envelope = np.clip(t / attack, 0.0, 1.0)
    release_t = np.clip((t - held / sample_rate) / release, 0.0, 1.0)
    envelope = envelope * (1.0 - release_t)
    peak = np.abs(amps).sum()
    return (wave * envelope * (velocity / 127.0) / max(peak, 1e-9)).astype(np.float32)


class BuiltinRenderer:
    """Render PrettyMIDI objects with the built-in timbres (no soundfont needed)."""

    name = "builtin"

    def __init__(self, render_rate: int = 32000):
        self.render_rate = render_rate

    def describe(self) -> str:
        return "built-in synthesiser"

    def render(self, midi: pretty_midi.PrettyMIDI, seconds: float) -> np.ndarray:
        """→ mono float32 ``[round(seconds · render_rate)]`` at ``render_rate``."""
        sr = self.render_rate
        total = int(round(seconds * sr))
        out = np.zeros(total, dtype=np.float32)
        for instrument in midi.instruments:
            timbre = TIMBRE_OF_PROGRAM.get(instrument.program, "keys")
            release = TIMBRES[timbre][3]
            for note in instrument.notes:
                start = int(round(note.start * sr))
                if start >= total:
                    continue
                held = max(1, int(round((note.end - note.start) * sr)))
                length = min(held + int(release * sr), total - start)
                frequency = float(pretty_midi.note_number_to_hz(note.pitch))
                out[start:start + length] += _note_wave(timbre, frequency, length, held, sr, note.velocity)[:length]
        return 0.3 * out
