"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout of a training run directory ``OUT``::

    OUT/config.json                 what was trained (component + training configs)
    OUT/ckpt-00001200/              one checkpoint (a folder, complete or absent)
        <module>.safetensors        weights of each named module
        <optimizer>.optim.safetensors + <optimizer>.optim.json   optimizer state
        state.json                  step, metrics, anything JSON-able the trainer keeps
    OUT/latest                      text file naming the newest complete checkpoint folder
    OUT/log.jsonl                   one JSON line per logged step / validation

A checkpoint folder is written under a temporary name and renamed when complete, then ``latest``
is replaced with ``os.replace``: an interrupted save leaves the previous checkpoint intact.
Loading reads only safetensors and JSON, so it never executes code.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match what is being loaded."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # unique per writer
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.detach().contiguous().clone()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    state: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``run_dir/ckpt-<step>`` atomically, point ``latest`` at it, keep the newest ``keep``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / f"ckpt-{step:08d}"
    tmp = run_dir / f".ckpt-{step:08d}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, module in modules.items():
        save_model(module, str(tmp / f"{name}.safetensors"))
    for name, opt in (optimizers or {}).items():
        tensors, meta = _flatten_optimizer(opt)
        save_file(tensors, str(tmp / f"{name}.optim.safetensors"))
        (tmp / f"{name}.optim.json").write_text(json.dumps(meta))
    (tmp / "state.json").write_text(json.dumps({"step": step, **(state or {})}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(run_dir / "latest", final.name + "\n")
    old = sorted(p for p in run_dir.glob("ckpt-*") if p.is_dir())
    for path in old[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None if there is none yet."""
    run_dir = Path(run_dir)
    pointer = run_dir / "latest"
    if not pointer.exists():
        return None
    path = run_dir / pointer.read_text().strip()
    if not (path / "state.json").exists():
        raise CheckpointError(f"{pointer} names {path.name}, which is missing or incomplete")
    return path


def load_checkpoint(
    ckpt: str | Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
) -> dict[str, Any]:
    """Load weights (strictly) and optimizer states in place; return ``state.json``."""
    ckpt = Path(ckpt)
    for name, module in modules.items():
        path = ckpt / f"{name}.safetensors"
        if not path.exists():
            raise CheckpointError(f"checkpoint {ckpt} has no weights for module {name!r}")
        try:
            load_model(module, str(path), strict=True)
        except (RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"weights in {path} do not fit module {name!r} (different config?): {err}"
            ) from err
    for name, opt in (optimizers or {}).items():
        tensors = load_file(str(ckpt / f"{name}.optim.safetensors"))
        meta = json.loads((ckpt / f"{name}.optim.json").read_text())
        opt.load_state_dict(_unflatten_optimizer(tensors, meta))
    return json.loads((ckpt / "state.json").read_text())
