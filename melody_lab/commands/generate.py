"""``melody-lab generate | continue | inpaint``: make music with a bundle (default: shipped tiny).

Every audio file written gets a JSON sidecar ``NAME.EXT.json`` (format ``melody_lab.sidecar/1``,
see docs/cli.md) that records the call that made it, so the result can be regenerated exactly.
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager
import sys
from pathlib import Path

from ..errors import UserError
from ..pipeline import MAX_DURATION_SECONDS as MAX_SECONDS
from ..validation import MAX_SEED
from . import _args

MIN_SECONDS = 0.01
SIDECAR_FORMAT = "melody_lab.sidecar/1"

_positive_seconds = _args.bounded(float, MIN_SECONDS, MAX_SECONDS, "seconds")
_non_negative_seconds = _args.bounded(float, 0, _args.MAX_INPUT_SECONDS, "seconds")
_steps = _args.bounded(int, 1, 1000, "steps")


def _common(p: argparse.ArgumentParser) -> None:
    from ..diffusion import SCHEDULES

    p.add_argument("--out", required=True, type=_args.audio_out,
                   help="output audio file (.wav, .flac or .ogg); written only when generation "
                   "succeeds, with a JSON sidecar OUT.json; several outputs are numbered NAME-001.wav, …")
    p.add_argument("--format", choices=["wav", "flac", "ogg"], default=None,
                   help="audio format (default: from --out's suffix; --out may then omit it)")
    p.add_argument("--bundle", default="tiny",
                   help="model bundle folder, or 'tiny' for the one shipped in the package (default)")
    p.add_argument("--steps", type=_steps, default=None, help="diffusion sampling steps (default: the bundle's, 10)")
    p.add_argument("--schedule", default=None, choices=SCHEDULES.names(),
                   help="angle schedule (default: the bundle's, linear)")
    p.add_argument("--guidance", type=_args.guidance, default=None,
                   help="classifier-free guidance scale w in [0, 50] (default: the bundle's, 2.5)")
    p.add_argument("--lm-guidance", type=_args.lm_guidance, default=None, metavar="G",
                   help="the semantic LM's classifier-free guidance in [0, 20] (default: the "
                   "bundle's, 1 = none; other values need an LM trained with cond_dropout)")
    p.add_argument("--seed", type=_args.seed, default=0,
                   help=f"random seed in [0, {MAX_SEED}]: same seed, same audio")
    _args.add_threads(p)


def register(subparsers) -> None:
    gen = subparsers.add_parser(
        "generate", help="text prompt(s) or an audio prompt → music file(s)",
        description="Generate music from a text prompt, a file of prompts (one per line, run in "
        "batches) or a reference recording (--prompt-audio, music prompting).")
    gen.add_argument("prompt", nargs="?", type=_args.prompt, default=None,
                     help='what to play, e.g. "a lively Irish jig on fiddle"')
    gen.add_argument("--prompts", type=_args.prompts_file, default=None, metavar="FILE",
                     help=f"UTF-8 text file, one prompt per line (at most {_args.MAX_PROMPT_LINES})")
    gen.add_argument("--prompt-audio", type=_args.input_audio, default=None, metavar="FILE",
                     help=f"audio file to imitate (music prompting; at most {_args.MAX_INPUT_SECONDS:g} s)")
    gen.add_argument("--num-samples", type=_args.positive_int("num-samples", 100), default=1,
                     metavar="N", help="outputs per prompt, with seeds SEED, SEED+1, … (default 1)")
    gen.add_argument("--batch-size", type=_args.positive_int("batch-size", 64), default=8,
                     help="prompts generated together (default 8)")
    gen.add_argument("--duration", type=_positive_seconds, default=10.0,
                     help=f"seconds of audio in [{MIN_SECONDS:g}, {MAX_SECONDS:g}] (default 10)")
    _common(gen)
    gen.set_defaults(func=_generate)

    cont = subparsers.add_parser("continue", help="extend an audio file",
                                 description="Continue an audio file by --seconds of new music.")
    cont.add_argument("input", type=_args.input_audio,
                      help=f"audio file to continue (at most {_args.MAX_INPUT_SECONDS:g} s)")
    cont.add_argument("--seconds", type=_positive_seconds, required=True, help="seconds to add")
    cont.add_argument("--prompt", type=_args.prompt, default=None,
                      help="optional text prompt (default: the audio itself)")
    _common(cont)
    cont.set_defaults(func=_continue)

    inp = subparsers.add_parser("inpaint", help="regenerate a time range of an audio file",
                                description="Regenerate [--start, --end) seconds of an audio file; "
                                "everything else is kept sample for sample.")
    inp.add_argument("input", type=_args.input_audio,
                     help=f"audio file to edit (at most {_args.MAX_INPUT_SECONDS:g} s)")
    inp.add_argument("--start", type=_non_negative_seconds, required=True, help="start of the range (s)")
    inp.add_argument("--end", type=_non_negative_seconds, required=True, help="end of the range (s)")
    inp.add_argument("--prompt", type=_args.prompt, default=None,
                     help="optional text prompt (default: the audio itself)")
    _common(inp)
    inp.set_defaults(func=_inpaint)


def _out_paths(args, count: int) -> list[Path]:
    """The audio files this command will write (checked before the model loads)."""
    out = args.out
    if args.format:
        if out.suffix and out.suffix.lower() != f".{args.format}":
            raise UserError(f"--out {out} and --format {args.format} disagree; drop one")
        out = out.with_name(out.stem + f".{args.format}")
    elif not out.suffix:
        raise UserError(f"--out {out}: give a .wav, .flac or .ogg suffix, or --format")
    paths = [out] if count == 1 else [out.with_name(f"{out.stem}-{n:03d}{out.suffix}")
                                      for n in range(1, count + 1)]
    for path in paths:
        for target in (path, _sidecar(path)):
            if target.is_dir():
                raise UserError(f"--out: {target} is a folder; choose another file name")
    return paths


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


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
    if args.lm_guidance is not None:  # a sampling setting of the bundle, overridden for this run
        model.lm.check_guidance(args.lm_guidance)
        model.config = model.config.replace(lm_guidance=args.lm_guidance)
    if text:
        model.mulan.embed_text(["warm-up"])
    args.load_seconds = time.perf_counter() - started
    return model


@contextmanager
def _progress(calls: int):
    """One tqdm bar over the denoiser calls of ``calls`` pipeline calls of the same size, fed by
    the pipeline's ``callback(done, total)``; yields ``callback_for(i)`` for the i-th call."""
    from tqdm.auto import tqdm

    bar = tqdm(total=None, desc="diffusion", unit="step", file=sys.stderr)

    def callback_for(index: int):
        def callback(done: int, total: int) -> None:
            bar.total = total * calls
            bar.n = index * total + done
            bar.refresh()
        return callback

    try:
        yield callback_for
    finally:
        bar.close()


def _file_record(path: Path) -> dict:
    from ..io import sha256

    return {"path": str(path), "sha256": sha256(Path(path))}


def _sidecar_record(args, model, call: dict, index: int, audio_path: Path, samples: int) -> dict:
    """Everything needed to regenerate ``audio_path``: the pipeline call (its batch included,
    since batch-mates share the random streams), the bundle and its manifest hash, the version."""
    from .. import __version__
    from ..io import MANIFEST, sha256

    folder = Path(getattr(model, "bundle_dir", args.bundle))
    manifest = folder / MANIFEST
    return {
        "format": SIDECAR_FORMAT, "command": args.command, "audio": audio_path.name,
        "sample_rate": model.sample_rate, "seconds": samples / model.sample_rate,
        "prompt": call["prompts"][index] if "prompts" in call else call.get("prompt"),
        "seed": call["seed"], "steps": args.steps or model.config.steps,
        "schedule": args.schedule or model.config.schedule,
        "guidance": model.config.guidance if args.guidance is None else args.guidance,
        "lm_guidance": model.config.lm_guidance,
        "call": call, "batch_index": index,
        "bundle": {"name": args.bundle, "path": str(folder.resolve()),
                   "manifest_sha256": sha256(manifest) if manifest.is_file() else None},
        "melody_lab_version": __version__,
        "timings": {**model.last_timings, "load": args.load_seconds},
    }


class _Writer:
    """Writes outputs atomically with their sidecars; on failure removes what this command wrote,
    so a command either leaves all its files or none."""

    def __init__(self, args, model, paths: list[Path]):
        self.args, self.model, self.paths, self.written = args, model, iter(paths), []

    def write(self, audio, call: dict) -> None:
        import json

        from ..audio import save_audio
        from ..io import atomic_write_text

        for index, clip in enumerate(audio):
            path = next(self.paths)
            self.written.append(path)
            save_audio(path, clip, self.model.sample_rate)
            self.written.append(_sidecar(path))
            record = _sidecar_record(self.args, self.model, call, index, path, clip.shape[-1])
            atomic_write_text(_sidecar(path), json.dumps(record, indent=2, default=str) + "\n")
            print(f"wrote {path} ({clip.shape[-1] / self.model.sample_rate:.2f} s at "
                  f"{self.model.sample_rate} Hz) and {_sidecar(path).name}", file=sys.stderr)
        t = self.model.last_timings
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in t.items()
                           if k not in ("total", "rtf", "audio_seconds"))
        choice = getattr(self.args, "thread_choice", None)  # set by cli.main (the thread policy)
        threads = f"; {choice.summary()}" if choice else ""
        print(f"time {t['total']:.2f} s ({stages}); real-time factor {t['rtf']:.3f}; "
              f"loading the model took {self.args.load_seconds:.2f} s more{threads}", file=sys.stderr)

    def discard(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)


@contextmanager
def _all_or_nothing(args, model, paths):
    writer = _Writer(args, model, paths)
    try:
        yield writer
    except BaseException:
        writer.discard()
        raise


def _sampling(args) -> dict:
    return {"steps": args.steps, "schedule": args.schedule, "guidance": args.guidance}


def _generate(args) -> int:
    sources = [name for name, value in (("PROMPT", args.prompt), ("--prompts", args.prompts),
                                        ("--prompt-audio", args.prompt_audio)) if value is not None]
    if len(sources) != 1:
        raise UserError("give exactly one of PROMPT, --prompts FILE or --prompt-audio FILE"
                        + (f" (got {' and '.join(sources)})" if sources else
                           ', e.g. melody-lab generate "a calm chorale on organ" --out x.wav'))
    if args.seed + args.num_samples - 1 > MAX_SEED:
        raise UserError(f"--seed {args.seed} + --num-samples {args.num_samples} passes the largest "
                        f"seed {MAX_SEED}")
    prompts = [args.prompt] if args.prompt is not None else args.prompts
    seeds = [args.seed + k for k in range(args.num_samples)]
    count = len(seeds) * (1 if prompts is None else len(prompts))
    paths = _out_paths(args, count)
    reference = None if args.prompt_audio is None else _read_input(args.prompt_audio)
    model = _model(args, text=prompts is not None)
    if prompts is None:
        calls = [{"api": "generate_from_audio", "prompt_audio": _file_record(args.prompt_audio),
                  "duration_s": args.duration, "seed": seed, **_sampling(args)} for seed in seeds]
    else:
        batches = [prompts[i:i + args.batch_size] for i in range(0, len(prompts), args.batch_size)]
        calls = [{"api": "generate", "prompts": batch, "duration_s": args.duration, "seed": seed,
                  **_sampling(args)} for batch in batches for seed in seeds]
    with _progress(len(calls)) as callback_for, _all_or_nothing(args, model, paths) as writer:
        for index, call in enumerate(calls):
            kwargs = {k: call[k] for k in ("duration_s", "seed", "steps", "schedule", "guidance")}
            if prompts is None:
                audio = model.generate_from_audio(reference[0], reference[1], **kwargs,
                                                  callback=callback_for(index))
            else:
                audio = model.generate(call["prompts"], **kwargs, callback=callback_for(index))
            writer.write(audio, call)
    return 0


def _continue(args) -> int:
    paths = _out_paths(args, 1)
    audio, sr = _read_input(args.input)
    model = _model(args, text=args.prompt is not None)
    call = {"api": "continue_audio", "input": _file_record(args.input), "extra_s": args.seconds,
            "prompt": args.prompt, "seed": args.seed, **_sampling(args)}
    with _progress(1) as callback_for, _all_or_nothing(args, model, paths) as writer:
        out = model.continue_audio(audio, sr, args.seconds, prompt=args.prompt, steps=args.steps,
                                   schedule=args.schedule, guidance=args.guidance, seed=args.seed,
                                   callback=callback_for(0))
        writer.write(out, call)
    return 0


def _inpaint(args) -> int:
    if args.end <= args.start:
        raise UserError(f"--end ({args.end}) must be after --start ({args.start})")
    paths = _out_paths(args, 1)
    audio, sr = _read_input(args.input)
    model = _model(args, text=args.prompt is not None)
    call = {"api": "inpaint", "input": _file_record(args.input), "start_s": args.start,
            "end_s": args.end, "prompt": args.prompt, "seed": args.seed, **_sampling(args)}
    with _progress(1) as callback_for, _all_or_nothing(args, model, paths) as writer:
        out = model.inpaint(audio, sr, args.start, args.end, prompt=args.prompt, steps=args.steps,
                            schedule=args.schedule, guidance=args.guidance, seed=args.seed,
                            callback=callback_for(0))
        writer.write(out, call)
    return 0
