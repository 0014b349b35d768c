"""Audio basics: load, mono, resample, save, STFT magnitude and log-mel features.

Conventions used across melody_lab: audio is float32 in [-1, 1]; a single clip is ``[T]``, a batch
is ``[B, T]``; sample rates are in Hz.
"""
from __future__ import annotations

import math
import os
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")


class AudioFileError(UserError):
    """An audio file is missing, unreadable, empty or not finite; the message names the file."""


def to_mono(audio: np.ndarray) -> np.ndarray:
    """``[T]`` or ``[T, C]`` (soundfile's layout) → ``[T]`` by averaging channels."""
    return audio if audio.ndim == 1 else audio.mean(axis=1)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling with soxr. ``audio`` is ``[T]`` (or ``[T, C]``) float."""
    if orig_sr == target_sr:
        return audio
    return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read WAV/FLAC/OGG/Opus/… with soundfile → ``(audio float32 [T] (mono) or [T, C], sr)``.

    Resamples to ``sample_rate`` when given. Raises :class:`AudioFileError` naming the file when it
    is missing, unreadable, empty, or contains NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    try:
        audio, sr = sf.read(os.fsencode(path), dtype="float32", always_2d=False)  # bytes: any file name
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(f"cannot read audio file {path}: {err}") from err
    if audio.size == 0:
        raise AudioFileError(f"audio file {path} contains no samples")
    if not np.isfinite(audio).all():
        raise AudioFileError(f"audio file {path} contains NaN or infinite samples")
    if mono:
        audio = to_mono(audio)
    if sample_rate is not None:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), int(sr)


def save_audio(path: str | Path, audio: np.ndarray | torch.Tensor, sample_rate: int,
               subtype: str | None = None) -> Path:
    """Write ``[T]`` audio (clipped to [-1, 1]); format from the suffix (.wav, .flac, .ogg).

    Written to a unique temporary name and renamed, so a crash never leaves a half-written file
    and concurrent writers of one path never collide (the last rename wins). A failed write
    (a folder in the way, no permission, disk full) is a :class:`UserError`.
    """
    path = Path(path)
    if torch.is_tensor(audio):
        audio = audio.detach().cpu().float().numpy()
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot write {path}: use a .wav, .flac or .ogg file name")
    if subtype is None:
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique temporary name: two writers of one path never rename each other's file away
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        sf.write(os.fsencode(tmp), audio, sample_rate, format=fmt, subtype=subtype)
        tmp.replace(path)
    except (OSError, sf.LibsndfileError) as err:
        raise UserError(f"cannot write {path}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None) -> torch.Tensor:
    """``[B, T]`` → magnitude ``[B, n_fft//2 + 1, frames]`` with a Hann window (centred frames)."""
    win_length = win_length or n_fft
    window = torch.hann_window(win_length, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft, hop_length, win_length, window, center=True,
                      pad_mode="reflect" if audio.shape[-1] > n_fft // 2 else "constant",
                      return_complex=True)
    return spec.abs()


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 · log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft//2 + 1]`` (HTK scale, area-normalised, float32)."""
    f_max = f_max or sample_rate / 2
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lower) / np.maximum(centre - lower, 1e-9)
    down = (upper - freqs[None]) / np.maximum(upper - centre, 1e-9)
    weights = np.maximum(0.0, np.minimum(up, down)) * (2.0 / np.maximum(upper - lower, 1e-9))
    return torch.from_numpy(weights.astype(np.float32))


def log_mel(audio: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop_length: int = 256,
            n_mels: int = 64, f_min: float = 0.0, f_max: float | None = None,
            eps: float = 1e-5) -> torch.Tensor:
    """Natural-log mel spectrogram: ``[B, T]`` (or ``[T]``) → ``[B, n_mels, frames]``.

    ``frames = T // hop_length + 1`` (centred STFT).
    """
    if audio.dim() == 1:
        audio = audio[None]
    mag = stft_magnitude(audio.float(), n_fft, hop_length)
    fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max).to(mag.device)
    return torch.log(torch.clamp(fb @ mag, min=eps))


def si_sdr(reference: torch.Tensor, estimate: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio (also called SI-SNR) in dB per example:
    ``[B, ...]`` × ``[B, ...]`` → ``[B]``, each example flattened and made zero-mean."""
    ref = reference.flatten(1) - reference.flatten(1).mean(1, keepdim=True)
    est = estimate.flatten(1) - estimate.flatten(1).mean(1, keepdim=True)
    target = (est * ref).sum(1, keepdim=True) / (ref.pow(2).sum(1, keepdim=True) + eps) * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(1) + eps) / (noise.pow(2).sum(1) + eps))


def rms_db(audio: np.ndarray | torch.Tensor) -> float:
    """Root-mean-square level in dBFS (−inf for digital silence)."""
    x = np.asarray(audio.detach().cpu() if torch.is_tensor(audio) else audio, dtype=np.float64)
    rms = math.sqrt(float(np.mean(x**2))) if x.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def resample_batch(audio: torch.Tensor, source: int, target: int) -> torch.Tensor:
    """``[B, T]`` at ``source`` Hz → ``[B, T']`` at ``target`` Hz (soxr per row; same device)."""
    if source == target:
        return audio
    resampled = np.stack([resample(a.cpu().numpy(), source, target) for a in audio])
    return torch.from_numpy(resampled).to(audio.device)


def as_batch(audio, sample_rate: int, target_rate: int) -> torch.Tensor:
    """Checked ``[T]`` or ``[B, T]`` audio (tensor or array) at ``sample_rate`` → float32
    ``[B, T']`` at ``target_rate`` on the CPU; bad shapes, NaNs or rates are a :class:`UserError`."""
    audio = audio.detach().cpu().float() if torch.is_tensor(audio) else torch.from_numpy(
        np.asarray(audio, dtype=np.float32))
    if audio.dim() == 1:
        audio = audio[None]
    if audio.dim() != 2 or audio.shape[1] == 0:
        raise UserError(f"audio must be [T] or [B, T] with T > 0, got shape {tuple(audio.shape)}")
    if not torch.isfinite(audio).all():
        raise UserError("audio contains NaN or infinite samples")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise UserError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    return resample_batch(audio, sample_rate, target_rate)


def splice(original: torch.Tensor, generated: torch.Tensor, start: int, total: int,
           end: int | None = None, fade: int = 0) -> torch.Tensor:
    """``original [B, ≥start]`` outside [start, end) verbatim, ``generated [B, total]`` inside,
    cross-faded at both edges over ``fade`` samples (at most half the range; the fades lie inside
    the range). ``end=None``: a continuation, generated from ``start`` to ``total``."""
    out = generated.clone()
    out[:, :start] = original[:, :start]
    if end is not None:
        out[:, end:] = original[:, end:]
    stop = total if end is None else end
    fade = min(fade, (stop - start) // 2)
    if fade > 0 and start > 0:
        ramp = torch.linspace(0, 1, fade + 2)[1:-1]
        seg = slice(start, start + fade)
        ref = original[:, seg] if original.shape[1] >= start + fade else out[:, seg]
        out[:, seg] = (1 - ramp) * ref + ramp * generated[:, seg]
    if fade > 0 and end is not None and end < total:
        ramp = torch.linspace(0, 1, fade + 2)[1:-1]
        seg = slice(end - fade, end)
        out[:, seg] = (1 - ramp) * generated[:, seg] + ramp * original[:, seg]
    return out
