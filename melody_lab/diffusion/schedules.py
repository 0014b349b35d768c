"""Sampling schedules: how the quarter-turn from noise (π/2) to data (0) is cut into T steps.

A schedule is pure data: a small dataclass config whose ``angles(T)`` returns the float64 angle
sequence ``δ_0 = π/2 > δ_1 > … > δ_T = 0`` (length T + 1; both ends exact). Sampler step i rotates
by ``ω_i = δ_i − δ_{i+1}``; the steps sum to π/2. The sampler consumes exactly this tensor.

Each family is written as ``δ(j)``, the angle still to travel when j steps remain (j = T … 0; the
sampler's i-th angle is ``δ(T − i)``). The paper numbers its steps t = T … 1, largest t first.

uniform   ω_t = π/(2T);                          δ(j) = (π/2)·j/T
linear    ω_t = π/(6T) + 2πt/(3T(T+1))           δ(j) = πj/(6T) + πj(j+1)/(3T(T+1))
          (the paper's: t = T first, so the first, noisiest step is the largest)
ratio     steps in arithmetic progression, first/last = r:
          ω_t = a + b(t−1), a = π/(T(1+r)), b = a(r−1)/(T−1);   δ(j) = ja + b·j(j−1)/2
          r = 1 is uniform; r = (5T+1)/(T+5) is linear (→ 5 as T grows); r < 1: small steps first.
logsnr    uniform in log-SNR λ = 2·log(cot δ) between λ_min and λ_max, ends clipped:
          δ(j) = arctan(exp(−λ_j/2)),  λ_j = λ_max − (λ_max − λ_min)·j/T  for 0 < j < T,
          δ(T) = π/2 and δ(0) = 0 exactly (the first step jumps from pure noise to λ_min + Δλ,
          the last from λ_max − Δλ to clean data).

    >>> get_schedule("linear").angles(10)[:3]
    tensor([1.5708, 1.3280, 1.1043], dtype=torch.float64)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import Config
from ..errors import UserError
from ..registry import Registry

__all__ = [
    "SCHEDULES",
    "Schedule",
    "UniformSchedule",
    "LinearSchedule",
    "RatioSchedule",
    "LogSNRSchedule",
    "get_schedule",
]

SCHEDULES: Registry[type["Schedule"]] = Registry("schedule")

HALF_PI = math.pi / 2


@dataclass
class Schedule(Config):
    """Base class: a subclass gives ``remaining(j, T)`` = δ(j) for a float64 tensor j of step counts."""

    name: ClassVar[str] = "schedule"

    def remaining(self, j: torch.Tensor, num_steps: int) -> torch.Tensor:
        raise NotImplementedError

    def angles(self, num_steps: int) -> torch.Tensor:
        """float64 [num_steps + 1]: π/2 exactly, strictly decreasing, 0 exactly."""
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise UserError(f"num_steps must be a positive integer, got {num_steps!r}")
        j = torch.arange(num_steps, -1, -1, dtype=torch.float64)
        delta = self.remaining(j, num_steps)
        delta[0], delta[-1] = HALF_PI, 0.0
        if not bool((delta[1:] < delta[:-1]).all()):  # a family's formula is wrong: a bug, not user input
            raise AssertionError(f"{self!r}.angles({num_steps}) is not strictly decreasing")
        return delta

    def steps(self, num_steps: int) -> torch.Tensor:
        """float64 [num_steps]: the rotation of each sampler step, ω = δ_i − δ_{i+1}, in sampler order."""
        delta = self.angles(num_steps)
        return delta[:-1] - delta[1:]


@SCHEDULES.register("uniform")
@dataclass
class UniformSchedule(Schedule):
    """Equal steps ω = π/(2T)."""

    name: ClassVar[str] = "uniform"

    def remaining(self, j: torch.Tensor, num_steps: int) -> torch.Tensor:
        return HALF_PI * j / num_steps


@SCHEDULES.register("linear")
@dataclass
class LinearSchedule(Schedule):
    """The paper's: ω_t = π/(6T) + 2πt/(3T(T+1)), applied t = T first (largest step first)."""

    name: ClassVar[str] = "linear"

    def remaining(self, j: torch.Tensor, num_steps: int) -> torch.Tensor:
        T = num_steps
        return math.pi * j / (6 * T) + math.pi * j * (j + 1) / (3 * T * (T + 1))


@SCHEDULES.register("ratio")
@dataclass
class RatioSchedule(Schedule):
    """Steps in arithmetic progression whose first (noisiest) step is ``ratio`` times the last."""

    name: ClassVar[str] = "ratio"
    ratio: float = 3.0

    def __post_init__(self) -> None:
        if not (isinstance(self.ratio, (int, float)) and math.isfinite(self.ratio) and self.ratio > 0):
            raise UserError(f"ratio schedule: ratio must be a positive number, got {self.ratio!r}")

    @staticmethod
    def paper_ratio(num_steps: int) -> float:
        """The ratio r(T) = (5T + 1)/(T + 5) at which this family equals ``linear``."""
        return (5 * num_steps + 1) / (num_steps + 5)

    def remaining(self, j: torch.Tensor, num_steps: int) -> torch.Tensor:
        T, r = num_steps, float(self.ratio)
        a = math.pi / (T * (1 + r))
        b = a * (r - 1) / (T - 1) if T > 1 else 0.0
        return j * a + b * j * (j - 1) / 2


@SCHEDULES.register("logsnr")
@dataclass
class LogSNRSchedule(Schedule):
    """Uniform in log-SNR λ = 2·log(cot δ) on [lambda_min, lambda_max]; ends clipped to π/2 and 0.

    λ is the log-SNR of unit-variance data; data with variance σ² sees λ + log σ². The defaults
    (−6, 10) reach further on the clean side because latents in [−1, 1] have σ ≈ 0.05–0.5
    (docs/diffusion.md measures the clipping's cost on a Gaussian toy).
    """

    name: ClassVar[str] = "logsnr"
    lambda_min: float = -6.0
    lambda_max: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lambda_min) and math.isfinite(self.lambda_max)) or not (
            self.lambda_min < self.lambda_max
        ):
            raise UserError(
                "logsnr schedule: need finite lambda_min < lambda_max, got "
                f"{self.lambda_min!r}, {self.lambda_max!r}"
            )

    def remaining(self, j: torch.Tensor, num_steps: int) -> torch.Tensor:
        lam = self.lambda_max - (self.lambda_max - self.lambda_min) * j / num_steps
        return torch.atan(torch.exp(-lam / 2))  # the ends are replaced by π/2 and 0 in angles()


def get_schedule(name: str, **params: float) -> Schedule:
    """The schedule registered as ``name``, configured with ``params`` (e.g. ``ratio=4.0``).

    Names: ``uniform``, ``linear``, ``ratio``, ``logsnr``. Unknown names and unknown parameters
    raise an error that lists the valid ones.
    """
    cls = SCHEDULES.get(name)
    try:
        return cls.from_dict(params)
    except ValueError as err:  # ConfigError: unknown parameter names
        raise UserError(f"schedule {name!r}: {err}") from None
