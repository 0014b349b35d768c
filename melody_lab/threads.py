"""How many torch threads to use: the cores this process may use, minus the ones other work keeps busy.

    choice = choose_threads()          # or choose_threads(requested=2) for ``--threads 2``
    apply_threads(choice)              # torch.set_num_threads(choice.threads)
    print(choice.summary())            # "threads 1 (2 usable cores, 1.0 busy)"

Why: torch's OpenMP threads spin-wait for each other at every parallel region. With two threads on
two cores and one other busy process, one thread keeps losing its core and the other spins waiting
for it; generation got 40x slower (150 s instead of 3.2 s for 10 s of audio, README). One thread per
*free* core never waits on a descheduled partner. Busy cores are measured over a short window from
``/proc/stat`` (all CPUs' busy time; Linux), else taken from the 1-minute load average; free cores
are usable cores (``os.sched_getaffinity``) minus busy ones, and a core counts as free only when at
least 80 % of it is idle (losing a thread costs at most 2x, a spinning thread up to 40x).

Precedence: an explicit request (``--threads N``) > ``OMP_NUM_THREADS`` > the measured choice.
Call this once, before the first torch computation (the CLI does; library users keep torch's own
default unless they call it).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Mapping

ENV_VAR = "OMP_NUM_THREADS"
FREE_CORE_IDLE = 0.8   # a core counts as free when at least this much of it is idle


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    source: str            # "--threads" | "OMP_NUM_THREADS" | "measured"
    usable_cores: int
    busy_cores: float | None = None

    def summary(self) -> str:
        if self.source == "measured":
            return f"threads {self.threads} ({self.usable_cores} usable cores, {self.busy_cores:.1f} busy)"
        return f"threads {self.threads} (set by {self.source})"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; all CPUs where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs from /proc/stat, or None where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    total = sum(fields[:8])                                    # guest time is already in user
    return total - idle, total


def busy_cores(window_s: float = 0.2) -> float:
    """How many of the machine's cores other work keeps busy now: the busy share of all CPUs over
    ``window_s`` seconds (``/proc/stat``) times the CPU count; else the 1-minute load average."""
    first = _cpu_times()
    if first is not None:
        time.sleep(window_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            share = (second[0] - first[0]) / (second[1] - first[1])
            return share * (os.cpu_count() or 1)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def choose_threads(requested: int | None = None, environ: Mapping[str, str] | None = None,
                   cores: int | None = None, busy: float | None = None) -> ThreadChoice:
    """The thread count to use (see the module docstring for the rule and its precedence).

    ``cores`` / ``busy`` replace the measurements (tests, or a caller that measured already).
    Raises ValueError for a requested count below 1.
    """
    environ = os.environ if environ is None else environ
    cores = usable_cores() if cores is None else cores
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return ThreadChoice(requested, "--threads", cores)
    from_env = environ.get(ENV_VAR, "").strip()
    if from_env.isdigit() and int(from_env) >= 1:
        return ThreadChoice(int(from_env), ENV_VAR, cores)
    busy = busy_cores() if busy is None else busy
    free = min(cores, (os.cpu_count() or cores) - busy)
    threads = max(1, min(cores, math.floor(free + 1 - FREE_CORE_IDLE)))
    return ThreadChoice(threads, "measured", cores, busy)


def apply_threads(choice: ThreadChoice) -> ThreadChoice:
    """``torch.set_num_threads(choice.threads)``; returns the choice."""
    import torch

    torch.set_num_threads(choice.threads)
    return choice
