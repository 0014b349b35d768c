"""Real-time factor (RTF) and peak memory, measured honestly: warm-up, device sync, per stage.

    RTF = processing time / duration of the audio produced      (< 1: faster than real time)

The paper reports speed as "× real time" = 1 / RTF; :class:`RTFResult` carries both. Usage::

    def generate(timer):
        with timer.stage("semantic_lm"):
            tokens = lm.generate(...)
        with timer.stage("diffusion"):
            z = sample(...)
        with timer.stage("decode"):
            audio = codec.decode(z)

    result = measure_rtf(generate, audio_seconds=10.0, warmup=1, repeats=3, device="cpu")

Times are medians over ``repeats`` timed runs after ``warmup`` untimed ones. Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` over the timed runs; on CPU the process's peak resident set
size (``VmHWM``, reset before the timed runs through ``/proc/self/clear_refs`` where Linux allows,
otherwise the process-lifetime peak from ``resource.getrusage``; ``memory_kind`` says which).
"""
from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..devices import synchronize


@dataclass(frozen=True)
class RTFResult:
    audio_seconds: float
    total_seconds: float
    rtf: float
    speed_x_realtime: float
    stage_seconds: dict[str, float]
    stage_rtf: dict[str, float]
    warmup: int
    repeats: int
    device: str
    threads: int
    peak_memory_bytes: int | None
    memory_kind: str

    def to_dict(self) -> dict:
        return asdict(self)




class StageTimer:
    """Accumulates wall-clock seconds per named stage (device-synchronised at both ends)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str):
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - start


def _reset_cpu_peak() -> bool:
    """Reset the kernel's peak-RSS counter for this process; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _cpu_peak_bytes(was_reset: bool) -> tuple[int | None, str]:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "rss_peak" if was_reset else "rss_peak_process_lifetime"
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None, "unavailable"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024), "rss_peak_process_lifetime"


def measure_rtf(run: Callable[[StageTimer], object], audio_seconds: float, *, warmup: int = 1,
                repeats: int = 3, device: torch.device | str = "cpu") -> RTFResult:
    """Time ``run(timer)`` — which produces ``audio_seconds`` of audio — and return its RTF.

    ``run`` may mark stages with ``timer.stage(name)``; the total is timed around the whole call.
    """
    if audio_seconds <= 0 or repeats < 1 or warmup < 0:
        raise ValueError("need audio_seconds > 0, repeats ≥ 1, warmup ≥ 0")
    device = torch.device(device)
    for _ in range(warmup):
        run(StageTimer(device))
    was_reset = False
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        was_reset = _reset_cpu_peak()
    totals, stages = [], defaultdict(list)
    for _ in range(repeats):
        timer = StageTimer(device)
        synchronize(device)
        start = time.perf_counter()
        run(timer)
        synchronize(device)
        totals.append(time.perf_counter() - start)
        for name, seconds in timer.seconds.items():
            stages[name].append(seconds)
    if device.type == "cuda":
        peak, kind = int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    else:
        peak, kind = _cpu_peak_bytes(was_reset)
    total = statistics.median(totals)
    stage_seconds = {name: statistics.median(values) for name, values in stages.items()}
    return RTFResult(audio_seconds, total, total / audio_seconds, audio_seconds / total, stage_seconds,
                     {name: s / audio_seconds for name, s in stage_seconds.items()}, warmup, repeats,
                     str(device), torch.get_num_threads(), peak, kind)
