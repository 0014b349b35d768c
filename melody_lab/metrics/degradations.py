"""Controlled degradations of real clips, for checking that a metric ranks what it should (fadtk-style).

Each is a pure, seeded function of ``[N, T]`` float32 audio; :data:`LADDERS` lists the standard
ladders, mildest first, which :func:`~melody_lab.metrics.validity.degradation_check` runs:

- ``noise``: white Gaussian noise at 40 / 30 / 20 / 10 dB SNR (per clip, re the clip's own power);
- ``lowpass``: 8th-order Butterworth low-pass (zero-phase) at 4 / 2 / 1 kHz;
- ``shuffle``: the clip cut into segments of 500 / 200 / 50 ms, put back in a random order
  (same notes and spectrum, broken time structure; shorter segments break more).
"""
from __future__ import annotations

import numpy as np
import scipy.signal


def add_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``[N, T]`` + white noise at ``snr_db`` dB below each clip's mean power."""
    audio = np.asarray(audio, dtype=np.float64)
    noise = np.random.default_rng(seed).standard_normal(audio.shape)
    power = np.mean(audio ** 2, axis=-1, keepdims=True)
    return (audio + noise * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def low_pass(audio: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """``[N, T]`` through an 8th-order Butterworth low-pass at ``cutoff_hz`` (forward-backward)."""
    sos = scipy.signal.butter(8, cutoff_hz, fs=sample_rate, output="sos")
    return scipy.signal.sosfiltfilt(sos, np.asarray(audio, dtype=np.float64), axis=-1).astype(np.float32)


def time_shuffle(audio: np.ndarray, sample_rate: int, segment_s: float, seed: int = 0) -> np.ndarray:
    """``[N, T]`` cut into ``segment_s`` pieces (the last, shorter one stays last) and each clip's
    full pieces permuted at random (seeded). Pieces are joined without a crossfade."""
    audio = np.asarray(audio, dtype=np.float32)
    size = max(1, int(round(segment_s * sample_rate)))
    rng = np.random.default_rng(seed)
    out = audio.copy()
    count = audio.shape[-1] // size
    for i in range(audio.shape[0]):
        order = rng.permutation(count)
        pieces = audio[i, :count * size].reshape(count, size)[order]
        out[i, :count * size] = pieces.reshape(-1)
    return out


#: ladder name → (parameter name, values mildest first, function(audio, sample_rate, value, seed))
LADDERS = {
    "noise": ("snr_db", (40.0, 30.0, 20.0, 10.0), lambda a, sr, v, s: add_noise(a, v, s)),
    "lowpass": ("cutoff_hz", (4000.0, 2000.0, 1000.0), lambda a, sr, v, s: low_pass(a, sr, v)),
    "shuffle": ("segment_s", (0.5, 0.2, 0.05), lambda a, sr, v, s: time_shuffle(a, sr, v, s)),
}
