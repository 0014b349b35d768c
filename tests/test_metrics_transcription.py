"""The basic-pitch evaluator: real transcription of a synthetic melody, the embedder, a clear error without the extra."""
import importlib.util
import sys

import numpy as np
import pytest

from melody_lab.errors import UserError

HAVE_EVAL = all(importlib.util.find_spec(m) for m in ("onnxruntime", "basic_pitch", "librosa"))
needs_eval = pytest.mark.skipif(not HAVE_EVAL, reason="the [eval] extra is not installed: pip install "
                                "'melody-lab[eval]' && pip install --no-deps basic-pitch==0.4.0")
SR = 16000
SCALE = [60, 62, 64, 65, 67, 69, 71, 72]   # C major, one note per beat at 120 bpm


def harmonic_melody(pitches, bpm=120.0, seconds=4.0) -> np.ndarray:
    """Decaying 3-harmonic tones, one per beat: an easy transcription with a known answer."""
    beat = 60.0 / bpm
    t = np.arange(int(beat * SR)) / SR
    notes = []
    for i in range(int(seconds / beat)):
        f0 = 440.0 * 2 ** ((pitches[i % len(pitches)] - 69) / 12)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3)) * np.exp(-3 * t)
        notes.append(tone * np.minimum(1.0, t / 0.005))
    return (0.3 * np.concatenate(notes)).astype(np.float32)


@needs_eval
def test_transcribes_a_known_melody_and_finds_its_key_and_tempo():
    from melody_lab.metrics.adherence import clip_adherence
    from melody_lab.metrics.transcription import get_transcriber

    transcriber = get_transcriber()
    assert get_transcriber() is transcriber                                  # one session per process
    audio = harmonic_melody(SCALE)
    (result,) = transcriber.transcribe(audio[None], SR)
    assert result.note.shape[1] == 88 and result.contour.shape[1] == 264
    assert result.note.shape[0] == int(np.floor(len(audio) / SR * 22050 * 86 / 22050))
    pitches = result.notes[:, 2].astype(int)
    assert len(result.notes) >= 6 and np.mean(np.isin(pitches, SCALE)) >= 0.8, pitches
    onsets = result.notes[np.isin(pitches, SCALE), 0]
    assert np.min(np.abs(onsets[:, None] - np.arange(8) * 0.5), axis=1).max() < 0.06   # on the beats
    hit = clip_adherence(result.notes, result.duration_s, {"tonic": "C", "mode": "major", "tempo_bpm": 120})
    assert hit["estimated_key"] == "C major" and hit["tempo_acc2"] == 1.0


@needs_eval
def test_basic_pitch_embedder_pools_the_activations():
    from melody_lab.metrics import build_embedder

    embedder = build_embedder("basic-pitch")
    clips = np.stack([harmonic_melody(SCALE, seconds=2.0), harmonic_melody(SCALE[::-1], seconds=2.0)])
    emb = embedder.embed(clips, SR)
    assert emb.shape == (2, 176) and np.all((emb >= 0) & (emb <= 1))
    assert np.argmax(emb[0, :88]) + 21 in SCALE                               # the note half is on the scale
    frames = embedder.embed_frames(clips, SR)
    assert [f.shape for f in frames] == [(4, 176), (4, 176)]
    np.testing.assert_allclose(embedder.pool(embedder.transcriber.transcribe(clips, SR)), emb, rtol=1e-6)


def test_without_the_extra_the_error_names_the_install_command(monkeypatch):
    from melody_lab.metrics import build_embedder, transcription

    monkeypatch.setitem(sys.modules, "onnxruntime", None)                   # import onnxruntime → ImportError
    transcription.get_transcriber.cache_clear()
    try:
        with pytest.raises(UserError, match=r"pip install 'melody-lab\[eval\]' && pip install --no-deps basic-pitch"):
            build_embedder("basic-pitch")
    finally:
        transcription.get_transcriber.cache_clear()


def test_the_core_imports_nothing_of_the_extra():
    import subprocess

    code = ("import sys, melody_lab.metrics, melody_lab.ablation; "
            "print(sorted(m for m in ('onnxruntime', 'basic_pitch', 'librosa', 'mir_eval') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
