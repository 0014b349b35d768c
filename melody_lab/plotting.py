"""Small plotting helpers shared by the course notebooks (matplotlib; never imported by the core).

Every function draws on ``ax`` (a new figure when None) and returns that ``Axes``:

    plot_spectrogram(audio, sample_rate)        log-mel spectrogram of one clip [T]
    plot_latent(latent)                         a latent [L, D] as an image (frames × dimensions)
    plot_frame_angles(angles)                   per-frame angle vectors [B, L] as an image, 0 … π/2
    plot_schedule_steps(schedules, num_steps)   the step sizes ω_i of several schedules as bars
    plot_segments(segments)                     DPD segments [S, K] of a 1-channel signal as an image
    plot_loss_curves(curves)                    training-loss curves {label: [loss per step]}
    plot_token_image(tokens)                    integer tokens / codes [B, T] as an image
    plot_similarity(similarity)                 a similarity matrix [N, M] (e.g. text × audio cosines)
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from .audio import log_mel
from .diffusion import Schedule, get_schedule

__all__ = ["plot_spectrogram", "plot_latent", "plot_frame_angles", "plot_schedule_steps", "plot_segments",
           "plot_loss_curves", "plot_token_image", "plot_similarity"]


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    return plt.subplots(figsize=figsize)[1] if ax is None else ax


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)


def plot_spectrogram(
    audio: torch.Tensor | np.ndarray, sample_rate: int, ax: Axes | None = None, title: str | None = None,
    n_mels: int = 64, hop_length: int = 256,
) -> Axes:
    """Log-mel spectrogram (natural log, :func:`melody_lab.audio.log_mel`) of mono audio [T] in [-1, 1].

    x axis: seconds; y axis: mel band index (low frequencies at the bottom).
    """
    audio = torch.as_tensor(_numpy(audio), dtype=torch.float32).reshape(-1)
    mel = log_mel(audio, sample_rate, n_fft=1024, hop_length=hop_length, n_mels=n_mels)[0].numpy()
    ax = _axes(ax, (8, 3))
    seconds = audio.numel() / sample_rate
    image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, n_mels))
    ax.figure.colorbar(image, ax=ax, label="log mel")
    ax.grid(False)
    ax.set(xlabel="time (s)", ylabel="mel band", title=title)
    return ax


def plot_latent(
    latent: torch.Tensor | np.ndarray, ax: Axes | None = None, title: str | None = None,
    frame_rate: float | None = None,
) -> Axes:
    """A latent [L, D] as an image: frames along x (seconds if ``frame_rate`` is given), dimensions along y.

    The colour range is symmetric around 0 (the codec's latents live in [-1, 1]).
    """
    values = _numpy(latent)
    if values.ndim != 2:
        raise ValueError(f"plot_latent needs one latent [L, D], got shape {values.shape}")
    frames, dims = values.shape
    limit = max(float(np.abs(values).max()), 1e-12)
    extent = (0, frames / frame_rate if frame_rate else frames, 0, dims)
    ax = _axes(ax, (8, 2.5))
    image = ax.imshow(values.T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                      extent=extent, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax)
    ax.grid(False)
    ax.set(xlabel="time (s)" if frame_rate else "frame", ylabel="latent dim", title=title)
    return ax


def plot_frame_angles(
    angles: torch.Tensor | np.ndarray, ax: Axes | None = None, title: str | None = None,
    ylabel: str = "example",
) -> Axes:
    """Per-frame angles [B, L] (radians) as an image: one row per example, 0 (clean) … π/2 (noise).

    NaN entries are left blank (e.g. frames outside a continuation window).
    """
    values = _numpy(angles)
    if values.ndim == 1:
        values = values[None]
    ax = _axes(ax, (8, 2.5))
    rows, frames = values.shape
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=math.pi / 2,
                      interpolation="nearest", extent=(0, frames, rows - 0.5, -0.5))
    bar = ax.figure.colorbar(image, ax=ax, ticks=[0, math.pi / 8, math.pi / 4, 3 * math.pi / 8, math.pi / 2])
    bar.ax.set_yticklabels(["0 clean", "π/8", "π/4", "3π/8", "π/2 noise"])
    ax.grid(False)
    ax.set(xlabel="frame", ylabel=ylabel, title=title)
    return ax


def plot_schedule_steps(
    schedules: Mapping[str, Schedule] | Sequence[str], num_steps: int, ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Grouped bars of each schedule's step sizes ω_i (radians) for T = ``num_steps``, noisiest step first.

    ``schedules``: registry names (``["uniform", "linear"]``) or ``{label: schedule object}``.
    """
    if not isinstance(schedules, Mapping):
        schedules = {name: get_schedule(name) for name in schedules}
    ax = _axes(ax, (8, 3))
    width = 0.8 / len(schedules)
    steps = np.arange(1, num_steps + 1)
    for k, (label, schedule) in enumerate(schedules.items()):
        offset = (k - (len(schedules) - 1) / 2) * width
        ax.bar(steps + offset, schedule.steps(num_steps).numpy(), width=width, label=label)
    ax.axhline(math.pi / (2 * num_steps), color="0.3", lw=0.8, ls="--")  # the uniform step, for reference
    ax.set(xlabel="step i (1 = noisiest)", ylabel="step size ω_i (rad)",
           title=title if title is not None else f"step sizes, T = {num_steps}")
    ax.set_xticks(steps if num_steps <= 20 else steps[:: math.ceil(num_steps / 20)])
    ax.legend(fontsize=8)
    return ax


def plot_segments(
    segments: torch.Tensor | np.ndarray, ax: Axes | None = None, title: str | None = None,
    annotate: bool | None = None,
) -> Axes:
    """Segments [S, K] of a one-channel signal (e.g. ``segment(x, K)[0, :, :, 0]``) as an image.

    One row per segment, one column per position in the segment. Exact zeros (the padding
    ``segment`` adds) are left blank, so pass a signal without zeros (e.g. frame numbers 1 … L) to
    see where each frame lands. ``annotate`` writes every value in its cell (default: when S·K ≤ 400).
    """
    values = _numpy(segments)
    if values.ndim != 2:
        raise ValueError(f"plot_segments needs segments [S, K], got shape {values.shape}")
    rows, size = values.shape
    masked = np.ma.masked_equal(values, 0.0)
    ax = _axes(ax, (max(4.0, 0.45 * size + 2), max(2.5, 0.35 * rows + 1)))
    image = ax.imshow(masked, aspect="auto", cmap="viridis", interpolation="nearest",
                      extent=(-0.5, size - 0.5, rows - 0.5, -0.5))
    ax.figure.colorbar(image, ax=ax)
    if annotate if annotate is not None else rows * size <= 400:
        for (r, k), value in np.ndenumerate(values):
            if value != 0:
                ax.text(k, r, f"{value:g}", ha="center", va="center", fontsize=7, color="w")
    ax.grid(False)
    ax.set(xlabel="position in segment", ylabel="segment", title=title)
    return ax


def plot_loss_curves(
    curves: Mapping[str, Sequence[float]], ax: Axes | None = None, title: str | None = None,
    smooth: int = 1, log: bool = True,
) -> Axes:
    """Loss per step for each ``{label: losses}``: the raw curve faint, its running mean over
    ``smooth`` steps (trailing window) on top. ``log``: logarithmic y axis."""
    ax = _axes(ax, (8, 3))
    for k, (label, losses) in enumerate(curves.items()):
        values = np.asarray(losses, dtype=float)
        steps = np.arange(1, len(values) + 1)
        color = f"C{k}"
        if smooth > 1:
            ax.plot(steps, values, color=color, alpha=0.25, lw=0.8)
            cumulative = np.cumsum(np.insert(values, 0, 0.0))
            window = np.minimum(steps, smooth)
            values = (cumulative[steps] - cumulative[steps - window]) / window
        ax.plot(steps, values, color=color, label=label)
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.legend(fontsize=8)
    return ax


def plot_token_image(
    tokens: torch.Tensor | np.ndarray, ax: Axes | None = None, title: str | None = None,
    token_rate: float | None = None, vocab_size: int | None = None, ylabel: str = "example",
) -> Axes:
    """Integer tokens [B, T] (or [T]) as an image: one row per sequence, colour = token id.

    x axis: seconds when ``token_rate`` (tokens per second) is given, else the token index.
    The colour range is 0 … ``vocab_size`` − 1 (default: the largest id shown).
    """
    values = _numpy(tokens)
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2:
        raise ValueError(f"plot_token_image needs tokens [B, T], got shape {values.shape}")
    rows, length = values.shape
    top = (vocab_size - 1) if vocab_size else max(float(values.max()), 1.0)
    right = length / token_rate if token_rate else length
    ax = _axes(ax, (8, max(1.5, 0.3 * rows + 1)))
    image = ax.imshow(values, aspect="auto", cmap="nipy_spectral", vmin=0, vmax=top,
                      interpolation="nearest", extent=(0, right, rows - 0.5, -0.5))
    ax.figure.colorbar(image, ax=ax, label="token id")
    ax.grid(False)
    ax.set(xlabel="time (s)" if token_rate else "position", ylabel=ylabel, title=title)
    return ax


def plot_similarity(
    similarity: torch.Tensor | np.ndarray, ax: Axes | None = None, title: str | None = None,
    xlabel: str = "audio clip", ylabel: str = "caption", mark_best: bool = True,
) -> Axes:
    """A similarity matrix [N, M] (rows: queries, columns: candidates) as a heatmap.

    ``mark_best`` puts a white dot on every row's highest entry (the top-1 retrieval).
    """
    values = _numpy(similarity)
    if values.ndim != 2:
        raise ValueError(f"plot_similarity needs a matrix [N, M], got shape {values.shape}")
    ax = _axes(ax, (6, 5))
    image = ax.imshow(values, aspect="auto", cmap="coolwarm", interpolation="nearest",
                      vmin=-float(np.abs(values).max()), vmax=float(np.abs(values).max()))
    ax.figure.colorbar(image, ax=ax, label="cosine")
    if mark_best:
        best = values.argmax(1)
        ax.plot(best, np.arange(len(values)), "o", color="w", ms=3, mec="k", mew=0.5)
    ax.grid(False)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return ax
