"""Multi-process training with DistributedDataParallel (``torchrun --nproc_per_node N …``).

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`setup` then starts a process group (``nccl``
on GPUs, ``gloo`` on CPU) and pins each rank to its GPU. Every stage (codec, MuLan, LM, denoiser)
puts its models, optimizer state and each batch on the device :func:`setup` returns; batches are
drawn on the CPU (the loop's per-step generator), so a CPU and a GPU run draw the same batches.
The denoiser stage wraps its network with :func:`wrap` (DistributedDataParallel) and keeps the
plain module for checkpoints; the stages whose loss is not a single forward call (codec, MuLan, LM)
call :func:`average_gradients` before each optimizer step, after :func:`broadcast_parameters` at
start. Each rank draws its own batches (the shared loop folds the rank into the per-step random
stream); rank 0 alone writes checkpoints and logs. Without torchrun all of this is a no-op, so the
same command runs on one CPU. ``MELODY_LAB_DEVICE=cpu`` (or ``cuda``, ``cuda:1``) overrides the
choice of device.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..errors import UserError

#: environment variable that overrides :func:`setup`'s choice of device (``cpu``, ``cuda``, ``cuda:N``)
DEVICE_ENV = "MELODY_LAB_DEVICE"


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """This rank's training device: ``device`` if given, else ``$MELODY_LAB_DEVICE`` if set, else
    ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU. A bare ``cuda`` means
    ``cuda:LOCAL_RANK``; asking for CUDA without it is a one-line :class:`UserError`."""
    device = device if device is not None else os.environ.get(DEVICE_ENV) or None
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        return torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r} (from {DEVICE_ENV} or the device argument); "
                        "use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {device} was asked for but CUDA is not available; "
                            f"unset {DEVICE_ENV} or set it to cpu")
        return torch.device("cuda", local if device.index is None else device.index)
    if device.type != "cpu":
        raise UserError(f"training runs on cpu or cuda, not {device.type}")
    return device


def setup(device: str | torch.device | None = None) -> torch.device:
    """Start the process group if launched by torchrun (``nccl`` when this rank trains on a GPU,
    else ``gloo``); return this rank's device (see :func:`choose_device`), made current on CUDA."""
    chosen = choose_device(device)
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    return chosen


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (``flag`` itself without torchrun). nccl moves only CUDA
    tensors, so the flag travels on this rank's GPU there."""
    if not is_distributed():
        return flag
    on_gpu = dist.get_backend() == "nccl"
    tensor = torch.tensor([float(flag)],
                          device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` under torchrun, else ``module`` itself."""
    if not is_distributed():
        return module
    device = next(module.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def broadcast_parameters(*modules: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op without torchrun)."""
    if is_distributed():
        for module in modules:
            for tensor in (*module.parameters(), *module.buffers()):
                dist.broadcast(tensor.data, src=0)


def average_gradients(*modules: torch.nn.Module) -> None:
    """All-reduce and average the gradients of ``modules`` across ranks (no-op without torchrun).

    For stages whose loss is not one ``forward`` call (MuLan's two towers, the LM's ``loss``, the
    codec's generator and discriminator): call it between ``backward()`` and ``step()``. It is
    what DDP does, without DDP's overlap of communication and backward.
    """
    if is_distributed():
        world = float(world_size())
        for module in modules:
            for p in module.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
