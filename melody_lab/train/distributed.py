"""Multi-process training with DistributedDataParallel (``torchrun --nproc_per_node N …``).

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`setup` then starts a process group (``nccl``
on GPUs, ``gloo`` on CPU) and pins each rank to its GPU. The denoiser stage wraps its network with
:func:`wrap` (DistributedDataParallel) and keeps the plain module for checkpoints; the stages whose
loss is not a single forward call (codec, MuLan, LM) call :func:`average_gradients` before each
optimizer step, after :func:`broadcast_parameters` at start. Each rank draws its own batches (the shared loop folds the rank into the
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


def setup(allow_cuda: bool = True) -> torch.device:
    """Start the process group if launched by torchrun; return this rank's device.

    Stages that train on the CPU only pass ``allow_cuda=False`` (gloo, CPU device).
    """
    use_cuda = allow_cuda and torch.cuda.is_available()
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_distributed():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
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
