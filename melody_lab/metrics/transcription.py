"""Audio → notes with Spotify's pretrained basic-pitch model (ONNX, weights inside its wheel).

An evaluator nobody in this project trained: basic-pitch (Bittner et al., ICASSP 2022) maps 22.05-kHz
audio to three activation maps at 86.13 frames/s (hop 256): ``note`` and ``onset`` ``[frames, 88]``
(piano keys A0–C8, MIDI 21–108) and ``contour`` ``[frames, 264]`` (a third of a semitone per bin).
Its own note decoder (``basic_pitch.note_creation.output_to_notes_polyphonic``, the defaults of
``basic_pitch.inference.predict``) turns them into note events.

We run the ONNX graph directly with onnxruntime, batching the 2-s windows of many clips into one
call, windowed and unwrapped exactly as ``basic_pitch.inference.run_inference`` does (30 frames of
overlap, half of it dropped at each window edge). One inference session per process
(:func:`get_transcriber`), on one thread by default.

Optional: needs the ``[eval]`` extra and basic-pitch itself (installed without its TensorFlow
dependencies) — see :data:`INSTALL_HINT`. Nothing here is imported by ``melody_lab`` until used.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import resample
from ..errors import UserError

INSTALL_HINT = ("pip install 'melody-lab[eval]' && pip install --no-deps basic-pitch==0.4.0 "
                "(basic-pitch's own dependencies pull TensorFlow, which is not needed)")

SAMPLE_RATE = 22050            # basic-pitch's input rate (Hz)
HOP = 256                      # samples per activation frame
FRAME_RATE = SAMPLE_RATE / HOP  # 86.13 frames/s (the model's annotation rate is 86)
WINDOW = 2 * SAMPLE_RATE - HOP  # 43,844 samples per model call
OVERLAP_FRAMES = 30
MIDI_OFFSET = 21               # MIDI pitch of the first note bin
#: basic_pitch.inference.predict defaults
ONSET_THRESHOLD, FRAME_THRESHOLD, MIN_NOTE_MS = 0.5, 0.3, 127.70


def _require():
    """Import onnxruntime and basic-pitch's note decoder, or raise a UserError saying how to install."""
    import logging
    import warnings

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # basic_pitch warns at import about every backend it does not find
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # resampy's import
            import basic_pitch
            import onnxruntime
            from basic_pitch import note_creation
    except ImportError as err:
        raise UserError(f"the basic-pitch evaluator needs the [eval] extra ({err}); install it with: "
                        f"{INSTALL_HINT}") from None
    finally:
        root.setLevel(level)
    return onnxruntime, Path(basic_pitch.__file__).parent / "saved_models" / "icassp_2022" / "nmp.onnx", note_creation


@dataclass(frozen=True)
class Transcription:
    """One clip's basic-pitch output.

    ``note``, ``onset``: ``[frames, 88]`` activations in [0, 1]; ``contour``: ``[frames, 264]``;
    ``notes``: ``[K, 4]`` float64 rows (onset s, offset s, MIDI pitch, amplitude) sorted by onset;
    ``duration_s``: the clip's length in seconds.
    """

    note: np.ndarray
    onset: np.ndarray
    contour: np.ndarray
    notes: np.ndarray
    duration_s: float


class BasicPitchTranscriber:
    """basic-pitch on onnxruntime. ``transcribe(clips, sample_rate) -> list[Transcription]``."""

    name = "basic-pitch-icassp2022"

    def __init__(self, threads: int = 1, batch_windows: int = 16):
        ort, model_path, self._note_creation = _require()
        path = str(model_path)
        if not os.path.isfile(path):
            raise UserError(f"basic-pitch's ONNX model is missing at {path}; reinstall with: {INSTALL_HINT}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        outputs = {o.name: o.shape[-1] for o in self.session.get_outputs()}
        # the graph's outputs: StatefulPartitionedCall:0 contour (264), :1 note, :2 onset (88 each),
        # as basic_pitch.inference.Model.predict names them
        self.output_names = ["StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0"]
        if [outputs.get(n) for n in self.output_names] != [88, 88, 264]:
            raise UserError(f"unexpected basic-pitch ONNX outputs {outputs}; reinstall with: {INSTALL_HINT}")
        self.batch_windows = batch_windows
        self.fingerprint = f"basic-pitch {_version()} nmp.onnx {os.path.getsize(path)} B"

    def activations(self, clips: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Float32 clips at 22,050 Hz → per clip (note ``[F, 88]``, onset ``[F, 88]``, contour ``[F, 264]``)."""
        overlap = OVERLAP_FRAMES * HOP
        hop = WINDOW - overlap
        windows, owner = [], []
        for index, clip in enumerate(clips):
            padded = np.concatenate([np.zeros(overlap // 2, np.float32), clip.astype(np.float32)])
            for start in range(0, len(padded), hop):
                window = padded[start:start + WINDOW]
                windows.append(np.pad(window, (0, WINDOW - len(window))))
                owner.append(index)
        outputs = [[], [], []]
        for start in range(0, len(windows), self.batch_windows):
            batch = np.stack(windows[start:start + self.batch_windows])[:, :, None]
            for slot, value in enumerate(self.session.run(self.output_names, {self.input_name: batch})):
                outputs[slot].append(value)
        stacked = [np.concatenate(o) for o in outputs]  # [W, 172, bins]
        owner = np.asarray(owner)
        half = OVERLAP_FRAMES // 2
        result = []
        for index, clip in enumerate(clips):
            frames = int(np.floor(len(clip) * 86 / SAMPLE_RATE))  # as basic-pitch's unwrap_output
            maps = []
            for value in stacked:
                mine = value[owner == index][:, half:-half]
                maps.append(mine.reshape(-1, mine.shape[-1])[:frames].astype(np.float64))
            result.append(tuple(maps))
        return result

    def notes(self, note: np.ndarray, onset: np.ndarray) -> np.ndarray:
        """Activations → ``[K, 4]`` (onset s, offset s, MIDI pitch, amplitude), basic-pitch's decoder
        with ``predict``'s defaults (onset 0.5, frame 0.3, ≥ 127.7 ms, melodia trick, inferred onsets)."""
        min_len = int(np.round(MIN_NOTE_MS / 1000 * FRAME_RATE))
        events = self._note_creation.output_to_notes_polyphonic(
            note, onset, onset_thresh=ONSET_THRESHOLD, frame_thresh=FRAME_THRESHOLD, min_note_len=min_len,
            infer_onsets=True, max_freq=None, min_freq=None, melodia_trick=True)
        if not events:
            return np.zeros((0, 4))
        times = self._note_creation.model_frames_to_time(note.shape[0] + 1)
        rows = np.array([(times[s], times[e], p, a) for s, e, p, a in events], dtype=np.float64)
        return rows[np.lexsort((rows[:, 2], rows[:, 0]))]

    def transcribe(self, audio, sample_rate: int) -> list[Transcription]:
        """Clips (``[N, T]`` or a list of 1-D arrays) at ``sample_rate`` Hz → one :class:`Transcription` each."""
        from .embedders import as_clip_list

        clips = [resample(c, sample_rate, SAMPLE_RATE) for c in as_clip_list(audio)]
        out = []
        for clip, (note, onset, contour) in zip(clips, self.activations(clips)):
            out.append(Transcription(note, onset, contour, self.notes(note, onset), len(clip) / SAMPLE_RATE))
        return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("basic-pitch")
    except PackageNotFoundError:
        return "?"


@functools.lru_cache(maxsize=None)
def get_transcriber(threads: int = 1) -> BasicPitchTranscriber:
    """The process's one :class:`BasicPitchTranscriber` per thread count (building it is the slow part)."""
    return BasicPitchTranscriber(threads=threads)
