"""MeLoDy: text or audio prompt → MuLan → RVQ codes → semantic LM → tokens → DPD → latent → audio.

    from melody_lab import MeLoDy
    model = MeLoDy.from_pretrained("tiny")                 # the bundle shipped in the package
    audio = model.generate(["a lively Irish jig on fiddle"], duration_s=10, seed=0)   # [1, T]
    model.last_timings                                     # {"lm": s, "diffusion": s, "decode": s, …}

Long outputs follow the paper: the LM continues its tokens over a sliding window and the diffusion
model continues the latent chunk by chunk (``diffusion.continue_latent``). ``continue_audio`` and
``inpaint`` return the input audio *sample for sample* outside the edited region (the codec cannot
reproduce it bit-exactly, so the original samples are spliced back with a short cross-fade that
lies inside the edited region); inside it, the latent frames of the known audio are held fixed
while the new frames are sampled, so the new audio is generated in context.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import resample
from .config import Config
from .diffusion import chunk_bounds, continue_latent, get_schedule, sample
from .errors import UserError
from .validation import check_audio_shape, check_guidance, check_prompts, check_seed, check_text


@dataclass
class MeLoDyConfig(Config):
    """How the assembled pipeline samples (component configs live in their own folders)."""

    window_seconds: float = 5.0    # the denoiser's training window (tiny: 5 s = 625 frames)
    num_chunks: int = 5            # M of multi-chunk training
    context_chunks: int | None = None  # chunks of known context per continuation window
    #                                    (None = M − 1: the paper's slide by one chunk)
    schedule: str = "linear"
    steps: int = 10
    guidance: float = 2.5          # paper: w = 2.5 for all samples
    temperature: float = 1.0
    top_k: int | None = 50
    crossfade_seconds: float = 0.02
    max_duration_seconds: float = 600.0
    names: dict = field(default_factory=lambda: {"codec": "vaegan", "denoiser": "dpd"})


class MeLoDy:
    """The assembled pipeline (see module docstring). All components run in eval mode."""

    def __init__(self, codec, denoiser, mulan, rvq, tokenizer, lm, config: MeLoDyConfig | None = None):
        self.codec, self.denoiser, self.mulan = codec.eval(), denoiser.eval(), mulan.eval()
        self.rvq, self.tokenizer, self.lm = rvq.eval(), tokenizer.eval(), lm.eval()
        self.config = config or MeLoDyConfig()
        self.sample_rate = int(codec.sample_rate)
        self.frame_rate = self.sample_rate / codec.hop_length           # latent frames per second
        self.token_rate = self.sample_rate / tokenizer.hop              # semantic tokens per second
        self.window_frames = round(self.config.window_seconds * self.frame_rate)
        self.window_tokens = round(self.config.window_seconds * self.token_rate)
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
        """Load a bundle folder (or ``"tiny"``, the bundle shipped inside the package)."""
        from .bundle import BundleError, load_denoiser, verify_manifest
        from .codecs import load_codec
        from .semantic import MuLan, ResidualVQ, SemanticLM, SemanticTokenizer

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
        verify_manifest(folder)
        config = MeLoDyConfig.from_dict(
            __import__("json").loads((folder / "melody.json").read_text())["config"])
        model = cls(load_codec(folder / "codec"), load_denoiser(folder / "denoiser"),
                    MuLan.from_pretrained(folder / "mulan"), ResidualVQ.from_pretrained(folder / "rvq"),
                    SemanticTokenizer.from_pretrained(folder / "tokenizer"),
                    SemanticLM.from_pretrained(folder / "lm"), config)
        model.bundle_dir = folder  # where it came from (recorded in the CLI's sidecars)
        return model

    def save_pretrained(self, folder: str | Path, half: bool = True) -> Path:
        """Write a bundle (fp16 weights when ``half``) with a SHA-256 manifest."""
        import json
        import shutil

        from .bundle import FORMAT, save_denoiser, write_manifest
        from .codecs import save_codec

        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        dtype = torch.float16 if half else torch.float32
        save_codec(self.codec, tmp / "codec", dtype=dtype)
        save_denoiser(self.denoiser, self.config.names.get("denoiser", "dpd"), tmp / "denoiser", dtype)
        for name in ("mulan", "rvq", "tokenizer", "lm"):
            # k-means centres and RVQ codebooks stay float32: rounding them moves token boundaries
            getattr(self, name).save_pretrained(tmp / name, half=half and name in ("mulan", "lm"))
        (tmp / "melody.json").write_text(json.dumps({"format": FORMAT,
                                                     "config": self.config.to_dict()}, indent=2))
        write_manifest(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        return folder

    # -- the two stages ----------------------------------------------------------------------
    def _check_duration(self, seconds: float, what: str = "duration") -> None:
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise UserError(f"{what} must be a positive number of seconds, got {seconds!r}")
        if round(seconds * self.sample_rate) < 1:
            raise UserError(f"{what} {seconds!r} s is shorter than one sample at {self.sample_rate} Hz")
        if seconds > self.config.max_duration_seconds:
            raise UserError(f"{what} {seconds} s is longer than the maximum "
                            f"{self.config.max_duration_seconds} s")

    def _sampling(self, steps, schedule, guidance):
        steps = self.config.steps if steps is None else steps
        if not isinstance(steps, int) or steps < 1:
            raise UserError(f"steps must be an integer >= 1, got {steps!r}")
        angles = get_schedule(schedule or self.config.schedule).angles(steps)
        guidance = self.config.guidance if guidance is None else float(guidance)
        if not math.isfinite(guidance):
            raise UserError(f"guidance must be a finite number, got {guidance!r}")
        return angles, guidance

    @torch.no_grad()
    def _plan(self, embedding: torch.Tensor, num_tokens: int, seed: int,
              previous: torch.Tensor | None = None) -> torch.Tensor:
        """MuLan embedding [B, E] → semantic tokens [B, num_tokens] (after ``previous`` if given)."""
        codes = self.rvq.quantize(embedding)
        previous = previous if previous is not None else torch.zeros(len(codes), 0, dtype=torch.long)
        return self.lm.continue_tokens(codes, previous, num_tokens,
                                       temperature=self.config.temperature,
                                       top_k=self.config.top_k, seed=seed)

    def _token_provider(self, tokens: torch.Tensor):
        ratio = self.frame_rate / self.token_rate

        def provide(start: int, end: int) -> torch.Tensor:
            a = min(int(start / ratio), tokens.shape[1] - 1)
            return tokens[:, a:max(a + 1, math.ceil(end / ratio))]

        return provide

    @torch.no_grad()
    def _render(self, tokens: torch.Tensor, num_frames: int, angles, guidance: float,
                generator: torch.Generator, context: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens → latent [B, num_frames, D] (continuing ``context`` latents when given)."""
        provide = self._token_provider(tokens)
        if context is None:
            first = min(num_frames, self.window_frames)
            noise = torch.randn(len(tokens), first, self.codec.latent_dim,
                                generator=generator).to(self.device)
            context = sample(self.denoiser, noise, angles, tokens=provide(0, first),
                             guidance=guidance, generator=generator)
        return continue_latent(self.denoiser, context, num_frames - context.shape[1], angles,
                               self.window_frames, self.config.num_chunks, provide, guidance,
                               generator, self.config.context_chunks)

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
        from .metrics.rtf import synchronize

        start = time.perf_counter()
        result = fn(*args, **kwargs)
        synchronize(self.device)
        self.last_timings[name] = self.last_timings.get(name, 0.0) + time.perf_counter() - start
        return result

    # -- public API --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[str], duration_s: float = 10.0, steps: int | None = None,
                 schedule: str | None = None, guidance: float | None = None, seed: int = 0) -> torch.Tensor:
        """Text prompts → audio ``[B, round(duration_s · sample_rate)]`` float32 in [-1, 1]."""
        prompts, seed, guidance = check_prompts(prompts), check_seed(seed), check_guidance(guidance)
        self._check_duration(duration_s)
        self.last_timings = {}
        embedding = self._timed("mulan", self.mulan.embed_text, list(prompts))
        return self._from_embedding(embedding, duration_s, steps, schedule, guidance, seed)

    @torch.no_grad()
    def plan(self, prompts: list[str], duration_s: float = 10.0, seed: int = 0) -> torch.Tensor:
        """Stage 1 alone: text prompts → the LM's semantic tokens ``[B, N]`` (long, 25 per second
        for the tiny model), the plan that :meth:`generate` renders for the same prompts, duration
        and seed."""
        prompts, seed = check_prompts(prompts), check_seed(seed)
        self._check_duration(duration_s)
        num_frames = max(1, math.ceil(round(duration_s * self.sample_rate) / self.codec.hop_length))
        num_tokens = max(1, math.ceil(num_frames * self.token_rate / self.frame_rate))
        return self._plan(self.mulan.embed_text(list(prompts)), num_tokens, seed)

    @torch.no_grad()
    def generate_from_audio(self, prompt_audio, sample_rate: int, duration_s: float = 10.0,
                            steps: int | None = None, schedule: str | None = None,
                            guidance: float | None = None, seed: int = 0) -> torch.Tensor:
        """Music prompting: a reference clip ``[T]`` or ``[B, T]`` goes through MuLan's audio tower."""
        seed, guidance = check_seed(seed), check_guidance(guidance)
        self._check_duration(duration_s)
        self.last_timings = {}
        audio = self._as_batch(prompt_audio, sample_rate)
        embedding = self._timed("mulan", self.mulan.embed_audio,
                                self._to_rate(audio, self.mulan.config.sample_rate))
        return self._from_embedding(embedding, duration_s, steps, schedule, guidance, seed)

    def _from_embedding(self, embedding, duration_s, steps, schedule, guidance, seed):
        angles, guidance = self._sampling(steps, schedule, guidance)
        num_samples = round(duration_s * self.sample_rate)
        num_frames = max(1, math.ceil(num_samples / self.codec.hop_length))
        num_tokens = max(1, math.ceil(num_frames * self.token_rate / self.frame_rate))
        generator = torch.Generator().manual_seed(seed)
        tokens = self._timed("lm", self._plan, embedding, num_tokens, seed)
        latent = self._timed("diffusion", self._render, tokens, num_frames, angles, guidance, generator)
        audio = self._timed("decode", self.codec.decode, latent)[:, :num_samples]
        return self._finish(audio, duration_s)

    @torch.no_grad()
    def continue_audio(self, audio, sample_rate: int, extra_s: float, prompt: str | None = None,
                       steps: int | None = None, schedule: str | None = None,
                       guidance: float | None = None, seed: int = 0) -> torch.Tensor:
        """Append ``extra_s`` seconds; the input comes back sample for sample at the start."""
        seed, guidance = check_seed(seed), check_guidance(guidance)
        prompt = prompt if prompt is None else check_text(prompt)
        self._check_duration(extra_s, "extra_s")
        self.last_timings = {}
        known = self._as_batch(audio, sample_rate)
        angles, guidance = self._sampling(steps, schedule, guidance)
        generator = torch.Generator().manual_seed(seed)
        embedding = self._prompt_embedding(prompt, known)
        context = self._timed("encode", self.codec.encode, known)
        known_tokens = self._timed("tokenize", self.tokenizer.tokenize, known)
        total_samples = known.shape[1] + round(extra_s * self.sample_rate)
        total_frames = math.ceil(total_samples / self.codec.hop_length)
        total_tokens = math.ceil(total_frames * self.token_rate / self.frame_rate)
        tokens = self._timed("lm", self._plan, embedding, max(0, total_tokens - known_tokens.shape[1]),
                             seed, known_tokens)
        latent = self._timed("diffusion", self._render, tokens, total_frames, angles, guidance,
                             generator, context)
        new = self._timed("decode", self.codec.decode, latent)[:, :total_samples]
        return self._finish(self._splice(known, new, known.shape[1], total_samples), total_samples / self.sample_rate)

    @torch.no_grad()
    def inpaint(self, audio, sample_rate: int, start_s: float, end_s: float,
                prompt: str | None = None, steps: int | None = None, schedule: str | None = None,
                guidance: float | None = None, seed: int = 0) -> torch.Tensor:
        """Regenerate ``[start_s, end_s)``; everything else comes back sample for sample."""
        seed, guidance = check_seed(seed), check_guidance(guidance)
        prompt = prompt if prompt is None else check_text(prompt)
        from .diffusion import inpaint as inpaint_latent

        known = self._as_batch(audio, sample_rate)
        seconds = known.shape[1] / self.sample_rate
        if not (0 <= start_s < end_s <= seconds + 1e-9):
            raise UserError(f"the edit range [{start_s}, {end_s}) s must lie inside the audio "
                            f"(0 to {seconds:.3f} s) and be non-empty")
        self.last_timings = {}
        angles, guidance = self._sampling(steps, schedule, guidance)
        generator = torch.Generator().manual_seed(seed)
        embedding = self._prompt_embedding(prompt, known)
        latent = self._timed("encode", self.codec.encode, known)
        tokens = self._timed("tokenize", self.tokenizer.tokenize, known)
        f0 = int(start_s * self.frame_rate)
        f1 = min(latent.shape[1], math.ceil(end_s * self.frame_rate))
        if f1 - f0 > self.window_frames:
            raise UserError(f"the edit range is {end_s - start_s:.2f} s; this model inpaints at "
                            f"most {self.config.window_seconds} s at a time")
        t0 = int(f0 * self.token_rate / self.frame_rate)
        t1 = min(tokens.shape[1], math.ceil(f1 * self.token_rate / self.frame_rate))
        planned = self._timed("lm", self._plan, embedding, t1 - t0, seed, tokens[:, :t0])
        tokens = torch.cat([planned, tokens[:, t1:]], dim=1)
        # a window of the denoiser's training length around the gap
        w0 = max(0, min(f0 - (self.window_frames - (f1 - f0)) // 2, latent.shape[1] - self.window_frames))
        w1 = min(latent.shape[1], w0 + self.window_frames)
        window_tokens = self._token_provider(tokens)(w0, w1)
        edited = self._timed("diffusion", inpaint_latent, self.denoiser, latent[:, w0:w1], f0 - w0,
                             f1 - w0, angles, window_tokens, guidance, generator)
        latent = torch.cat([latent[:, :w0], edited, latent[:, w1:]], dim=1)
        decoded = self._timed("decode", self.codec.decode, latent)[:, :known.shape[1]]
        s0, s1 = round(start_s * self.sample_rate), round(end_s * self.sample_rate)
        out = self._splice(known, decoded, s0, known.shape[1], end=s1)
        return self._finish(out, seconds)

    # -- helpers -----------------------------------------------------------------------------
    def _prompt_embedding(self, prompt: str | None, audio: torch.Tensor) -> torch.Tensor:
        if prompt is not None:
            if not prompt.strip():
                raise UserError("the prompt must be a non-empty text (or omitted)")
            return self._timed("mulan", self.mulan.embed_text, [prompt] * len(audio))
        return self._timed("mulan", self.mulan.embed_audio,
                           self._to_rate(audio, self.mulan.config.sample_rate))

    def _splice(self, original: torch.Tensor, generated: torch.Tensor, start: int, total: int,
                end: int | None = None) -> torch.Tensor:
        """``original`` outside [start, end) verbatim; ``generated`` inside, cross-faded at both
        edges over ``crossfade_seconds`` (the fades lie inside the edited range)."""
        out = generated.clone()
        out[:, :start] = original[:, :start]
        if end is not None:
            out[:, end:] = original[:, end:]
        stop = total if end is None else end
        fade = min(round(self.config.crossfade_seconds * self.sample_rate), (stop - start) // 2)
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

    def _as_batch(self, audio, sample_rate: int) -> torch.Tensor:
        """``[T]`` or ``[B, T]`` audio at ``sample_rate`` → ``[B, T']`` at the codec's rate."""
        audio = audio.detach().cpu().float() if torch.is_tensor(audio) else torch.from_numpy(
            np.asarray(audio, dtype=np.float32))
        check_audio_shape(tuple(audio.shape), sample_rate, self.config.max_duration_seconds)
        if audio.dim() == 1:
            audio = audio[None]
        if audio.dim() != 2 or audio.shape[1] == 0:
            raise UserError(f"audio must be [T] or [B, T] with T > 0, got shape {tuple(audio.shape)}")
        if not torch.isfinite(audio).all():
            raise UserError("audio contains NaN or infinite samples")
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise UserError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        return self._to_rate(audio, self.sample_rate, source=sample_rate).to(self.device)

    def _to_rate(self, audio: torch.Tensor, target: int, source: int | None = None) -> torch.Tensor:
        """Resample ``[B, T]`` from ``source`` (default: the codec's rate) to ``target`` Hz."""
        source = source or self.sample_rate
        if source == target:
            return audio
        device = audio.device
        resampled = np.stack([resample(a.cpu().numpy(), source, target) for a in audio])
        return torch.from_numpy(resampled).to(device)

    def _finish(self, audio: torch.Tensor, duration_s: float) -> torch.Tensor:
        self.last_timings["total"] = sum(self.last_timings.values())
        self.last_timings["audio_seconds"] = float(duration_s) * len(audio)
        # compute seconds per second of audio produced (a batch of B clips produces B × duration)
        self.last_timings["rtf"] = self.last_timings["total"] / max(self.last_timings["audio_seconds"], 1e-9)
        return audio.clamp(-1, 1).float().cpu()
