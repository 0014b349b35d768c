"""Save and load semantic-stage components as folders of safetensors + JSON (never pickle).

Two folder layouts are accepted everywhere a component is loaded:

* an **export folder** (what ``save_pretrained`` writes and what ships in ``melody_lab/assets``)::

      DIR/config.json           {"kind": "<name>", "config": {...}}
      DIR/<name>.safetensors    the module's tensors (fp32, or fp16 for shipped assets)

* a **training run folder** (what ``melody-lab train <stage>`` writes, see ``train/checkpoint.py``):
  ``DIR/config.json`` holds the run record with the component config under ``"model"``, and
  ``DIR/latest`` names the checkpoint whose ``<name>.safetensors`` holds the weights.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..train.checkpoint import CheckpointError, latest_checkpoint


def save_pretrained(module: torch.nn.Module, config: Any, out_dir: str | Path, kind: str,
                    half: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir`` (export layout) atomically; ``half`` stores parameters as fp16.

    Buffers (normalisation statistics, codebooks) always stay fp32.
    """
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    params = {name for name, _ in module.named_parameters()}
    tensors = {}
    for name, value in module.state_dict().items():
        value = value.detach().cpu().contiguous()
        tensors[name] = value.half() if half and name in params else value
    save_file(tensors, str(tmp / f"{kind}.safetensors"))
    record = {"kind": kind, "config": config.to_dict(), **(extra or {})}
    (tmp / "config.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def resolve(path: str | Path, kind: str) -> tuple[dict[str, Any], Path]:
    """``(component config dict, weights file)`` for an export folder or a training run folder."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{path} is not a {kind} folder: it has no config.json")
    record = json.loads(cfg_path.read_text())
    if record.get("kind") == kind:
        return record["config"], path / f"{kind}.safetensors"
    if "model" not in record:
        raise CheckpointError(f"{cfg_path} describes neither a {kind} export nor a {kind} run")
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise CheckpointError(f"run folder {path} has no checkpoint yet (train it first)")
    return record["model"], ckpt / f"{kind}.safetensors"


def load_weights(module: torch.nn.Module, weights: Path) -> torch.nn.Module:
    """Load ``weights`` strictly into ``module`` (fp16 tensors are cast to the module's dtype)."""
    if not weights.is_file():
        raise CheckpointError(f"missing weights file {weights}")
    tensors = load_file(str(weights))
    own = module.state_dict()
    tensors = {k: v.to(own[k].dtype) if k in own else v for k, v in tensors.items()}
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights in {weights} do not fit the model config: {err}") from err
    return module.eval()
