"""Denoiser speed: DPD vs parameter- and compute-matched U-Nets across lengths, SRU vs GRU.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_denoiser_speed.py -q   # full, ~3 min
    .venv/bin/python -m pytest benchmarks/test_denoiser_speed.py -q --quick            # smoke run (CI)

Each scenario is one CSV row (results/benchmarks/denoiser_speed.csv; a tmp dir with --quick), and
the table is printed at the end: forward time of one clip (B = 1, eval, no grad) at 5, 10, 20, 40 s
of latent (125 frames/s) as ms and ms per second of latent, its cost relative to 10 s, and its
FLOPs (machine-independent); a training step (B = 8, L = 625); the fine-path RNN alone; and the
share of DPD forward time spent in the coarse and fine paths. Calls are timed round-robin so that
load from other processes hits all of them alike; the table gives the best and the median of the
repeats (ratios use the best, the least disturbed on a shared machine). Nothing here asserts that
one model beats another: the numbers go to docs/denoisers.md with the hardware and the command.
"""
from __future__ import annotations

import contextlib
import csv
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
MODELS = {  # label -> (name, preset, overrides)
    "dpd-sru": ("dpd", "tiny", {"rnn_type": "sru"}),
    "dpd-gru": ("dpd", "tiny", {"rnn_type": "gru"}),
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
    note: str = ""


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
    yield collected
    if not collected:
        return
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
    print(f"{'scenario':<19}{'model':<14}{'params':>10}{'latent s':>9}{'B':>3}{'best ms':>10}"
          f"{'median':>9}{'ms/latent s':>13}{'vs 10 s':>9}{'GFLOP':>8}{'vs 10 s':>9}  note")
    for r in collected:
        rel = f"{r.relative_to_10s:.2f}x" if r.relative_to_10s is not None else ""
        flops = (f"{r.gflops:>8.2f}{r.gflops_relative_to_10s:>8.2f}x" if r.gflops is not None
                 else " " * 17)
        print(f"{r.scenario:<19}{r.model:<14}{r.params:>10,}{r.seconds_of_latent:>9.1f}{r.batch:>3}"
              f"{r.best_ms:>10.1f}{r.median_ms:>9.1f}{r.ms_per_latent_second:>13.2f}{rel:>9}{flops}  {r.note}")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_round_robin(calls: dict, repeats: int, device) -> dict:
    """key -> (best, median) ms over ``repeats`` rounds (after one warm-up round)."""
    times: dict = {key: [] for key in calls}
    for round_ in range(repeats + 1):
        for label, call in calls.items():
            _sync(device)
            start = time.perf_counter()
            call()
            _sync(device)
            if round_:
                times[label].append((time.perf_counter() - start) * 1e3)
    return {label: (min(t), statistics.median(t)) for label, t in times.items()}


_CPU_SDPA = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
if _CPU_SDPA is not None and _CPU_SDPA not in flop_counter.flop_registry:
    @flop_counter.register_flop_formula(_CPU_SDPA)
    def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        """torch counts the CUDA attention kernels only; the CPU one costs the same 4·B·h·N·M·d."""
        batch, heads, queries, head_dim = query_shape
        keys, value_dim = key_shape[2], value_shape[3]
        return 2 * batch * heads * queries * keys * (head_dim + value_dim)


def _forward_gflops(model, args) -> float:
    with torch.no_grad(), flop_counter.FlopCounterMode(display=False) as counter:
        model(*args)
    return counter.get_total_flops() / 1e9


def _models(settings):
    built = {}
    for label, (name, preset, overrides) in MODELS.items():
        if settings["quick"]:
            preset = "micro"
        torch.manual_seed(0)
        built[label] = build_denoiser(name, preset, **overrides).to(settings["device"])
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
    for (label, seconds), (best, median) in timings.items():
        rows.append(Row("forward", label, count_parameters(models[label]), seconds, 1, best, median,
                        best / seconds, best / timings[label, reference][0], settings["device"].type,
                        torch.get_num_threads(), gflops[label, seconds],
                        gflops[label, seconds] / gflops[label, reference]))
        assert best > 0 and gflops[label, seconds] > 0


def test_training_step_time(settings, rows):
    models = _models(settings)
    batch, length = (2, 64) if settings["quick"] else (8, 625)
    calls = {}
    for label, model in models.items():
        z, angles, tokens = _inputs(model.train(), batch, length, settings["device"])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(m=model, opt=optimizer, z=z, a=angles, t=tokens):
            loss = (m(z, a, t) - z).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        calls[label] = step
    medians = _time_round_robin(calls, max(1, settings["repeats"] - 2), settings["device"])
    for label, (best, median) in medians.items():
        rows.append(Row("train_step", label, count_parameters(models[label]), length / FRAMES_PER_SECOND,
                        batch, best, median, best / (batch * length / FRAMES_PER_SECOND), None,
                        settings["device"].type, torch.get_num_threads()))
        assert best > 0


def test_fine_path_sru_vs_gru(settings, rows):
    """The RNN alone on the tiny DPD's fine-path shape: B·S segments of K positions, width H."""
    width, size = (32, 8) if settings["quick"] else (128, 32)
    segments = 8 * (625 // (size // 2) + 1)  # B = 8 clips of 5 s
    x = torch.randn(segments, size, width, device=settings["device"])
    calls = {}
    for rnn_type in ("sru", "gru"):
        torch.manual_seed(0)
        rnn = build_bidirectional_rnn(rnn_type, width, width // 2).to(settings["device"])
        calls[f"{rnn_type} fwd"] = lambda r=rnn: torch.no_grad()(r)(x)
        calls[f"{rnn_type} fwd+bwd"] = lambda r=rnn: r(x.requires_grad_()).sum().backward()
    medians = _time_round_robin(calls, settings["repeats"] + 2, settings["device"])
    for label, (best, median) in medians.items():
        rnn = label.split()[0]
        params = count_parameters(build_bidirectional_rnn(rnn, width, width // 2))
        rows.append(Row(f"fine_path {label.split()[1]}", rnn, params, 5.0, 8, best, median,
                        best / 40.0, None, settings["device"].type, torch.get_num_threads()))
        assert best > 0


def test_dpd_time_split_between_coarse_and_fine_paths(settings, rows):
    """Share of DPD forward time in the coarse path (RoFormer) and the fine path (RNN), timed with
    module hooks; the rest is merging, norms, FiLM, segmentation and projections."""
    torch.manual_seed(0)
    model = build_denoiser("dpd", settings["preset"]).eval().to(settings["device"])
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
            rows.append(Row(f"dpd_split {part}", f"dpd-{model.config.rnn_type}", count_parameters(model),
                            seconds, 1, ms, ms, ms / seconds, None, settings["device"].type,
                            torch.get_num_threads(), note=f"{ms / total:.0%} of {total:.1f} ms"))
            assert 0 < ms <= total * 1.05
