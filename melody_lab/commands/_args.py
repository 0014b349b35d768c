"""argparse ``type=`` functions: the one place where command-line values are checked.

Every value is checked when the command line is parsed, so a bad one stops the command with
argparse's one-line ``error:`` (exit 2) before any model, corpus or output file is touched. The
API-level limits (prompt length, largest seed, guidance range) come from
:mod:`melody_lab.validation`, so the CLI and the API refuse the same values.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from ..errors import UserError
from ..validation import GUIDANCE_RANGE, MAX_SEED, check_text

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MAX_INPUT_SECONDS = 120.0   # longest audio file `continue`, `inpaint` and `--prompt-audio` read
MAX_PROMPT_LINES = 1000     # most prompts in a `generate --prompts` file


def bounded(convert, low: float, high: float, what: str, low_inclusive: bool = True):
    """An argparse type: ``convert(text)`` checked to lie in [low, high] (or (low, high])."""
    kind = "an integer" if convert is int else "a number"

    def parse(text: str):
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{what}: expected {kind}, got {text!r}") from None
        above = value >= low if low_inclusive else value > low
        if not (math.isfinite(value) and above and value <= high):
            bracket = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(f"{what} must lie in {bracket}{low:g}, {high:g}], got {text}")
        return value

    parse.__name__ = what  # argparse names the type in "invalid <name> value" messages
    return parse


def _user(check):
    """Turn a :mod:`melody_lab.validation` check into an argparse type (UserError → usage error)."""

    def parse(text: str):
        try:
            return check(text)
        except UserError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


seed = bounded(int, 0, MAX_SEED, "seed")
guidance = bounded(float, *GUIDANCE_RANGE, "guidance")
LM_GUIDANCE_RANGE = (0.0, 20.0)
lm_guidance = bounded(float, *LM_GUIDANCE_RANGE, "lm-guidance")
prompt = _user(check_text)
threads = bounded(int, 1, 1024, "threads")


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` for a command that runs models; ``cli.main`` applies the thread policy
    (``melody_lab.threads``) to every command that has it, before the command runs."""
    parser.add_argument("--threads", type=threads, default=None,
                        help="torch threads (default: OMP_NUM_THREADS if set, else one per idle core)")


def positive_int(what: str, high: int = 10**9):
    return bounded(int, 1, high, what)


def positive_float(what: str, high: float = math.inf):
    return bounded(float, 0, high, what, low_inclusive=False)


def _os_safe(parse):
    """A path type whose OS errors (a name too long, a NUL byte) are usage errors too."""

    def checked(text: str):
        try:
            return parse(text)
        except (OSError, ValueError) as err:
            raise argparse.ArgumentTypeError(f"{_printable(text)[:200]}: {err.strerror or err}"
                                             if isinstance(err, OSError) else str(err)) from None

    checked.__name__ = parse.__name__
    return checked


def _printable(path: str) -> str:
    return ascii(path)[1:-1] if not path.isprintable() else path


def _writable_folder(folder: Path, flag: str, path: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{flag} {_printable(path)}: {folder} is a file, not a folder")
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{flag} {_printable(path)}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{flag} {_printable(path)}: folder {existing} is not writable")


@_os_safe
def audio_out(text: str) -> Path:
    """An audio file to write: a .wav/.flac/.ogg name (or no suffix, for ``--format``) whose
    folder exists and is writable, and that is not itself a folder (checked before generating)."""
    if not text:
        raise argparse.ArgumentTypeError("--out is empty: give a file name, e.g. out.wav")
    path = Path(text)
    if path.suffix.lower() not in (*AUDIO_SUFFIXES, ""):
        raise argparse.ArgumentTypeError(f"--out {_printable(text)}: use a .wav, .flac or .ogg file name")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"--out {_printable(text)} is a folder; give a file name in it")
    parent = path.parent
    if not parent.exists():
        raise argparse.ArgumentTypeError(f"--out {_printable(text)}: folder {parent} does not exist")
    _writable_folder(parent, "--out", text)
    return path


@_os_safe
def out_folder(text: str) -> Path:
    """An output folder: a non-empty path that is a folder or can be made one (not a file)."""
    if not text:
        raise argparse.ArgumentTypeError("--out is empty: give a folder, e.g. --out runs/x")
    _writable_folder(Path(text), "--out", text)
    return Path(text)


@_os_safe
def existing_file(text: str) -> Path:
    """A file that exists and can be read (not a folder)."""
    path = Path(text)
    if not text or not path.is_file():
        raise argparse.ArgumentTypeError(f"{_printable(text) or repr(text)}: file not found")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{_printable(text)}: file is not readable")
    return path


@_os_safe
def input_audio(text: str) -> Path:
    """A readable audio file of at most MAX_INPUT_SECONDS (its header is read, not its samples)."""
    import soundfile as sf

    path = existing_file(text)
    try:
        info = sf.info(os.fsencode(path))
    except Exception as err:  # libsndfile's error types vary by version  # noqa: BLE001
        raise argparse.ArgumentTypeError(f"cannot read audio file {_printable(text)}: "
                                         f"{str(err).splitlines()[0][:120]}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise argparse.ArgumentTypeError(f"audio file {_printable(text)} contains no samples")
    seconds = info.frames / info.samplerate
    if seconds > MAX_INPUT_SECONDS:
        raise argparse.ArgumentTypeError(
            f"audio file {_printable(text)} is {seconds:.1f} s long; the limit is "
            f"{MAX_INPUT_SECONDS:g} s (cut it first, e.g. sox in.wav out.wav trim 0 {MAX_INPUT_SECONDS:g})")
    return path


@_os_safe
def utf8_text_file(text: str) -> Path:
    """A readable file whose contents are UTF-8 text (grids, prompt lists)."""
    path = existing_file(text)
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise argparse.ArgumentTypeError(f"{_printable(text)} is not UTF-8 text "
                                         f"(byte {err.start}: {err.reason})") from None
    return path


@_os_safe
def prompts_file(text: str) -> list[str]:
    """A UTF-8 file with one prompt per line → the prompts (each checked like a prompt
    argument; blank lines and lines over the prompt limit are errors that name the line)."""
    path = utf8_text_file(text)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise argparse.ArgumentTypeError(f"prompts file {_printable(text)} is empty: "
                                         f"write one prompt per line")
    if len(lines) > MAX_PROMPT_LINES:
        raise argparse.ArgumentTypeError(f"prompts file {_printable(text)} has {len(lines):,} lines; "
                                         f"the limit is {MAX_PROMPT_LINES:,}")
    prompts = []
    for number, line in enumerate(lines, start=1):
        try:
            prompts.append(check_text(line.strip(), f"prompt on line {number}"))
        except UserError as err:
            raise argparse.ArgumentTypeError(f"prompts file {_printable(text)}: {err}") from None
    return prompts


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a command reports as a one-line error (exit 2) instead of a traceback."""
    from ..config import ConfigError
    from ..errors import UserError
    from ..registry import UnknownNameError
    from ..train.checkpoint import CheckpointError
    from ..train.loop import NonFiniteLossError

    return (UserError, ConfigError, UnknownNameError, CheckpointError, NonFiniteLossError,
            OSError)  # the environment (a missing file, no permission, a full disk, …)
