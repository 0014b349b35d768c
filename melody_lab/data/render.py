"""Notes → pretty_midi → audio, with a General-MIDI soundfont (tinysoundfont) or the built-in synth.

:func:`to_pretty_midi` writes a parsed score through pretty_midi (one instrument per voice; music21's
own MIDI export fails on many Essen tunes). :class:`SoundfontRenderer` plays a PrettyMIDI object
through tinysoundfont in-process; :func:`find_soundfont` auto-detects the usual Debian paths.
Without a soundfont, :mod:`melody_lab.data.synth` renders with a few simple built-in timbres.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pretty_midi

from ..errors import UserError
from .arrangement import Arrangement
from .scores import ParsedScore

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
SOUNDFONT_ENV = "MELODY_LAB_SOUNDFONT"


def find_soundfont() -> Path | None:
    """First existing GM soundfont: ``$MELODY_LAB_SOUNDFONT``, then common system paths."""
    for candidate in (os.environ.get(SOUNDFONT_ENV), *SOUNDFONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def tinysoundfont_available() -> bool:
    try:
        import tinysoundfont  # noqa: F401
    except ImportError:
        return False
    return True


def to_pretty_midi(score: ParsedScore, arrangement: Arrangement, until_seconds: float,
                   rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """Notes up to ``until_seconds`` → PrettyMIDI (one instrument per voice, constant tempo).

    Velocities accent the bar's downbeat and the beats with a little random variation; notes are
    shortened slightly (detached bowing/tonguing) except on organ and choir.
    """
    seconds_per_quarter = 60.0 / arrangement.quarter_bpm
    midi = pretty_midi.PrettyMIDI(initial_tempo=arrangement.quarter_bpm)
    base_velocity = int(rng.integers(72, 97))
    for voice, program in zip(score.voices, arrangement.programs):
        instrument = pretty_midi.Instrument(program=program)
        legato = 0.97 if program in (19, 52, 48) else 0.9
        for onset_q, duration_q, pitch in voice:
            start = onset_q * seconds_per_quarter
            if start >= until_seconds:
                break
            accent = 12 if onset_q % score.bar_quarters < 1e-6 else (
                5 if onset_q % score.beat_quarters < 1e-6 else 0)
            velocity = int(np.clip(base_velocity + accent + rng.integers(-4, 5), 1, 127))
            end = start + max(duration_q * seconds_per_quarter * legato, 0.03)
            note_pitch = int(np.clip(pitch + arrangement.transpose, 0, 127))
            instrument.notes.append(pretty_midi.Note(velocity, note_pitch, start, end))
        midi.instruments.append(instrument)
    return midi


def _events(midi: pretty_midi.PrettyMIDI, sample_rate: int) -> list[tuple[int, int, int, int, int]]:
    """(sample, order, channel, pitch, velocity); note-offs sort before note-ons at one instant."""
    events = []
    for channel, instrument in enumerate(midi.instruments):
        channel = channel if channel < 9 else channel + 1  # skip the GM drum channel
        for note in instrument.notes:
            events.append((int(round(note.start * sample_rate)), 1, channel, note.pitch, note.velocity))
            events.append((int(round(note.end * sample_rate)), 0, channel, note.pitch, 0))
    events.sort()
    return events


class SoundfontRenderer:
    """Render PrettyMIDI objects with a GM soundfont through tinysoundfont (in-process)."""

    name = "soundfont"

    def __init__(self, soundfont: str | Path, render_rate: int = 32000):
        if not tinysoundfont_available():
            raise UserError("rendering with a soundfont needs tinysoundfont: pip install --no-deps "
                            "tinysoundfont (or use --renderer builtin)")
        import tinysoundfont

        path = Path(soundfont)
        if not path.is_file():
            raise UserError(f"soundfont not found: {path} (pass an existing .sf2 file to --soundfont, "
                            "or install one: apt-get install fluid-soundfont-gm)")
        self.path = path.resolve()
        self.render_rate = render_rate
        self.synth = tinysoundfont.Synth(samplerate=render_rate)
        try:
            self.sfid = self.synth.sfload(str(self.path))
        except (RuntimeError, OSError, ValueError, tinysoundfont.SoundFontException) as err:
            raise UserError(f"cannot load soundfont {path}: {err} (is it a valid .sf2 file?)") from err
        if self.synth.sfpreset_name(self.sfid, 0, 0) is None:
            raise UserError(f"soundfont {path} has no General-MIDI piano at bank 0, preset 0; "
                            "use a General-MIDI soundfont")

    def describe(self) -> str:
        return f"soundfont {self.path.name}"

    def render(self, midi: pretty_midi.PrettyMIDI, seconds: float) -> np.ndarray:
        """→ mono float32 ``[round(seconds · render_rate)]`` at ``render_rate``."""
        total = int(round(seconds * self.render_rate))
        synth = self.synth
        # Fresh voices and channels, so the output does not depend on what was rendered before:
        # reset() only fades voices out quickly, so render (and drop) a moment until they are free.
        synth.soundfonts[self.sfid].reset()
        synth.generate_simple(self.render_rate // 5)
        for channel, instrument in enumerate(midi.instruments):
            channel = channel if channel < 9 else channel + 1
            try:
                synth.program_select(channel, self.sfid, 0, instrument.program)
            except RuntimeError:  # preset missing in a small soundfont: fall back to piano
                synth.program_select(channel, self.sfid, 0, 0)
        out = np.zeros((total, 2), dtype=np.float32)
        position = 0
        for sample, is_on, channel, pitch, velocity in _events(midi, self.render_rate) + [(total, 0, 0, 0, 0)]:
            sample = min(sample, total)
            if sample > position:
                block = synth.generate_simple(sample - position)
                out[position:sample] = np.frombuffer(block, dtype=np.float32).reshape(-1, 2)
                position = sample
            if position >= total:
                break
            if is_on:
                synth.noteon(channel, pitch, velocity)
            elif velocity == 0 and pitch:
                synth.noteoff(channel, pitch)
        synth.sounds_off()
        return out.mean(axis=1)
