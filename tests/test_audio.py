"""melody_lab.audio: formats, mono, resampling, log-mel, and clear errors for bad files."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from melody_lab.audio import AudioFileError, load_audio, log_mel, resample, rms_db, save_audio, to_mono
from melody_lab.errors import UserError


def _tone(seconds=0.5, sr=16000, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_save_load_roundtrip(tmp_path, suffix):
    audio = _tone()
    path = save_audio(tmp_path / f"tone{suffix}", audio, 16000)
    loaded, sr = load_audio(path)
    assert sr == 16000 and loaded.dtype == np.float32 and loaded.ndim == 1
    assert abs(len(loaded) - len(audio)) < 1100  # lossy codecs may pad a little
    tolerance = 1e-3 if suffix != ".ogg" else 0.2
    n = min(len(audio), len(loaded))
    assert np.max(np.abs(loaded[:n] - audio[:n])) < tolerance or suffix == ".ogg"
    assert abs(rms_db(loaded) - rms_db(audio)) < 1.0
    assert not list(tmp_path.glob(".*partial"))  # atomic write leaves no temporary file


def test_stereo_is_mixed_to_mono_and_resampled(tmp_path):
    left, right = _tone(freq=440), np.zeros(8000, dtype=np.float32)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000)
    audio, sr = load_audio(tmp_path / "stereo.wav", sample_rate=8000)
    assert sr == 8000 and audio.shape == (4000,)
    np.testing.assert_allclose(to_mono(np.stack([left, right], 1)), left / 2, atol=1e-7)
    assert resample(left, 16000, 24000).shape[0] == 12000


def test_log_mel_shape_and_peak_band():
    audio = torch.from_numpy(np.stack([_tone(freq=300), _tone(freq=3000)]))
    mel = log_mel(audio, 16000, n_fft=512, hop_length=128, n_mels=40)
    assert mel.shape == (2, 40, 8000 // 128 + 1)
    assert torch.isfinite(mel).all()
    low_peak, high_peak = mel.mean(-1).argmax(-1).tolist()
    assert low_peak < high_peak  # the higher tone lands in a higher mel band


def test_rms_db_of_silence_and_full_scale():
    assert rms_db(np.zeros(100)) == -math.inf
    assert abs(rms_db(np.ones(100))) < 1e-9


def test_bad_files_raise_errors_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioFileError, match="garbage.flac"):
        load_audio(garbage)
    with pytest.raises(AudioFileError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="nan.wav"):
        load_audio(tmp_path / "nan.wav")
    assert issubclass(AudioFileError, UserError)
    with pytest.raises(UserError, match="tone.xyz"):
        save_audio(tmp_path / "tone.xyz", _tone(), 16000)
