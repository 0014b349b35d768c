"""Devices: waiting for queued accelerator work, so that wall-clock times include it."""
from __future__ import annotations

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work on ``device`` (no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
