"""``melody-lab generate | continue | inpaint``: make music with a bundle (default: shipped tiny)."""
from __future__ import annotations

import argparse
import math
import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

MAX_SECONDS = 600.0


def _bounded(convert, low: float, high: float, what: str, low_inclusive: bool = True):
    """An argparse type: ``convert(text)`` checked to lie in [low, high] (or (low, high])."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: expected a number, got {text!r}") from None
        above = value >= low if low_inclusive else value > low
        if not (math.isfinite(value) and above and value <= high):
            bracket = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(f"{what} must lie in {bracket}{low:g}, {high:g}], got {text}")
        return value

    return parse


_positive_seconds = _bounded(float, 0, MAX_SECONDS, "seconds", low_inclusive=False)
_non_negative_seconds = _bounded(float, 0, math.inf, "seconds")
_steps = _bounded(int, 1, 1000, "steps")
_guidance = _bounded(float, 0, 50, "guidance")
_threads = _bounded(int, 1, 1024, "threads")


def _common(p: argparse.ArgumentParser) -> None:
    from ..diffusion import SCHEDULES

    p.add_argument("--out", required=True, type=Path,
                   help="output audio file (.wav, .flac or .ogg); written only when generation succeeds")
    p.add_argument("--bundle", default="tiny",
                   help="model bundle folder, or 'tiny' for the one shipped in the package (default)")
    p.add_argument("--steps", type=_steps, default=None, help="diffusion sampling steps (default: the bundle's, 10)")
    p.add_argument("--schedule", default=None, choices=SCHEDULES.names(),
                   help="angle schedule (default: the bundle's, linear)")
    p.add_argument("--guidance", type=_guidance, default=None,
                   help="classifier-free guidance scale w (default: the bundle's, 2.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same audio")
    p.add_argument("--threads", type=_threads, default=None,
                   help="torch threads (default: OMP_NUM_THREADS if set, else one per idle core)")


def register(subparsers) -> None:
    gen = subparsers.add_parser("generate", help="text prompt → music file",
                                description="Generate music from a text prompt.")
    gen.add_argument("prompt", help='what to play, e.g. "a lively Irish jig on fiddle"')
    gen.add_argument("--duration", type=_positive_seconds, default=10.0, help="seconds of audio (default 10)")
    _common(gen)
    gen.set_defaults(func=_generate)

    cont = subparsers.add_parser("continue", help="extend an audio file",
                                 description="Continue an audio file by --seconds of new music.")
    cont.add_argument("input", type=Path, help="audio file to continue")
    cont.add_argument("--seconds", type=_positive_seconds, required=True, help="seconds to add")
    cont.add_argument("--prompt", default=None, help="optional text prompt (default: the audio itself)")
    _common(cont)
    cont.set_defaults(func=_continue)

    inp = subparsers.add_parser("inpaint", help="regenerate a time range of an audio file",
                                description="Regenerate [--start, --end) seconds of an audio file; "
                                "everything else is kept sample for sample.")
    inp.add_argument("input", type=Path, help="audio file to edit")
    inp.add_argument("--start", type=_non_negative_seconds, required=True, help="start of the range (s)")
    inp.add_argument("--end", type=_non_negative_seconds, required=True, help="end of the range (s)")
    inp.add_argument("--prompt", default=None, help="optional text prompt (default: the audio itself)")
    _common(inp)
    inp.set_defaults(func=_inpaint)


def _check_out(path: Path) -> None:
    if path.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise UserError(f"--out {path}: use a .wav, .flac or .ogg file name")
    if path.parent and not path.parent.exists():
        raise UserError(f"--out {path}: folder {path.parent} does not exist")


def _read_input(path: Path):
    from ..audio import AudioFileError, load_audio, rms_db

    audio, sr = load_audio(path)
    if rms_db(audio) < -70:
        raise AudioFileError(f"input {path} is silent (level {rms_db(audio):.0f} dBFS)")
    return audio, sr


def _model(args, text: bool = True):
    """The bundle, with its one-time costs paid here (and reported as "load"): reading the
    weights and, when a text prompt will be used, importing the frozen MiniLM text tower."""
    import time

    from ..pipeline import MeLoDy

    started = time.perf_counter()
    model = MeLoDy.from_pretrained(args.bundle)
    if text:
        model.mulan.embed_text(["warm-up"])
    args.load_seconds = time.perf_counter() - started
    return model


@contextmanager
def _progress(model, windows: int, steps: int | None):
    """A tqdm bar over denoiser calls (``windows`` × ``steps``), fed by a forward hook."""
    from tqdm.auto import tqdm

    steps = model.config.steps if steps is None else steps
    bar = tqdm(total=windows * steps, desc="diffusion", unit="step", file=sys.stderr)
    def count(*_):  # returns None: a forward hook's return value would replace the output
        bar.update(1)

    hook = model.denoiser.register_forward_hook(count)
    try:
        yield bar
    finally:
        hook.remove()
        bar.close()


def _frames(model, seconds: float) -> int:
    return max(1, math.ceil(round(seconds * model.sample_rate) / model.codec.hop_length))


def _write(args, model, audio) -> int:
    from ..audio import save_audio

    save_audio(args.out, audio[0], model.sample_rate)
    t = model.last_timings
    choice = getattr(args, "thread_choice", None)  # set by cli.main (the thread policy)
    threads = f"; {choice.summary()}" if choice else ""
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in t.items()
                       if k not in ("total", "rtf", "audio_seconds"))
    print(f"wrote {args.out} ({audio.shape[1] / model.sample_rate:.2f} s at {model.sample_rate} Hz)\n"
          f"time {t['total']:.2f} s ({stages}); real-time factor {t['rtf']:.3f}; "
          f"loading the model took {args.load_seconds:.2f} s more{threads}", file=sys.stderr)
    return 0


def _generate(args) -> int:
    if not args.prompt.strip():
        raise UserError("the prompt is empty: say what to play, e.g. \"a calm chorale on organ\"")
    _check_out(args.out)
    model = _model(args)
    with _progress(model, model.diffusion_windows(_frames(model, args.duration)), args.steps):
        audio = model.generate([args.prompt], args.duration, steps=args.steps,
                               schedule=args.schedule, guidance=args.guidance, seed=args.seed)
    return _write(args, model, audio)


def _continue(args) -> int:
    _check_out(args.out)
    audio, sr = _read_input(args.input)
    model = _model(args, text=args.prompt is not None)
    seconds = audio.shape[-1] / sr
    windows = model.diffusion_windows(_frames(model, seconds + args.seconds), _frames(model, seconds))
    with _progress(model, windows, args.steps):
        out = model.continue_audio(audio, sr, args.seconds, prompt=args.prompt, steps=args.steps,
                                   schedule=args.schedule, guidance=args.guidance, seed=args.seed)
    return _write(args, model, out)


def _inpaint(args) -> int:
    _check_out(args.out)
    if args.end <= args.start:
        raise UserError(f"--end ({args.end}) must be after --start ({args.start})")
    audio, sr = _read_input(args.input)
    model = _model(args, text=args.prompt is not None)
    with _progress(model, 1, args.steps):
        out = model.inpaint(audio, sr, args.start, args.end, prompt=args.prompt, steps=args.steps,
                            schedule=args.schedule, guidance=args.guidance, seed=args.seed)
    return _write(args, model, out)
