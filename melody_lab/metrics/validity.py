"""Does a metric rank what it should? Degradation ladders on real clips, and rank agreement.

:func:`degradation_check` scores a clean evaluation set and every rung of each ladder of
:data:`~melody_lab.metrics.degradations.LADDERS` with a set of metrics (a function of audio → 
``{metric: number}``, lower = better for distances; rates are declared ``higher_is_better``). A ladder *passes* when every
rung is strictly worse than the one before it (clean first); the table also shows the weaker check
"harshest rung worse than clean". A failing metric is reported as failing: the result keeps every
value so the table can show where it breaks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .degradations import LADDERS


@dataclass(frozen=True)
class LadderResult:
    """One metric on one ladder: ``values[0]`` clean, then each rung of ``levels`` (mildest first)."""

    metric: str
    ladder: str
    parameter: str
    levels: tuple[float, ...]
    values: tuple[float, ...]
    higher_is_better: bool
    passed: bool

    @property
    def harshest_worse(self) -> bool:
        """The weaker check: the harshest rung is worse than clean."""
        return strictly_worse((self.values[0], self.values[-1]), self.higher_is_better)

    def to_dict(self) -> dict:
        return {**asdict(self), "harshest_worse": self.harshest_worse}


def strictly_worse(values, higher_is_better: bool = False) -> bool:
    """True when each value is strictly worse than the previous one (NaN anywhere: False)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        return False
    steps = np.diff(values)
    return bool((steps < 0).all() if higher_is_better else (steps > 0).all())


def degradation_check(score: Callable[[np.ndarray], dict[str, float]], audio: np.ndarray, sample_rate: int,
                      *, higher_is_better: dict[str, bool] | None = None,
                      ladders: tuple[str, ...] = tuple(LADDERS), seed: int = 0) -> list[LadderResult]:
    """``score(audio [N, T]) -> {metric: value}`` on clean ``audio`` and on every rung of ``ladders``
    (one call per rung, so metrics sharing work — e.g. one transcription — compute it once).
    ``higher_is_better``: metric → True for rates (default False: a distance)."""
    higher_is_better = higher_is_better or {}
    clean = score(audio)
    results = []
    for ladder in ladders:
        parameter, levels, degrade = LADDERS[ladder]
        rungs = [score(degrade(audio, sample_rate, level, seed)) for level in levels]
        for name, value in clean.items():
            values = (float(value), *(float(r[name]) for r in rungs))
            better = bool(higher_is_better.get(name, False))
            results.append(LadderResult(name, ladder, parameter, tuple(levels), values, better,
                                        strictly_worse(values, better)))
    return results


def validity_table(results: list[LadderResult]) -> str:
    """Markdown: one line per (metric, ladder) with every value and PASS / FAIL."""
    lines = ["| metric | ladder | clean → mildest … harshest | strictly worse each rung | harshest worse than clean |",
             "|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: r.metric):
        levels = " → ".join(f"{v:.4g}" for v in r.values)
        rungs = ", ".join(f"{l:g}" for l in r.levels)
        lines.append(f"| {r.metric} | {r.ladder} ({r.parameter} {rungs}) | {levels} | "
                     f"{'PASS' if r.passed else 'FAIL'} | {'yes' if r.harshest_worse else 'no'} |")
    return "\n".join(lines) + "\n"
