"""MeLoDy: text or audio prompt → MuLan → RVQ codes → semantic LM → tokens → DPD → latent → audio.

    from melody_lab import MeLoDy
    model = MeLoDy.from_pretrained("tiny")                 # the bundle shipped in the package
    audio = model.generate(["a lively Irish jig on fiddle"], duration_s=10, seed=0)   # [1, T]
    model.last_timings                                     # {"lm": s, "diffusion": s, "decode": s, …}
    model.generate(["a reel"], 5, progress=True)           # a tqdm bar (or callback=fn(done, total))
    model.render(model.plan(["a reel"], 5), 5)             # the two stages apart (same audio)

Every entry point (``generate``, ``generate_from_audio``, ``render``, ``continue_audio``,
``inpaint``) runs one setup path (``_setup``) and sizes its output on one :class:`TimeGrid`
(samples ↔ frames ↔ tokens).

Long outputs follow the paper: the LM continues its tokens over a sliding window and the diffusion
model continues the latent chunk by chunk (``diffusion.continue_latent``). ``continue_audio`` and
``inpaint`` return the input audio *sample for sample* outside the edited region (the codec cannot
reproduce it bit-exactly, so the original samples are spliced back with a short cross-fade that
lies inside the edited region); inside it, the latent frames of the known audio are held fixed
while the new frames are sampled, so the new audio is generated in context.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .audio import as_batch, resample_batch, splice
from .config import Config
from .diffusion import chunk_bounds, continue_latent, get_schedule, sample
from .errors import UserError
from .validation import check_audio_shape, check_guidance, check_prompts, check_seed, check_text

#: the longest audio one call makes or adds (seconds); the CLI's bound too
MAX_DURATION_SECONDS = 600.0

ProgressCallback = Callable[[int, int], None]
"""``callback(done, total)``: after each denoiser call, ``done`` of ``total`` (windows × steps)."""


@dataclass
class MeLoDyConfig(Config):
    """How the assembled pipeline samples (component configs live in their own folders)."""

    window_seconds: float = 5.0    # the denoiser's training window (tiny: 5 s = 625 frames)
    num_chunks: int = 5            # M of multi-chunk training
    context_chunks: int | None = None  # chunks of known context per continuation window
    #                                    (None = M − 1: the paper's slide by one chunk)
    lm_step_tokens: int | None = None  # new LM tokens per call after the first window (None:
    #                                    the LM keeps max_tokens // 2; paper recipe: one chunk)
    schedule: str = "linear"
    steps: int = 10
    guidance: float = 2.5          # paper: w = 2.5 for all samples
    temperature: float = 1.0
    top_k: int | None = 50
    lm_guidance: float = 1.0       # the LM's classifier-free guidance (1: none; ≠ 1 needs an LM
    #                                trained with cond_dropout > 0; our addition, not the paper's)
    crossfade_seconds: float = 0.02
    max_duration_seconds: float = MAX_DURATION_SECONDS
    names: dict = field(default_factory=lambda: {"codec": "vaegan", "denoiser": "dpd"})


@dataclass(frozen=True)
class TimeGrid:
    """The three clocks of the pipeline and the conversions between them (the one place for them).

    Audio samples at ``sample_rate``; latent frames every ``hop_length`` samples (the codec's
    hop); semantic tokens every ``token_hop`` samples (the tokenizer's hop). Sizes of generated
    output round up (a partial frame or token is a whole one); positions of an edit round down at
    its start and up at its end, so the edited range covers the asked one.
    """

    sample_rate: int
    hop_length: int
    token_hop: int

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def token_rate(self) -> float:
        """Semantic tokens per second."""
        return self.sample_rate / self.token_hop

    def samples(self, seconds: float) -> int:
        """Seconds → the nearest whole number of samples."""
        return round(seconds * self.sample_rate)

    def frames(self, samples: int) -> int:
        """Latent frames that cover ``samples`` samples (at least 1)."""
        return max(1, math.ceil(samples / self.hop_length))

    def tokens(self, frames: int) -> int:
        """Semantic tokens that cover ``frames`` latent frames (at least 1)."""
        return max(1, math.ceil(frames * self.token_rate / self.frame_rate))

    def window(self, seconds: float) -> int:
        """Seconds → the nearest whole number of latent frames (the denoiser's window)."""
        return round(seconds * self.frame_rate)

    def frame_floor(self, seconds: float) -> int:
        """The latent frame that contains the time ``seconds``."""
        return int(seconds * self.frame_rate)

    def frame_ceil(self, seconds: float) -> int:
        """The first latent frame that starts at or after ``seconds``."""
        return math.ceil(seconds * self.frame_rate)

    def token_span(self, start: int, end: int) -> tuple[int, int]:
        """Latent frames ``[start, end)`` → the tokens ``[a, b)`` that overlap them."""
        return (int(start * self.token_rate / self.frame_rate),
                math.ceil(end * self.token_rate / self.frame_rate))


@dataclass
class _Run:
    """One call's sampling settings, made by :meth:`MeLoDy._setup`."""

    angles: torch.Tensor
    guidance: float
    generator: torch.Generator
    callback: _StepCounter | None  # the sampler's step callback (None: nobody listens)


class _StepCounter:
    """A :data:`~melody_lab.diffusion.StepCallback` that counts denoiser calls for a
    :data:`ProgressCallback` and/or a tqdm bar on stderr (opened at the first step)."""

    def __init__(self, total: int, callback: ProgressCallback | None, progress: bool):
        self.total, self.callback, self.progress = total, callback, progress
        self.done, self.bar = 0, None

    def __call__(self, step: int, z, v_hat, z_hat) -> None:
        self.done += 1
        if self.progress:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.total, desc="diffusion", unit="step", file=sys.stderr)
            self.bar.update(1)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _bundle_parts() -> dict:
    """The registry of each part of a bundle, by sub-folder (= constructor argument) name."""
    from .codecs import CODECS
    from .denoisers import DENOISERS
    from .semantic import LMS, MULANS, RVQS, TOKENIZERS

    return {"codec": CODECS, "denoiser": DENOISERS, "mulan": MULANS, "rvq": RVQS,
            "tokenizer": TOKENIZERS, "lm": LMS}


class MeLoDy:
    """The assembled pipeline (see module docstring). All components run in eval mode."""

    def __init__(self, codec, denoiser, mulan, rvq, tokenizer, lm, config: MeLoDyConfig | None = None):
        self.codec, self.denoiser, self.mulan = codec.eval(), denoiser.eval(), mulan.eval()
        self.rvq, self.tokenizer, self.lm = rvq.eval(), tokenizer.eval(), lm.eval()
        # the components' own registry names (a config default could disagree with them)
        self.config = (config or MeLoDyConfig()).replace(
            names={"codec": codec.name, "denoiser": denoiser.name})
        self.sample_rate = int(codec.sample_rate)
        self.time_grid = TimeGrid(self.sample_rate, codec.hop_length, tokenizer.hop)
        self.frame_rate = self.time_grid.frame_rate     # latent frames per second
        self.token_rate = self.time_grid.token_rate     # semantic tokens per second
        self.window_frames = self.time_grid.window(self.config.window_seconds)
        self.last_timings: dict[str, float] = {}
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> "MeLoDy":
        """Move every component to ``device`` (e.g. ``"cuda"``); audio comes back on the CPU."""
        self.device = torch.device(device)
        for name in ("codec", "denoiser", "mulan", "rvq", "tokenizer", "lm"):
            getattr(self, name).to(self.device)
        return self

    # -- bundles -----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path = "tiny") -> "MeLoDy":
        """Load a bundle folder (or ``"tiny"``, the bundle shipped inside the package). Only files
        the bundle's manifest lists and verifies are read, each checked (``melody_lab.io``)."""
        from .config import ConfigError
        from .errors import BundleError
        from .io import load_bundle

        folder = Path(name_or_dir)
        if str(name_or_dir) == "tiny" and not folder.exists():
            folder = Path(__file__).resolve().parent / "assets" / "bundles" / "tiny"
        if str(name_or_dir) == "tiny" and not folder.is_dir():
            raise BundleError("this installation has no shipped 'tiny' bundle yet (see "
                              "docs/tiny_model.md); pass a bundle folder instead, e.g. one "
                              "written by `melody-lab train all` or `melody-lab bundle`")
        if not folder.is_dir():
            raise BundleError(f"no bundle at {folder} (expected a folder made by save_pretrained, "
                              f"or the name 'tiny')")
        modules, meta = load_bundle(folder, _bundle_parts())
        try:
            config = MeLoDyConfig.from_dict(meta["config"])
        except ConfigError as err:
            raise BundleError(f"{folder / 'melody.json'}: {err}") from None
        model = cls(**modules, config=config)
        model.bundle_dir = folder  # where it came from (recorded in the CLI's sidecars)
        return model

    def save_pretrained(self, folder: str | Path, half: bool = True) -> Path:
        """Write a bundle with a SHA-256 manifest, atomically: one export folder per component
        (fp16 parameters when ``half``; buffers such as k-means centres stay float32), and a
        ``MODEL_CARD.md`` from ``self.card_info`` (set by ``train/assemble.py``; see ``io.model_card``)."""
        from .io import save_bundle

        parts = {part: getattr(self, part) for part in _bundle_parts()}
        return save_bundle(folder, parts, {"config": self.config.to_dict()},
                           half=set(parts) if half else set(), card=getattr(self, "card_info", None))

    # -- the one setup path -----------------------------------------------------------------
    def _check_duration(self, seconds: float, what: str = "duration") -> None:
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise UserError(f"{what} must be a positive number of seconds, got {seconds!r}")
        if round(seconds * self.sample_rate) < 1:
            raise UserError(f"{what} {seconds!r} s is shorter than one sample at {self.sample_rate} Hz")
        if seconds > self.config.max_duration_seconds:
            raise UserError(f"{what} {seconds} s is longer than the maximum "
                            f"{self.config.max_duration_seconds} s")

    def _setup(self, steps: int | None, schedule: str | None, guidance: float | None, seed: int,
               windows: int, callback: ProgressCallback | None, progress: bool) -> _Run:
        """What every entry point does first: check the sampling settings, seed the generator,
        clear ``last_timings``, and turn ``callback`` / ``progress`` into the sampler's step
        callback over ``windows`` windows × ``steps`` denoiser calls."""
        steps = self.config.steps if steps is None else steps
        if not isinstance(steps, int) or steps < 1:
            raise UserError(f"steps must be an integer >= 1, got {steps!r}")
        angles = get_schedule(schedule or self.config.schedule).angles(steps)
        guidance = self.config.guidance if guidance is None else float(guidance)
        if not math.isfinite(guidance):
            raise UserError(f"guidance must be a finite number, got {guidance!r}")
        self.last_timings = {}
        counter = _StepCounter(windows * steps, callback, progress)
        return _Run(angles, guidance, torch.Generator().manual_seed(seed),
                    counter if (callback is not None or progress) else None)

    def _embed(self, prompts: list[str] | None, audio: torch.Tensor | None) -> torch.Tensor:
        """MuLan embedding ``[B, E]`` of text prompts, else of ``audio [B, T]`` (codec rate)."""
        if prompts is not None:
            return self._timed("mulan", self.mulan.embed_text, list(prompts))
        return self._timed("mulan", self.mulan.embed_audio,
                           resample_batch(audio, self.sample_rate, self.mulan.config.sample_rate))

    def _decode(self, run: _Run, latent: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Latent ``[B, L, D]`` → audio ``[B, num_samples]`` (and the progress bar closed)."""
        if run.callback is not None:
            run.callback.close()
        return self._timed("decode", self.codec.decode, latent)[:, :num_samples]

    # -- the two stages ----------------------------------------------------------------------
    @torch.no_grad()
    def _plan(self, embedding: torch.Tensor, num_tokens: int, seed: int,
              previous: torch.Tensor | None = None) -> torch.Tensor:
        """MuLan embedding [B, E] → semantic tokens [B, num_tokens] (after ``previous`` if given)."""
        codes = self.rvq.quantize(embedding)
        previous = previous if previous is not None else torch.zeros(len(codes), 0, dtype=torch.long)
        step, most = self.config.lm_step_tokens, self.lm.config.max_tokens
        if step is not None and not 1 <= step <= most:
            raise UserError(f"lm_step_tokens must lie in [1, {most}] (the LM's max_tokens), "
                            f"got {step}")
        window = None if step is None else most - step
        return self.lm.continue_tokens(codes, previous, num_tokens, window=window,
                                       temperature=self.config.temperature,
                                       top_k=self.config.top_k, seed=seed,
                                       guidance=self.config.lm_guidance)

    def _token_provider(self, tokens: torch.Tensor):
        def provide(start: int, end: int) -> torch.Tensor:
            a, b = self.time_grid.token_span(start, end)
            a = min(a, tokens.shape[1] - 1)
            return tokens[:, a:max(a + 1, b)]

        return provide

    @torch.no_grad()
    def _render(self, run: _Run, tokens: torch.Tensor, num_frames: int,
                context: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens → latent [B, num_frames, D] (continuing ``context`` latents when given)."""
        provide = self._token_provider(tokens)
        if context is None:
            first = min(num_frames, self.window_frames)
            noise = torch.randn(len(tokens), first, self.codec.latent_dim,
                                generator=run.generator).to(self.device)
            context = sample(self.denoiser, noise, run.angles, tokens=provide(0, first),
                             guidance=run.guidance, generator=run.generator, callback=run.callback)
        return continue_latent(self.denoiser, context, num_frames - context.shape[1], run.angles,
                               self.window_frames, self.config.num_chunks, provide, run.guidance,
                               run.generator, self.config.context_chunks, callback=run.callback)

    def diffusion_windows(self, num_frames: int, known_frames: int = 0) -> int:
        """How many denoiser windows rendering a latent of ``num_frames`` frames takes, the first
        ``known_frames`` of them given (continuation). Each window costs ``steps`` denoiser calls
        (guidance batches its two branches into one call), so this sizes progress bars."""
        chunks = self.config.num_chunks
        context = chunks - 1 if self.config.context_chunks is None else self.config.context_chunks
        new = self.window_frames - chunk_bounds(self.window_frames, chunks)[context]
        first = 0 if known_frames else min(num_frames, self.window_frames)
        return (1 if first else 0) + max(0, math.ceil((num_frames - max(first, known_frames)) / new))

    def _timed(self, name: str, fn, *args, **kwargs):
        """Run ``fn`` and add its wall time (GPU work included) to ``last_timings[name]``."""
        from .devices import synchronize

        start = time.perf_counter()
        result = fn(*args, **kwargs)
        synchronize(self.device)
        self.last_timings[name] = self.last_timings.get(name, 0.0) + time.perf_counter() - start
        return result

    # -- public API --------------------------------------------------------------------------
    # Every entry point: check its inputs → sizes on the time grid → _setup → MuLan embedding →
    # LM plan → diffusion render → decode → _finish. ``callback(done, total)`` is called after
    # each denoiser call (total = windows × steps); ``progress=True`` draws a tqdm bar on stderr.
    @torch.no_grad()
    def generate(self, prompts: list[str], duration_s: float = 10.0, steps: int | None = None,
                 schedule: str | None = None, guidance: float | None = None, seed: int = 0,
                 callback: ProgressCallback | None = None, progress: bool = False) -> torch.Tensor:
        """Text prompts → audio ``[B, round(duration_s · sample_rate)]`` float32 in [-1, 1]."""
        prompts, seed, guidance = check_prompts(prompts), check_seed(seed), check_guidance(guidance)
        self._check_duration(duration_s)
        return self._from_embedding(prompts, None, duration_s, steps, schedule, guidance, seed,
                                    callback, progress)

    @torch.no_grad()
    def plan(self, prompts: list[str], duration_s: float = 10.0, seed: int = 0) -> torch.Tensor:
        """Stage 1 alone: text prompts → the LM's semantic tokens ``[B, N]`` (long, 25 per second
        for the tiny model), the plan that :meth:`generate` renders for the same prompts, duration
        and seed."""
        prompts, seed = check_prompts(prompts), check_seed(seed)
        self._check_duration(duration_s)
        num_tokens = self.time_grid.tokens(self.time_grid.frames(self.time_grid.samples(duration_s)))
        return self._plan(self.mulan.embed_text(prompts), num_tokens, seed)

    @torch.no_grad()
    def generate_from_audio(self, prompt_audio, sample_rate: int, duration_s: float = 10.0,
                            steps: int | None = None, schedule: str | None = None,
                            guidance: float | None = None, seed: int = 0,
                            callback: ProgressCallback | None = None,
                            progress: bool = False) -> torch.Tensor:
        """Music prompting: a reference clip ``[T]`` or ``[B, T]`` goes through MuLan's audio tower."""
        seed, guidance = check_seed(seed), check_guidance(guidance)
        self._check_duration(duration_s)
        audio = self._input_audio(prompt_audio, sample_rate)
        return self._from_embedding(None, audio, duration_s, steps, schedule, guidance, seed,
                                    callback, progress)

    def _from_embedding(self, prompts, audio, duration_s, steps, schedule, guidance, seed,
                        callback, progress):
        num_samples = self.time_grid.samples(duration_s)
        num_frames = self.time_grid.frames(num_samples)
        run = self._setup(steps, schedule, guidance, seed, self.diffusion_windows(num_frames),
                          callback, progress)
        embedding = self._embed(prompts, audio)
        tokens = self._timed("lm", self._plan, embedding, self.time_grid.tokens(num_frames), seed)
        return self._tokens_to_audio(run, tokens, num_frames, num_samples, duration_s)

    def _tokens_to_audio(self, run: _Run, tokens: torch.Tensor, num_frames: int, num_samples: int,
                         duration_s: float) -> torch.Tensor:
        """Stage 2 of :meth:`generate` and :meth:`render`: tokens → latent → audio, finished."""
        latent = self._timed("diffusion", self._render, run, tokens, num_frames)
        return self._finish(self._decode(run, latent, num_samples), duration_s)

    @torch.no_grad()
    def render(self, tokens: torch.Tensor, duration_s: float | None = None, steps: int | None = None,
               schedule: str | None = None, guidance: float | None = None, seed: int = 0,
               callback: ProgressCallback | None = None, progress: bool = False) -> torch.Tensor:
        """Stage 2 alone: semantic tokens ``[B, N]`` (long, in ``[0, semantic_vocab)``) → audio
        ``[B, round(duration_s · sample_rate)]``; ``duration_s`` defaults to the tokens' length
        (N / token_rate) and may not ask for more than they cover.

        ``render(plan(p, d, seed=s), d, seed=s)`` is ``generate(p, d, seed=s)`` bit for bit;
        ``render(tokenizer.tokenize(clip))`` renders a real clip's own tokens (the stage diagnostic,
        :mod:`melody_lab.ablation.diagnostic`)."""
        seed, guidance = check_seed(seed), check_guidance(guidance)
        tokens = self._check_tokens(tokens)
        if duration_s is None:
            duration_s = tokens.shape[1] / self.token_rate
        self._check_duration(duration_s)
        num_samples = self.time_grid.samples(duration_s)
        num_frames = self.time_grid.frames(num_samples)
        needed = self.time_grid.tokens(num_frames)
        if tokens.shape[1] < needed:
            raise UserError(f"{tokens.shape[1]} tokens cover {tokens.shape[1] / self.token_rate:.3f} s; "
                            f"rendering {duration_s} s needs {needed}")
        run = self._setup(steps, schedule, guidance, seed, self.diffusion_windows(num_frames),
                          callback, progress)
        return self._tokens_to_audio(run, tokens.to(self.device), num_frames, num_samples, duration_s)

    @torch.no_grad()
    def continue_audio(self, audio, sample_rate: int, extra_s: float, prompt: str | None = None,
                       steps: int | None = None, schedule: str | None = None,
                       guidance: float | None = None, seed: int = 0,
                       callback: ProgressCallback | None = None,
                       progress: bool = False) -> torch.Tensor:
        """Append ``extra_s`` seconds; the input comes back sample for sample at the start."""
        seed, guidance = check_seed(seed), check_guidance(guidance)
        self._check_duration(extra_s, "extra_s")
        known = self._input_audio(audio, sample_rate)
        prompts = _check_prompt(prompt, len(known))
        total_samples = known.shape[1] + self.time_grid.samples(extra_s)
        total_frames = self.time_grid.frames(total_samples)
        run = self._setup(steps, schedule, guidance, seed,
                          self.diffusion_windows(total_frames, self.time_grid.frames(known.shape[1])),
                          callback, progress)
        embedding = self._embed(prompts, known)
        context = self._timed("encode", self.codec.encode, known)
        known_tokens = self._timed("tokenize", self.tokenizer.tokenize, known)
        tokens = self._timed("lm", self._plan, embedding,
                             max(0, self.time_grid.tokens(total_frames) - known_tokens.shape[1]),
                             seed, known_tokens)
        latent = self._timed("diffusion", self._render, run, tokens, total_frames, context)
        new = self._decode(run, latent, total_samples)
        return self._finish(splice(known, new, known.shape[1], total_samples, fade=self._fade()),
                            total_samples / self.sample_rate)

    @torch.no_grad()
    def inpaint(self, audio, sample_rate: int, start_s: float, end_s: float,
                prompt: str | None = None, steps: int | None = None, schedule: str | None = None,
                guidance: float | None = None, seed: int = 0,
                callback: ProgressCallback | None = None, progress: bool = False) -> torch.Tensor:
        """Regenerate ``[start_s, end_s)``; everything else comes back sample for sample."""
        seed, guidance = check_seed(seed), check_guidance(guidance)
        from .diffusion import inpaint as inpaint_latent

        known = self._input_audio(audio, sample_rate)
        seconds = known.shape[1] / self.sample_rate
        if not (0 <= start_s < end_s <= seconds + 1e-9):
            raise UserError(f"the edit range [{start_s}, {end_s}) s must lie inside the audio "
                            f"(0 to {seconds:.3f} s) and be non-empty")
        prompts = _check_prompt(prompt, len(known))
        run = self._setup(steps, schedule, guidance, seed, 1, callback, progress)
        embedding = self._embed(prompts, known)
        latent = self._timed("encode", self.codec.encode, known)
        tokens = self._timed("tokenize", self.tokenizer.tokenize, known)
        f0 = self.time_grid.frame_floor(start_s)
        f1 = min(latent.shape[1], self.time_grid.frame_ceil(end_s))
        if f1 - f0 > self.window_frames:
            raise UserError(f"the edit range is {end_s - start_s:.2f} s; this model inpaints at "
                            f"most {self.config.window_seconds} s at a time")
        t0, t1 = self.time_grid.token_span(f0, f1)
        t1 = min(tokens.shape[1], t1)
        planned = self._timed("lm", self._plan, embedding, t1 - t0, seed, tokens[:, :t0])
        tokens = torch.cat([planned, tokens[:, t1:]], dim=1)
        # a window of the denoiser's training length around the gap
        w0 = max(0, min(f0 - (self.window_frames - (f1 - f0)) // 2, latent.shape[1] - self.window_frames))
        w1 = min(latent.shape[1], w0 + self.window_frames)
        edited = self._timed("diffusion", inpaint_latent, self.denoiser, latent[:, w0:w1], f0 - w0,
                             f1 - w0, run.angles, self._token_provider(tokens)(w0, w1),
                             run.guidance, run.generator, run.callback)
        latent = torch.cat([latent[:, :w0], edited, latent[:, w1:]], dim=1)
        decoded = self._decode(run, latent, known.shape[1])
        out = splice(known, decoded, self.time_grid.samples(start_s), known.shape[1],
                     end=self.time_grid.samples(end_s), fade=self._fade())
        return self._finish(out, seconds)

    # -- helpers -----------------------------------------------------------------------------
    def _check_tokens(self, tokens) -> torch.Tensor:
        """Semantic tokens for :meth:`render`: an integer ``[B, N]`` tensor (N ≥ 1) in the LM's vocabulary."""
        vocab = self.lm.config.semantic_vocab
        if not (isinstance(tokens, torch.Tensor) and tokens.dim() == 2 and tokens.shape[0] >= 1
                and tokens.shape[1] >= 1 and not tokens.is_floating_point() and not tokens.is_complex()):
            raise UserError(f"tokens must be an integer tensor [B, N] with B, N >= 1, got "
                            f"{getattr(tokens, 'shape', type(tokens).__name__)}")
        if int(tokens.min()) < 0 or int(tokens.max()) >= vocab:
            raise UserError(f"tokens must lie in [0, {vocab}) (the semantic vocabulary), got "
                            f"[{int(tokens.min())}, {int(tokens.max())}]")
        return tokens.long()

    def _fade(self) -> int:
        """Cross-fade length in samples where spliced audio meets the original."""
        return round(self.config.crossfade_seconds * self.sample_rate)

    def _input_audio(self, audio, sample_rate: int) -> torch.Tensor:
        """Checked ``[T]`` / ``[B, T]`` input audio → ``[B, T']`` at the codec's rate, on the device
        (a ``[T, C]`` array or one longer than ``max_duration_seconds`` is refused first)."""
        shape = tuple(audio.shape) if hasattr(audio, "shape") else tuple(np.shape(audio))
        check_audio_shape(shape, sample_rate, self.config.max_duration_seconds)
        return as_batch(audio, sample_rate, self.sample_rate).to(self.device)

    def _finish(self, audio: torch.Tensor, duration_s: float) -> torch.Tensor:
        self.last_timings["total"] = sum(self.last_timings.values())
        self.last_timings["audio_seconds"] = float(duration_s) * len(audio)
        # compute seconds per second of audio produced (a batch of B clips produces B × duration)
        self.last_timings["rtf"] = self.last_timings["total"] / max(self.last_timings["audio_seconds"], 1e-9)
        return audio.clamp(-1, 1).float().cpu()


def _check_prompt(prompt: str | None, batch: int) -> list[str] | None:
    """The optional text prompt of an edit, repeated for the batch (None: prompt with the audio)."""
    return None if prompt is None else [check_text(prompt)] * batch
