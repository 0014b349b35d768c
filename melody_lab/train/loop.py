"""The one training loop every stage shares (codec, MuLan, LM, denoiser, …).

A stage supplies a :class:`TrainTask`: its modules, its optimizers, one ``train_step`` and a
``validate``. The loop owns everything else: resume from the newest checkpoint, a deterministic
random stream per step, a tqdm bar showing the losses, periodic validation and atomic checkpoints,
a JSONL log (and TensorBoard event files inside :func:`tensorboard_logging`), a wall-clock budget,
and a clear stop on a non-finite loss.

Exact resume: step ``s`` draws its randomness only from ``step_generator(seed, s, rank)`` (and
the global torch RNG is re-seeded from it), so a run interrupted after step ``s`` and resumed gives
the same parameters as one that never stopped. Under torchrun (see ``distributed.py``) each rank
draws different batches and only rank 0 writes checkpoints and logs.
"""
from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..config import Config, ConfigError
from ..io import atomic_write_text
from ..errors import UserError
from . import distributed
from .checkpoint import check_run_record, latest_checkpoint, load_checkpoint, save_checkpoint


class NonFiniteLossError(RuntimeError):
    """Training stopped because a loss became NaN/inf; the last good checkpoint is kept."""


@dataclass
class LoopConfig(Config):
    """Settings of the shared loop (per-stage hyper-parameters live in the stage's config)."""

    max_steps: int = 1000
    seed: int = 0
    log_every: int = 10
    val_every: int = 250
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    max_minutes: float | None = None  # stop (with a checkpoint) after this much wall time
    progress: bool = True


class TrainTask(Protocol):
    """What a stage gives the loop.

    ``train_step`` does its own forward, backward and optimizer steps (a GAN has two optimizers)
    and returns float losses for the bar and the log. ``validate`` returns float metrics.
    """

    name: str

    def modules(self) -> dict[str, torch.nn.Module]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]: ...

    def validate(self) -> dict[str, float]: ...


_TENSORBOARD: ContextVar[bool] = ContextVar("tensorboard", default=False)


@contextmanager
def tensorboard_logging():
    """Inside this block every :func:`run_training` also writes what goes to ``log.jsonl`` as
    TensorBoard scalars (``train/<loss>``, ``val/<metric>`` by step) to ``OUT/tensorboard/``
    (``melody-lab train … --tensorboard``; view with ``tensorboard --logdir OUT``). Needs the
    optional ``tensorboard`` package; without it this raises a one-line :class:`UserError`."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install -e '.[tensorboard]'") from None
    token = _TENSORBOARD.set(True)
    try:
        yield
    finally:
        _TENSORBOARD.reset(token)


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The random stream of one training step on one rank: a pure function of (seed, step, rank)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + rank) % (2**63 - 1))


def check_loop_config(loop: LoopConfig) -> None:
    """Refuse settings the loop cannot honour (a zero interval divides by zero, and a run of
    zero steps or a budget of -1 minutes is a typo, not a request)."""
    for name in ("max_steps", "log_every", "val_every", "ckpt_every"):
        value = getattr(loop, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if loop.max_minutes is not None and not (isinstance(loop.max_minutes, (int, float))
                                             and math.isfinite(loop.max_minutes)
                                             and loop.max_minutes > 0):
        raise ConfigError(f"max_minutes must be a positive number of minutes, got {loop.max_minutes!r}")


def _drop_log_rows_after(path: Path, step: int) -> None:
    """Resuming from step ``step`` redoes every later step: drop their rows (written before the
    run stopped and after its last checkpoint) so that the log holds each step once."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            later = json.loads(line).get("step", 0) > step
        except (json.JSONDecodeError, AttributeError, TypeError):
            continue  # a line cut short by a kill
        if not later:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        atomic_write_text(path, "".join(kept))


def run_training(
    task: TrainTask,
    out_dir: str | Path,
    loop: LoopConfig,
    config_record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``task`` until ``loop.max_steps`` (resuming from ``out_dir`` if it has checkpoints).

    Returns the final ``state`` dict (``step``, last ``train`` losses, last ``val`` metrics).
    ``config_record`` is written to ``out_dir/config.json`` on the first start; on resume it must
    match what is there, so a run is never silently continued with different settings.
    """
    check_loop_config(loop)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run folder {out} is a file; give a folder (new or an earlier run's)")
    out.mkdir(parents=True, exist_ok=True)
    main = distributed.rank() == 0
    record = {"task": task.name, "loop": {**loop.to_dict(), "max_steps": None, "max_minutes": None,
                                          "progress": None}, **(config_record or {})}
    check_run_record(out, record, write=main)

    modules, optimizers = task.modules(), task.optimizers()
    state: dict[str, Any] = {"step": 0}
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        state = load_checkpoint(ckpt, modules, optimizers)
    start_step = state["step"]
    if start_step >= loop.max_steps:
        return state

    def checkpoint(step: int) -> None:
        if main:
            save_checkpoint(out, step, modules, optimizers, state, keep=loop.keep_checkpoints)

    if main:
        _drop_log_rows_after(out / "log.jsonl", start_step)
    log = (out / "log.jsonl").open("a") if main else None
    board = None
    if main and _TENSORBOARD.get():
        from torch.utils.tensorboard import SummaryWriter

        board = SummaryWriter(str(out / "tensorboard"), purge_step=start_step + 1)
    bar = tqdm(total=loop.max_steps, initial=start_step, desc=task.name,
               disable=not (loop.progress and main), dynamic_ncols=True)
    started = time.monotonic()
    step = start_step
    try:
        while step < loop.max_steps:
            gen = step_generator(loop.seed, step, distributed.rank())
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
            for m in modules.values():
                m.train()
            losses = task.train_step(step, gen)
            bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
            if bad:
                raise NonFiniteLossError(
                    f"{task.name}: non-finite loss at step {step}: {bad}; the last good "
                    f"checkpoint in {out} is kept (lower the learning rate or check the data)"
                )
            step += 1
            state["step"], state["train"] = step, losses
            bar.update(1)
            if step % loop.log_every == 0 or step == loop.max_steps:
                bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
                if log:
                    log.write(json.dumps({"step": step, "time": time.time(), **losses}) + "\n")
                    log.flush()
                if board:
                    for k, v in losses.items():
                        board.add_scalar(f"train/{k}", v, step)
            if step % loop.val_every == 0 or step == loop.max_steps:
                for m in modules.values():
                    m.eval()
                with torch.no_grad():
                    state["val"] = task.validate()
                if log:
                    log.write(json.dumps({"step": step, "val": state["val"]}) + "\n")
                    log.flush()
                if board:
                    for k, v in state["val"].items():
                        board.add_scalar(f"val/{k}", v, step)
            out_of_time = (loop.max_minutes is not None
                           and time.monotonic() - started > 60 * loop.max_minutes)
            out_of_time = distributed.broadcast_flag(out_of_time)  # all ranks stop at one step
            if step % loop.ckpt_every == 0 or step == loop.max_steps or out_of_time:
                checkpoint(step)
            if out_of_time:
                break
    finally:
        bar.close()
        if log:
            log.close()
        if board:
            board.close()
    return state
