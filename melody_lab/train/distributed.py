"""Multi-process training with DistributedDataParallel (``torchrun --nproc_per_node N …``).

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`setup` then starts a process group (``nccl``
on GPUs, ``gloo`` on CPU) and pins each rank to its GPU. A stage wraps the module it trains with
:func:`wrap` for the forward/backward pass (gradients are averaged across ranks) and keeps the plain
module for checkpoints. Each rank draws its own batches (the shared loop folds the rank into the
per-step random stream); rank 0 alone writes checkpoints and logs. Without torchrun all of this is
a no-op, so the same command runs on one CPU.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def setup() -> torch.device:
    """Start the process group if launched by torchrun; return this rank's device."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` under torchrun, else ``module`` itself."""
    if not is_distributed():
        return module
    device = next(module.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
