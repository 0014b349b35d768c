"""The checks every public entry point applies to what a user passes in (base layer).

One place for the limits of the API and the command line (the CLI's argparse types in
``melody_lab/commands/_args.py`` call these same functions, so both refuse the same values with
the same words). Every check raises :class:`~melody_lab.errors.UserError` with a one-line message.

Limits (also in README, "Command line"):

- a prompt: 1 to ``MAX_PROMPT_CHARS`` characters of valid Unicode text (a command-line argument
  that is not UTF-8 is refused);
- a seed: an integer in ``[0, MAX_SEED]`` (``2**63 - 1``), not a float or a bool;
- guidance: a finite number in ``GUIDANCE_RANGE`` (``[0, 50]``);
- audio arrays: ``[T]`` or ``[B, T]`` float samples, at most the pipeline's
  ``max_duration_seconds`` (600 s) long; a ``[T, C]`` array (soundfile's channels-last layout) is
  refused with a hint to mix it to mono.
"""
from __future__ import annotations

import math
import numbers

from .errors import UserError

MAX_PROMPT_CHARS = 1000
MAX_SEED = 2**63 - 1
GUIDANCE_RANGE = (0.0, 50.0)
MAX_CHANNELS = 16  # a 2-D array whose second axis is this small is channels, not samples


def check_text(text, what: str = "prompt") -> str:
    """A non-empty prompt of valid Unicode (no lone surrogates), at most MAX_PROMPT_CHARS long."""
    if not isinstance(text, str):
        raise UserError(f"the {what} must be text, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"the {what} is not valid UTF-8 text: {ascii(text)[:60]}") from None
    if not text.strip():
        raise UserError(f"the {what} is empty: say what to play, e.g. \"a calm chorale on organ\"")
    if len(text) > MAX_PROMPT_CHARS:
        raise UserError(f"the {what} has {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    return text


def check_prompts(prompts) -> list[str]:
    """A prompt or a non-empty list of prompts → the list (each checked by :func:`check_text`)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise UserError("prompts must be a non-empty list of texts")
    return [check_text(p) for p in prompts]


def check_seed(seed) -> int:
    """An integer seed in [0, MAX_SEED] (what ``torch.Generator.manual_seed`` takes, and more)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise UserError(f"seed must be an integer, got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed must lie in [0, {MAX_SEED}] (2^63 - 1), got {seed}")
    return int(seed)


def check_guidance(guidance) -> float | None:
    """None (the bundle's default) or a finite number in GUIDANCE_RANGE."""
    if guidance is None:
        return None
    low, high = GUIDANCE_RANGE
    if isinstance(guidance, bool) or not isinstance(guidance, numbers.Real) \
            or not math.isfinite(guidance) or not low <= guidance <= high:
        raise UserError(f"guidance must be a number in [{low:g}, {high:g}], got {guidance!r}")
    return float(guidance)


def check_audio_shape(shape: tuple[int, ...], sample_rate=None, max_seconds: float | None = None) -> None:
    """Refuse the channels-last ``[T, C]`` layout (it would be read as C clips of T samples) and,
    given ``sample_rate`` and ``max_seconds``, audio longer than ``max_seconds``."""
    if len(shape) == 2 and shape[1] <= MAX_CHANNELS < shape[0]:
        raise UserError(f"audio of shape {tuple(shape)} looks like [T, C] (samples × channels); "
                        f"pass [T] or [B, T] — mix to mono first, e.g. audio.mean(axis=1)")
    if max_seconds is not None and isinstance(sample_rate, int) and sample_rate > 0 and shape \
            and shape[-1] / sample_rate > max_seconds:
        raise UserError(f"the input audio is {shape[-1] / sample_rate:.1f} s long; the limit is "
                        f"{max_seconds:g} s (max_duration_seconds)")
