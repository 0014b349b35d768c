"""``melody-lab demo``: the local web page for the four jobs of a bundle.

    text → music              MeLoDy.generate
    audio prompt → music      MeLoDy.generate_from_audio (an uploaded clip through MuLan's audio tower)
    continue an upload        MeLoDy.continue_audio
    inpaint an upload         MeLoDy.inpaint

:class:`DemoSession` is the app's logic and needs no Gradio: it checks the inputs with the CLI's
own checks (so a bad input gives the CLI's one-line message), runs the model with a progress
callback over the denoiser's calls (the pipeline's ``callback``), writes the WAV and a spectrogram PNG, and reports the
per-stage times and the real-time factor. :func:`build_app` and :func:`serve` import Gradio (the
optional ``demo`` extra) only when the page is built, and serve on 127.0.0.1 only: no share link,
no analytics, no fonts or scripts from a CDN (Gradio ships its assets in the wheel).
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ._args import bounded

MODES = ("text", "audio prompt", "continue", "inpaint")
HOST = "127.0.0.1"
INSTALL_HINT = "pip install -e '.[demo]'"

#: progress(done, total): called after every denoiser call
Progress = Callable[[int, int], None]


@dataclass
class DemoResult:
    """One generation: the files it wrote and what it cost."""

    wav: Path            # 16-bit WAV at the bundle's sample rate
    spectrogram: Path    # PNG, log-mel spectrogram of the output
    seconds: float       # length of the output audio
    timings: dict        # MeLoDy.last_timings (per stage, total, rtf)

    def summary(self) -> str:
        """One line: the per-stage times and the real-time factor, as the CLI prints them."""
        t = self.timings
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in t.items()
                           if k not in ("total", "rtf", "audio_seconds"))
        return (f"{self.seconds:.2f} s of audio in {t['total']:.2f} s ({stages}); "
                f"real-time factor {t['rtf']:.3f}")


def _checked(parse, text, what: str):
    """Run one of the CLI's argparse checks; its message becomes a :class:`UserError`."""
    try:
        return parse(str(text))
    except argparse.ArgumentTypeError as err:
        raise UserError(f"{what}: {err}") from None


class DemoSession:
    """The model of one bundle (loaded once) and the demo's four jobs on it.

    ``out_dir`` receives one WAV and one PNG per call (a fresh temporary folder when None).
    """

    def __init__(self, bundle: str = "tiny", out_dir: str | Path | None = None):
        from ..pipeline import MeLoDy

        started = time.perf_counter()
        self.bundle = bundle
        self.model = MeLoDy.from_pretrained(bundle)
        self.model.mulan.embed_text(["warm-up"])  # import the text tower now, not on the first click
        self.load_seconds = time.perf_counter() - started
        self.out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="melody-lab-demo-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._count = 0

    @property
    def defaults(self) -> dict:
        """The bundle's sampling defaults (steps, schedule, guidance) for the page's controls."""
        c = self.model.config
        return {"steps": c.steps, "schedule": c.schedule, "guidance": c.guidance}

    def run(self, mode: str, prompt: str = "", audio_path: str | Path | None = None,
            duration: float = 5.0, start: float = 0.0, end: float = 1.0, steps: int | None = None,
            schedule: str | None = None, guidance: float | None = None, seed: int = 0,
            progress: Progress | None = None) -> DemoResult:
        """Check the inputs like the CLI does, generate, write WAV + spectrogram.

        ``duration`` is the length for text / audio prompt and the seconds to add for
        ``continue``; ``start``/``end`` the edit range of ``inpaint``. A text ``prompt`` is
        optional for continue/inpaint (default: the uploaded audio itself). Raises
        :class:`UserError` (one line) for bad input.
        """
        from ..diffusion import SCHEDULES
        from ._args import guidance as _guidance
        from .generate import _non_negative_seconds, _positive_seconds, _read_input, _steps

        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        prompt = (prompt or "").strip()
        steps = None if steps is None else _checked(_steps, _integral(steps, "steps"), "steps")
        guidance = None if guidance is None else _checked(_guidance, guidance, "guidance")
        if schedule is not None and schedule not in SCHEDULES.names():
            raise UserError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES.names())}")
        seed = _integral(seed, "seed")
        model = self.model
        kw = dict(steps=steps, schedule=schedule, guidance=guidance, seed=seed)
        audio = sr = None
        if mode != "text":
            if not audio_path:
                raise UserError(f"{mode}: upload an audio file first")
            audio, sr = _read_input(Path(audio_path))
        if mode == "inpaint":
            start = _checked(_non_negative_seconds, start, "start")
            end = _checked(_non_negative_seconds, end, "end")
            if end <= start:
                raise UserError(f"end ({end}) must be after start ({start})")
        else:
            duration = _checked(_positive_seconds, duration, "duration")

        if mode == "text" and not prompt:
            raise UserError("the prompt is empty: say what to play, e.g. \"a calm chorale on organ\"")
        kw["callback"] = progress  # progress(done, total) after every denoiser call
        if mode == "text":
            out = model.generate([prompt], duration, **kw)
        elif mode == "audio prompt":
            out = model.generate_from_audio(audio, sr, duration, **kw)
        elif mode == "continue":
            out = model.continue_audio(audio, sr, duration, prompt=prompt or None, **kw)
        else:
            out = model.inpaint(audio, sr, start, end, prompt=prompt or None, **kw)
        return self._write(out[0])

    def _write(self, audio) -> DemoResult:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..audio import save_audio
        from ..plotting import plot_spectrogram

        self._count += 1
        stem = self.out_dir / f"melody-{self._count:04d}"
        wav = save_audio(stem.with_suffix(".wav"), audio, self.model.sample_rate)
        ax = plot_spectrogram(audio, self.model.sample_rate, title="log-mel spectrogram of the output")
        ax.figure.set_size_inches(8, 2.6)
        ax.figure.tight_layout()
        png = stem.with_suffix(".png")
        ax.figure.savefig(png, dpi=90)
        plt.close(ax.figure)
        return DemoResult(wav, png, audio.shape[-1] / self.model.sample_rate,
                          dict(self.model.last_timings))


def _integral(value, what: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what}: expected a whole number, got {value!r}") from None
    if not (math.isfinite(number) and number == int(number)):
        raise UserError(f"{what}: expected a whole number, got {value!r}")
    return int(number)


# -- the page (needs the ``demo`` extra) ---------------------------------------------------------
def _gradio():
    """Import Gradio with its analytics off; a missing extra is a one-line error."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio as gr
    except ImportError:
        raise UserError(f"the web demo needs Gradio, the optional 'demo' extra: {INSTALL_HINT}") from None
    return gr


def build_app(session: DemoSession):
    """The Gradio Blocks page for ``session`` (not launched)."""
    from ..diffusion import SCHEDULES
    from ._args import expected_errors

    gr = _gradio()
    d = session.defaults
    expected = expected_errors()

    def generate(mode, prompt, audio_path, duration, start, end, steps, schedule, guidance, seed,
                 progress=gr.Progress()):
        def report(done, total):
            progress((done, total), desc="diffusion", unit="denoiser calls")

        try:
            result = session.run(mode, prompt, audio_path, duration, start, end, steps, schedule,
                                 guidance, seed, progress=report)
        except expected as err:  # the CLI's one-line message, never a traceback
            raise gr.Error(str(err) or type(err).__name__, print_exception=False) from None
        return str(result.wav), str(result.spectrogram), result.summary()

    with gr.Blocks(title="melody-lab demo", analytics_enabled=False) as app:
        gr.Markdown(f"## melody-lab — MeLoDy on your machine\nbundle `{session.bundle}` "
                    f"(loaded in {session.load_seconds:.1f} s); everything runs locally.")
        with gr.Row():
            with gr.Column():
                mode = gr.Radio(list(MODES), value="text", label="job")
                prompt = gr.Textbox(label="text prompt (optional for continue / inpaint)",
                                    value="a lively Irish jig on fiddle", lines=2)
                upload = gr.Audio(sources=["upload"], type="filepath",
                                  label="audio (for audio prompt, continue, inpaint)")
                duration = gr.Number(value=5.0, label="duration (s) — seconds to add when continuing")
                with gr.Row():
                    start = gr.Number(value=1.0, label="inpaint start (s)")
                    end = gr.Number(value=2.0, label="inpaint end (s)")
                with gr.Row():
                    steps = gr.Number(value=d["steps"], precision=0, label="steps")
                    schedule = gr.Dropdown(SCHEDULES.names(), value=d["schedule"], label="schedule")
                with gr.Row():
                    guidance = gr.Number(value=d["guidance"], label="guidance w")
                    seed = gr.Number(value=0, precision=0, label="seed")
                button = gr.Button("Generate", variant="primary")
            with gr.Column():
                audio_out = gr.Audio(type="filepath", label="result", interactive=False, buttons=["download"])
                spectrogram = gr.Image(type="filepath", label="spectrogram", interactive=False,
                                       buttons=["download"])
                timings = gr.Textbox(label="time per stage and real-time factor", interactive=False)
        button.click(generate, [mode, prompt, upload, duration, start, end, steps, schedule, guidance, seed],
                     [audio_out, spectrogram, timings], api_name="generate")
    return app


def serve(session: DemoSession, port: int = 7860, block: bool = True):
    """Serve the page on http://127.0.0.1:PORT (``port`` 0: a free one). Returns (app, url)."""
    gr = _gradio()
    if port == 0:
        import socket

        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
    app = build_app(session)
    try:
        _, url, _ = app.queue(default_concurrency_limit=1).launch(
            server_name=HOST, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
            show_error=False, quiet=True, ssr_mode=False, pwa=False, mcp_server=False,
            footer_links=["api", "settings"],
            allowed_paths=[str(session.out_dir)], theme=gr.themes.Default())
    except OSError as err:
        raise UserError(f"cannot serve on {HOST}:{port}: {err}") from None
    if block:
        print(f"melody-lab demo: open {url} (Ctrl-C stops)", flush=True)
        try:
            app.block_thread()
        finally:
            app.close()
    return app, url


# -- the command ----------------------------------------------------------------------------------
_port = bounded(int, 0, 65535, "port")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="local web demo on 127.0.0.1 (needs the 'demo' extra: pip install -e '.[demo]')",
        description="Serve a web page on http://127.0.0.1:PORT for text → music, audio prompting, "
        "continuation and inpainting of an uploaded file. Local only: no share link, no analytics, "
        "nothing loaded from the internet. Needs Gradio: pip install -e '.[demo]'.")
    p.add_argument("--bundle", default="tiny",
                   help="model bundle folder, or 'tiny' for the one shipped in the package (default)")
    p.add_argument("--port", type=_port, default=7860, help="port on 127.0.0.1 (default 7860; 0: any free port)")
    p.set_defaults(func=_demo)


def _demo(args) -> int:
    _gradio()  # a missing extra fails before the model is loaded
    serve(DemoSession(args.bundle), port=args.port)
    return 0
