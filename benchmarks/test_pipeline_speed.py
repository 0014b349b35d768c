"""End-to-end generation speed: per-stage times, FLOPs, fraction of the matmul peak, threads.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_pipeline_speed.py -s          # tiny: 10 s, 10 steps, w = 2.5
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_pipeline_speed.py -s --quick  # micro smoke run (CI)

Models: the shipped tiny bundle when it exists, else a random-weight pipeline of exactly the tiny
sizes; and, only when the ``tiny`` DPD preset differs from the bundle's DPD, the same pipeline with
a DPD of that preset swapped in (random weights: speed does not depend on them). Today both are
the GRU fine path, so there is one model. Each (model, continuation setting, thread count) is one
CSV row: ``context_chunks`` the bundle's default, M − 1 (the paper's slide-by-one-chunk) and 1
(version 1's bundle default; not with --quick); 1 and 2 torch threads, and for a GRU fine path at
2 threads both ways of running it (``gru_directions``: the two directions in two threads, today's
default, or one ``nn.GRU`` call, as before) (set in-process, whatever OMP_NUM_THREADS says; --quick: 1 thread). Timings follow melody_lab.metrics.rtf: a
warm-up run, then the median of timed runs. Each row also gives the matmul/conv/attention FLOPs of
every stage (one untimed generation under FlopCounterMode), the denoiser's GFLOP per call and
achieved GFLOP/s, and the fp32 matmul peak measured in the same run (2048², that thread count,
best of the run's start and end).
Further tests: the semantic LM with and without its KV cache (time and FLOPs), where the decoder's
time goes (and its inference route against the training route), and the thread policy as the machine is and beside one extra busy process.
Nothing here asserts a speed: the numbers go to the README and docs with the machine and command.
"""
from __future__ import annotations

import csv
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils import flop_counter

from melody_lab.debug import build_debug_pipeline
from melody_lab.denoisers import DPD, denoiser_config
from melody_lab.denoisers.sru import BiGRU
from melody_lab.metrics.rtf import measure_rtf
from melody_lab.pipeline import MeLoDy
from melody_lab.threads import choose_threads

TINY = Path(__file__).resolve().parents[1] / "melody_lab" / "assets" / "bundles" / "tiny"
PROMPT = "a lively Irish jig on fiddle"
STAGES = {"DPD": "diffusion", "UNet1D": "diffusion", "SemanticLM": "lm"}  # FLOP-counter module -> stage


def _bundle(quick: bool) -> tuple[MeLoDy, str]:
    if quick:
        return build_debug_pipeline(preset="micro"), "micro (random weights)"
    if (TINY / "manifest.json").exists():
        return MeLoDy.from_pretrained("tiny"), "tiny bundle"
    return build_debug_pipeline(preset="tiny"), "tiny sizes (random weights)"


def _models(quick: bool) -> dict[str, MeLoDy]:
    """label -> pipeline: the bundle as shipped, and with the DPD of today's preset (random weights)."""
    model, label = _bundle(quick)
    models = {f"{label}, fine path {model.denoiser.config.rnn_type}": model}
    cfg = model.denoiser.config
    preset = denoiser_config("dpd", "micro" if quick else "tiny", latent_dim=cfg.latent_dim,
                             vocab_size=cfg.vocab_size)
    if preset != cfg:
        swapped, _ = _bundle(quick)
        torch.manual_seed(0)
        swapped.denoiser = DPD(preset).eval()
        models[f"{label}, DPD preset today: {preset.rnn_type} (random weights)"] = swapped
    return models


def matmul_peak_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best of ``repeats`` fp32 size² matmuls at ``threads`` threads, GFLOP/s."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size)
        a @ a
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2 * size ** 3 / best / 1e9


def _stage_flops(model: MeLoDy, seconds: float, steps: int) -> tuple[dict[str, float], int]:
    """GFLOP per stage of one generation (FlopCounterMode) and the number of denoiser calls."""
    calls = []
    hook = model.denoiser.register_forward_hook(lambda *_: calls.append(1))
    try:
        with flop_counter.FlopCounterMode(display=False) as counter:
            model.generate([PROMPT], seconds, steps=steps, guidance=2.5, seed=0)
    finally:
        hook.remove()
    per_module = {name: sum(ops.values()) / 1e9 for name, ops in counter.get_flop_counts().items()}
    flops = {"diffusion": 0.0, "lm": 0.0}
    for module, stage in STAGES.items():
        flops[stage] += per_module.get(module, 0.0)
    flops["decode"] = per_module.get("Global", 0.0) - sum(flops.values())  # codec (+ MuLan's tiny share)
    return flops, len(calls)


def test_generation_speed(request, tmp_path):
    quick = request.config.getoption("--quick")
    seconds, steps, repeats = (2.0, 2, 1) if quick else (10.0, 10, 2)
    out = tmp_path if quick else Path("results/benchmarks")
    out.mkdir(parents=True, exist_ok=True)
    before = torch.get_num_threads()
    peaks = {threads: matmul_peak_gflops(threads) for threads in (1, 2)}
    rows = []
    try:
        for label, model in _models(quick).items():
            default_context = model.config.context_chunks
            paper_context = model.config.num_chunks - 1
            contexts = (default_context or paper_context, paper_context) + (() if quick else (1,))
            for context in dict.fromkeys(contexts):  # 1: version 1's bundle default (the issue's 5.45 s)
                model.config.context_chunks = context
                flops, calls = _stage_flops(model, seconds, steps)
                gru = model.denoiser.config.rnn_type == "gru"
                settings = [(1, True)] if quick else [(1, True), (2, True)] + ([(2, False)] if gru else [])
                for threads, parallel in settings:  # --quick stays fast beside other jobs
                    torch.set_num_threads(threads)
                    BiGRU.parallel_directions = parallel  # (2, False): the GRU as one nn.GRU call, as before

                    def run(timer, model=model):
                        model.generate([PROMPT], seconds, steps=steps, guidance=2.5, seed=0)
                        for stage, value in model.last_timings.items():
                            if stage not in ("total", "rtf", "audio_seconds"):
                                timer.seconds[stage] += value  # the pipeline's own stage times

                    # 2 threads beside other jobs can be 10-40x slower: one timed run there
                    result = measure_rtf(run, audio_seconds=seconds, warmup=1,
                                         repeats=repeats if threads == 1 else 1)
                    stage_s = result.stage_seconds
                    rate = {k: flops[k] / stage_s[k] for k in flops if stage_s.get(k)}
                    rows.append({
                        "model": label, "fine_path": model.denoiser.config.rnn_type,
                        "context_chunks": context,
                        "setting": ("paper (slide by one chunk)" if context == paper_context
                                    else "bundle default" if context == default_context
                                    else f"{context} chunk(s) of context"),
                        "threads": threads,
                        "gru_directions": ("" if not gru else "one call" if threads == 1 or not parallel
                                           else "two threads"),
                        "seconds": seconds, "steps": steps, "guidance": 2.5,
                        "rtf": result.rtf, "total_s": result.total_seconds,
                        **{f"{k}_s": v for k, v in stage_s.items()},
                        **{f"{k}_gflop": v for k, v in flops.items()},
                        "denoiser_calls": calls, "denoiser_gflop_per_call": flops["diffusion"] / calls,
                        **{f"{k}_gflop_per_s": v for k, v in rate.items()},
                        "matmul_peak_gflop_per_s": peaks[threads],
                        "diffusion_fraction_of_peak": rate["diffusion"] / peaks[threads],
                        "peak_memory_mb": (result.peak_memory_bytes or 0) / 2**20,
                        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__})
            model.config.context_chunks = default_context
    finally:
        torch.set_num_threads(before)
        BiGRU.parallel_directions = True
    for threads in (1, 2):  # the peak again at the end: the best of both (a busy moment reads low)
        peaks[threads] = max(peaks[threads], matmul_peak_gflops(threads))
    for row in rows:
        row["matmul_peak_gflop_per_s"] = peaks[row["threads"]]
        row["diffusion_fraction_of_peak"] = row["diffusion_gflop_per_s"] / peaks[row["threads"]]
    with (out / "pipeline_speed.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nmatmul peak (2048² fp32): 1 thread {peaks[1]:.1f}, 2 threads {peaks[2]:.1f} GFLOP/s")
    for row in rows:
        print(f"{row['model']:<30} {row['setting']:<27} thr {row['threads']} {row['gru_directions']:<11} total {row['total_s']:6.2f} s  "
              f"RTF {row['rtf']:.3f}  lm {row['lm_s']:.2f}  diffusion {row['diffusion_s']:.2f}  "
              f"decode {row['decode_s']:.2f} s  | {row['denoiser_calls']} calls × "
              f"{row['denoiser_gflop_per_call']:.2f} GFLOP, {row['diffusion_gflop_per_s']:.1f} GFLOP/s = "
              f"{row['diffusion_fraction_of_peak']:.0%} of peak  | peak RSS {row['peak_memory_mb']:.0f} MB")
        assert row["rtf"] > 0 and row["diffusion_s"] > 0 and row["total_s"] >= row["diffusion_s"]
        assert row["denoiser_gflop_per_call"] > 0


def test_lm_kv_cache_avoids_recomputation(request):
    """250 tokens (10 s at 25 Hz) sampled with and without the KV cache: same tokens, time ratio."""
    quick = request.config.getoption("--quick")
    model, label = _bundle(quick)
    num_tokens = 20 if quick else 250
    codes = model.rvq.quantize(model.mulan.embed_text([PROMPT]))
    times, tokens, gflop = {}, {}, {}
    with torch.no_grad():
        for use_cache in (True, False, True):  # cached twice: the first run warms up
            start = time.perf_counter()
            tokens[use_cache] = model.lm.generate(codes, num_tokens, seed=0, use_cache=use_cache)
            times[use_cache] = time.perf_counter() - start
        for use_cache in (True, False):
            with flop_counter.FlopCounterMode(display=False) as counter:
                model.lm.generate(codes, num_tokens, seed=0, use_cache=use_cache)
            gflop[use_cache] = counter.get_total_flops() / 1e9
    print(f"\nLM ({label}), {num_tokens} tokens, {torch.get_num_threads()} thread(s): cached "
          f"{times[True]:.3f} s ({gflop[True]:.2f} GFLOP, {num_tokens / times[True]:.0f} tokens/s), "
          f"uncached {times[False]:.3f} s ({gflop[False]:.2f} GFLOP): time {times[False] / times[True]:.1f}x, "
          f"FLOPs {gflop[False] / gflop[True]:.1f}x")
    assert torch.equal(tokens[True], tokens[False])
    assert gflop[False] > 2 * gflop[True]  # the cache really skips the recomputation


def test_decoder_profile(request):
    """Where the decoder's time goes for 10 s of latent, and the inference route against the training
    route (weight norm recomputed per call, conv1d, repeat-then-conv up-sampling, out-of-place Snake:
    what ran before issue 15) timed alternately in the same process, wall and CPU time."""
    quick = request.config.getoption("--quick")
    model, label = _bundle(quick)
    seconds = 1.0 if quick else 10.0
    frames = round(seconds * model.sample_rate / model.codec.hop_length)
    z = torch.rand(1, frames, model.codec.latent_dim) * 2 - 1
    codec = model.codec

    def inference():
        with torch.no_grad():
            return codec.decode(z)

    def training_route():
        with torch.enable_grad():
            return codec.decode(z).detach()

    routes = {"inference": inference, "training route": training_route}
    wall: dict[str, list[float]] = {name: [] for name in routes}
    cpu: dict[str, list[float]] = {name: [] for name in routes}
    for round_ in range(2 if quick else 6):  # round 0 is the warm-up
        for name, call in routes.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            if round_:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    difference = (inference() - training_route()).abs().max().item()
    with torch.no_grad(), torch.profiler.profile() as prof:
        codec.decode(z)
    with torch.no_grad(), flop_counter.FlopCounterMode(display=False) as counter:
        codec.decode(z)
    gflop = counter.get_total_flops() / 1e9
    median = {name: statistics.median(v) for name, v in wall.items()}
    median_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    print(f"\ndecoder ({label}), {seconds:g} s, {torch.get_num_threads()} thread(s), medians of "
          f"{len(wall['inference'])}: inference {median['inference']:.3f} s wall / "
          f"{median_cpu['inference']:.3f} s CPU ({gflop:.2f} GFLOP, "
          f"{gflop / median_cpu['inference']:.1f} GFLOP/s of CPU time); training route "
          f"{median['training route']:.3f} s / {median_cpu['training route']:.3f} s: "
          f"{median['training route'] / median['inference']:.2f}x wall, "
          f"{median_cpu['training route'] / median_cpu['inference']:.2f}x CPU; "
          f"max |difference| {difference:.1e}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    assert gflop > 0 and difference <= 1e-4


def test_thread_policy_beside_a_busy_process(request):
    """Generation at the thread policy's choice, at 1 and at 2 threads: as the machine is, and
    beside one extra busy process (``python -c "while 1: pass"``), in one run (ratios)."""
    quick = request.config.getoption("--quick")
    model, label = _bundle(quick)
    seconds, steps = (1.0, 2) if quick else (4.0, 5)
    before = torch.get_num_threads()

    def timed(threads: int) -> float:
        torch.set_num_threads(threads)
        model.generate([PROMPT], seconds, steps=steps, guidance=2.5, seed=0)  # warm-up
        start = time.perf_counter()
        model.generate([PROMPT], seconds, steps=steps, guidance=2.5, seed=0)
        return time.perf_counter() - start

    results = {}
    try:
        for extra in (False, True):
            busy = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if extra else None
            try:
                if busy:
                    time.sleep(1.0)
                choice = choose_threads(environ={})  # the measured policy (OMP_NUM_THREADS ignored)
                fixed = (("1 thread", 1),) if quick else (("1 thread", 1), ("2 threads", 2))  # CI: no 2-thread collapse
                for name, threads in (("policy", choice.threads), *fixed):
                    results[extra, name] = timed(threads)
                results[extra, "choice"] = choice.summary()
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
    finally:
        torch.set_num_threads(before)
    print(f"\nthread policy ({label}), {seconds:g} s at {steps} steps, w 2.5:")
    for extra in (False, True):
        where = "beside one busy process" if extra else "machine as it is      "
        print(f"  {where}: policy [{results[extra, 'choice']}] {results[extra, 'policy']:.2f} s, "
              f"1 thread {results[extra, '1 thread']:.2f} s, 2 threads {results.get((extra, '2 threads'), 0):.2f} s")
    print(f"  busy / as-is, policy: {results[True, 'policy'] / results[False, 'policy']:.2f}x"
          + ("" if quick else f"; 2 threads: {results[True, '2 threads'] / results[False, '2 threads']:.2f}x"))
    assert all(v > 0 for k, v in results.items() if k[1] != "choice")
