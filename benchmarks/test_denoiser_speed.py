"""Denoiser speed: DPD vs parameter- and compute-matched U-Nets across lengths; the fine paths.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_denoiser_speed.py -q   # full, ~3 min
    .venv/bin/python -m pytest benchmarks/test_denoiser_speed.py -q --quick            # smoke run (CI)

Each scenario is one CSV row (results/benchmarks/denoiser_speed.csv; a tmp dir with --quick), and
the table is printed at the end: forward time of one clip (B = 1, eval, no grad) at 5, 10, 20, 40 s
of latent (125 frames/s) as ms and ms per second of latent, its cost relative to 10 s, and its
FLOPs (machine-independent); a training step (B = 8, L = 625); the fine-path RNN alone at tiny and
paper sizes (GRU, SRU, input-gated SRU with loop and parallel-scan recurrence); a guided call
(B = 2) at the pipeline's 2-s window and at 10 s, at 1 and 2 threads; and the share of DPD forward time spent in the coarse and fine paths. Every row with
FLOPs states its achieved GFLOP/s and its fraction of the fp32 matmul peak measured in the same run
(best 2048² matmul at the row's thread count, at the run's start and end), and the same over
this process's CPU time ("cpu ms", "% cpu": the row's cost without the time slices that other
processes take away; at 2 threads it sums both threads). FLOPs are torch's FlopCounterMode (matmuls,
convolutions, attention; elementwise work is not counted). Calls are timed round-robin so that
load from other processes hits all of them alike; the table gives the best and the median of the
repeats (ratios use the best, the least disturbed on a shared machine). Nothing here asserts that
one model beats another: the numbers go to docs/denoisers.md with the hardware and the command.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch
from torch.utils import flop_counter

from melody_lab.ablation.provenance import cpu_model
from melody_lab.denoisers import build_denoiser, count_parameters
from melody_lab.denoisers.sru import build_bidirectional_rnn

FRAMES_PER_SECOND = 125
PREVIOUS_TINY = {"rnn_type": "gru", "ffn_mult": 4}  # the shipped bundle's DPD (= the tiny preset)
MODELS = {  # label -> (name, preset, overrides)
    "dpd-sru_linear": ("dpd", "tiny", {"rnn_type": "sru_linear", "ffn_mult": 5}),  # the input-gated SRU at tiny size
    "dpd-sru_linear-scan": ("dpd", "tiny", {"rnn_type": "sru_linear", "ffn_mult": 5, "rnn_recurrence": "scan"}),
    "dpd-sru": ("dpd", "tiny", {**PREVIOUS_TINY, "rnn_type": "sru"}),
    "dpd-gru": ("dpd", "tiny", PREVIOUS_TINY),
    "unet-param": ("unet", "tiny", {}),
    "unet-compute": ("unet", "tiny_compute", {}),
}


@dataclass
class Row:
    scenario: str
    model: str
    params: int
    seconds_of_latent: float
    batch: int
    best_ms: float
    median_ms: float
    ms_per_latent_second: float
    relative_to_10s: float | None
    device: str
    threads: int
    gflops: float | None = None           # forward: matmul + attention FLOPs (torch FlopCounterMode)
    gflops_relative_to_10s: float | None = None
    gflop_per_s: float | None = None      # gflops / best time
    peak_gflop_per_s: float | None = None  # 2048² fp32 matmul, this run, this thread count
    fraction_of_peak: float | None = None
    best_cpu_ms: float | None = None      # this process's CPU time (time.process_time), best round
    fraction_of_peak_cpu: float | None = None  # gflops / best CPU time over the matmul peak in CPU time
    note: str = ""

    def add_peak(self) -> None:
        """Fill the rate columns from the best matmul peak measured in this run."""
        if self.gflops is not None and self.best_ms > 0:
            self.gflop_per_s = self.gflops / (self.best_ms / 1e3)
            self.peak_gflop_per_s = _PEAKS[self.threads]
            self.fraction_of_peak = self.gflop_per_s / self.peak_gflop_per_s
        if self.gflops is not None and self.best_cpu_ms:
            self.fraction_of_peak_cpu = self.gflops / (self.best_cpu_ms / 1e3) / _CPU_PEAKS[self.threads]


_PEAKS: dict[int, float] = {}
_CPU_PEAKS: dict[int, float] = {}  # the same peak over this process's CPU time (immune to preemption)


def matmul_peak_gflops(threads: int, size: int = 2048, repeats: int = 8) -> float:
    """The machine's fp32 matmul rate: best of ``repeats`` size² @ size² products at ``threads``
    threads. Measured at the start and at the end of the run; the rows use the best of all (on a
    shared machine one moment's measurement can be several times too low)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a = torch.randn(size, size)
    a @ a
    best = best_cpu = math.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ a
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    torch.set_num_threads(before)
    _PEAKS[threads] = max(_PEAKS.get(threads, 0.0), 2 * size ** 3 / best / 1e9)
    _CPU_PEAKS[threads] = max(_CPU_PEAKS.get(threads, 0.0), 2 * size ** 3 / best_cpu / 1e9)
    return _PEAKS[threads]


@pytest.fixture(scope="module")
def settings(request, tmp_path_factory):
    quick = request.config.getoption("--quick")
    out = tmp_path_factory.mktemp("bench") if quick else Path(__file__).parents[1] / "results" / "benchmarks"
    return dict(
        quick=quick,
        preset="micro" if quick else "tiny",
        seconds=(0.5, 1.0) if quick else (5.0, 10.0, 20.0, 40.0),
        repeats=1 if quick else 9,
        device=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
        csv=Path(out) / "denoiser_speed.csv",
    )


@pytest.fixture(scope="module")
def rows(settings, request):
    collected: list[Row] = []
    for threads in (1, 2):
        matmul_peak_gflops(threads)
    yield collected
    if not collected:
        return
    for threads in (1, 2):
        matmul_peak_gflops(threads)
    for row in collected:
        row.add_peak()
    settings["csv"].parent.mkdir(parents=True, exist_ok=True)
    with open(settings["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(collected[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in collected)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        _print_table(collected, settings)


def _print_table(collected: list[Row], settings) -> None:
    print(f"\n# {torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; CSV: {settings['csv']}")
    print(f"{'scenario':<19}{'model':<20}{'params':>10}{'latent s':>9}{'B':>3}{'best ms':>10}"
          f"{'median':>9}{'cpu ms':>9}{'ms/latent s':>13}{'vs 10 s':>9}{'GFLOP':>8}{'vs 10 s':>9}{'GFLOP/s':>9}"
          f"{'% peak':>8}{'% cpu':>7}{'thr':>4}  note")
    for r in collected:
        rel = f"{r.relative_to_10s:.2f}x" if r.relative_to_10s is not None else ""
        ratio = f"{r.gflops_relative_to_10s:>8.2f}x" if r.gflops_relative_to_10s is not None else " " * 9
        cpu_share = f"{r.fraction_of_peak_cpu:>7.0%}" if r.fraction_of_peak_cpu is not None else " " * 7
        flops = (f"{r.gflops:>8.2f}{ratio}{r.gflop_per_s:>9.1f}{r.fraction_of_peak:>8.0%}{cpu_share}"
                 if r.gflops is not None else " " * 41)
        cpu = f"{r.best_cpu_ms:>9.1f}" if r.best_cpu_ms is not None else " " * 9
        print(f"{r.scenario:<19}{r.model:<20}{r.params:>10,}{r.seconds_of_latent:>9.1f}{r.batch:>3}"
              f"{r.best_ms:>10.1f}{r.median_ms:>9.1f}{cpu}{r.ms_per_latent_second:>13.2f}{rel:>9}{flops}"
              f"{r.threads:>4}  {r.note}")
    print("matmul peak (2048² fp32, best of this run's start and end): "
          + ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in sorted(_PEAKS.items()))
          + "; over CPU time (the '% cpu' column's reference): "
          + ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in sorted(_CPU_PEAKS.items())))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_round_robin(calls: dict, repeats: int, device) -> dict:
    """key -> (best, median, best CPU) ms over ``repeats`` rounds (after one warm-up round); the
    CPU column is this process's CPU time, which time slices lost to other processes do not inflate."""
    times: dict = {key: [] for key in calls}
    cpu: dict = {key: [] for key in calls}
    for round_ in range(repeats + 1):
        for label, call in calls.items():
            _sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            _sync(device)
            if round_:
                times[label].append((time.perf_counter() - start) * 1e3)
                cpu[label].append((time.process_time() - start_cpu) * 1e3)
    return {label: (min(t), statistics.median(t), min(cpu[label])) for label, t in times.items()}


_CPU_SDPA = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
if _CPU_SDPA is not None and _CPU_SDPA not in flop_counter.flop_registry:
    @flop_counter.register_flop_formula(_CPU_SDPA)
    def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        """torch counts the CUDA attention kernels only; the CPU one costs the same 4·B·h·N·M·d."""
        batch, heads, queries, head_dim = query_shape
        keys, value_dim = key_shape[2], value_shape[3]
        return 2 * batch * heads * queries * keys * (head_dim + value_dim)


def _gflops(call) -> float:
    """Matmul + conv + attention GFLOP of ``call()`` (FlopCounterMode; a backward inside counts too)."""
    with flop_counter.FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops() / 1e9


def _forward_gflops(model, args) -> float:
    with torch.no_grad():
        return _gflops(lambda: model(*args))


def _models(settings):
    built = {}
    for label, (name, preset, overrides) in MODELS.items():
        if settings["quick"]:
            preset = "micro"
        torch.manual_seed(0)
        built[label] = build_denoiser(name, preset, **(overrides if preset != "micro" else
                                                       {k: v for k, v in overrides.items() if k != "ffn_mult"}))
        built[label] = built[label].to(settings["device"])
    return built


def _inputs(model, batch, length, device):
    cfg = model.config
    z = torch.randn(batch, length, cfg.latent_dim, device=device)
    angles = torch.rand(batch, length, device=device) * 1.5
    tokens = torch.randint(0, cfg.vocab_size, (batch, max(1, length // 5)), device=device)
    return z, angles, tokens


def test_forward_time_per_second_of_latent(settings, rows):
    models = _models(settings)
    calls = {}  # every (model, length) pair in one round-robin: load bursts hit all pairs alike
    for seconds in settings["seconds"]:
        for label, model in models.items():
            args = _inputs(model.eval(), 1, round(seconds * FRAMES_PER_SECOND), settings["device"])
            calls[label, seconds] = (lambda m=model, a=args: torch.no_grad()(m)(*a))
    timings = _time_round_robin(calls, settings["repeats"], settings["device"])
    gflops = {}
    for label, seconds in calls:
        model = models[label]
        gflops[label, seconds] = _forward_gflops(
            model, _inputs(model, 1, round(seconds * FRAMES_PER_SECOND), settings["device"]))
    reference = max(s for s in settings["seconds"] if s <= 10.0)
    for (label, seconds), (best, median, cpu) in timings.items():
        rows.append(Row("forward", label, count_parameters(models[label]), seconds, 1, best, median,
                        best / seconds, best / timings[label, reference][0], settings["device"].type,
                        torch.get_num_threads(), gflops[label, seconds],
                        gflops[label, seconds] / gflops[label, reference], best_cpu_ms=cpu))
        assert best > 0 and gflops[label, seconds] > 0


def test_training_step_time(settings, rows):
    models = _models(settings)
    batch, length = (2, 64) if settings["quick"] else (8, 625)
    calls, flops = {}, {}
    for label, model in models.items():
        z, angles, tokens = _inputs(model.train(), batch, length, settings["device"])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(m=model, opt=optimizer, z=z, a=angles, t=tokens):
            loss = (m(z, a, t) - z).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        calls[label] = step
        flops[label] = _gflops(lambda m=model, z=z, a=angles, t=tokens: (m(z, a, t) - z).pow(2).mean().backward())
    medians = _time_round_robin(calls, max(1, settings["repeats"] - 2), settings["device"])
    for label, (best, median, cpu) in medians.items():
        rows.append(Row("train_step", label, count_parameters(models[label]), length / FRAMES_PER_SECOND,
                        batch, best, median, best / (batch * length / FRAMES_PER_SECOND), None,
                        settings["device"].type, torch.get_num_threads(), flops[label], best_cpu_ms=cpu))
        assert best > 0


FINE_PATHS = {  # label -> (rnn_type, recurrence)
    "gru": ("gru", "loop"), "sru": ("sru", "loop"),
    "sru_linear-loop": ("sru_linear", "loop"), "sru_linear-scan": ("sru_linear", "scan"),
}


@pytest.mark.parametrize("size_name", ["tiny", "paper"])
def test_fine_path_rnns(settings, rows, size_name):
    """The RNN alone on a DPD fine-path shape: sequences of K positions, width H, state H/2 (tiny:
    B·S = 8 clips × 40 segments, K 32, H 128) or H (paper: 8 segments, K 64, H 768)."""
    if settings["quick"]:
        width, hidden, size, sequences = 32, 16, 8, 16
    elif size_name == "tiny":
        width, hidden, size, sequences = 128, 64, 32, 8 * (625 // 16 + 1)
    else:
        width, hidden, size, sequences = 768, 768, 64, 8
    x = torch.randn(sequences, size, width, device=settings["device"])
    x_grad = x.clone().requires_grad_()
    calls, flops, params = {}, {}, {}
    for label, (rnn_type, recurrence) in FINE_PATHS.items():
        torch.manual_seed(0)
        rnn = build_bidirectional_rnn(rnn_type, width, hidden, recurrence=recurrence).to(settings["device"])
        params[label] = count_parameters(rnn)
        calls[f"{label} fwd"] = lambda r=rnn: torch.no_grad()(r)(x)
        calls[f"{label} fwd+bwd"] = lambda r=rnn: r(x_grad).sum().backward()
        flops[f"{label} fwd"] = _gflops(calls[f"{label} fwd"])
        flops[f"{label} fwd+bwd"] = _gflops(calls[f"{label} fwd+bwd"])
    medians = _time_round_robin(calls, settings["repeats"] + 2, settings["device"])
    for label, (best, median, cpu) in medians.items():
        rnn, kind = label.split()
        rows.append(Row(f"fine_path {kind}", f"{size_name} {rnn}", params[rnn], 0.0, sequences, best, median,
                        best / sequences, None, settings["device"].type, torch.get_num_threads(),
                        flops[label], best_cpu_ms=cpu,
                        note=f"{sequences} seq × K {size} × H {width}, state {hidden}"))
        assert best > 0


def test_forward_at_one_and_two_threads(settings, rows):
    """DPD forward of a guided call (B = 2) at 2 s (the pipeline's window: the shape of every
    denoiser call of `melody-lab generate`) and at 10 s."""
    lengths = settings["seconds"][-1:] if settings["quick"] else (2.0, 10.0)
    models = {label: model for label, model in _models(settings).items() if label in ("dpd-sru_linear", "dpd-gru")}
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            calls, flops = {}, {}
            for label, model in models.items():
                for seconds in lengths:
                    args = _inputs(model.eval(), 2, round(seconds * FRAMES_PER_SECOND), settings["device"])
                    calls[label, seconds] = (lambda m=model, a=args: torch.no_grad()(m)(*a))
                    flops[label, seconds] = _forward_gflops(model, args)
            timings = _time_round_robin(calls, settings["repeats"], settings["device"])
            for (label, seconds), (best, median, cpu) in timings.items():
                rows.append(Row("forward B=2", label, count_parameters(models[label]), seconds, 2, best, median,
                                best / seconds, None, settings["device"].type, threads,
                                flops[label, seconds], best_cpu_ms=cpu))
                assert best > 0
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("label", ["dpd-gru", "dpd-sru_linear"])
def test_dpd_time_split_between_coarse_and_fine_paths(settings, rows, label):
    """Share of DPD forward time in the coarse path (RoFormer) and the fine path (RNN), timed with
    module hooks; the rest is merging, norms, FiLM, segmentation and projections."""
    model = _models(settings)[label].eval()
    spent = {"coarse": 0.0, "fine": 0.0}
    starts = {}

    def hook_pair(module, part):
        def before(*_):
            _sync(settings["device"])
            starts[module] = time.perf_counter()

        def after(*_):
            _sync(settings["device"])
            spent[part] += time.perf_counter() - starts[module]

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    for block in model.blocks:
        for layer in block.coarse:
            hook_pair(layer, "coarse")
        hook_pair(block.rnn, "fine")
    for seconds in (settings["seconds"][0], settings["seconds"][-1]):
        args = _inputs(model, 1, round(seconds * FRAMES_PER_SECOND), settings["device"])
        with torch.no_grad():
            model(*args)
            spent.update(coarse=0.0, fine=0.0)
            start = time.perf_counter()
            for _ in range(settings["repeats"]):
                model(*args)
            total = (time.perf_counter() - start) * 1e3 / settings["repeats"]
        for part in ("coarse", "fine"):
            ms = spent[part] * 1e3 / settings["repeats"]
            rows.append(Row(f"dpd_split {part}", label, count_parameters(model),
                            seconds, 1, ms, ms, ms / seconds, None, settings["device"].type,
                            torch.get_num_threads(), note=f"{ms / total:.0%} of {total:.1f} ms"))
            assert 0 < ms <= total * 1.05
