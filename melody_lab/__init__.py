"""melody_lab: MeLoDy (Lam et al., NeurIPS 2023) as a modular educational and benchmark suite."""
from __future__ import annotations

import os as _os

# OpenMP threads that spin-wait collapse when another process holds a core: on this 2-core
# machine, generating 10 s with torch's default 2 threads beside one busy process took 150 s
# instead of 3.7 s. Sleeping waits cost little when the machine is idle. This must be set before
# torch loads its OpenMP runtime, i.e. before `import torch`; an explicit setting is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["MeLoDy", "__version__"]


def __getattr__(name: str):
    # Imported lazily so that `import melody_lab` and `melody-lab --help` stay fast.
    if name == "MeLoDy":
        from .pipeline import MeLoDy

        return MeLoDy
    raise AttributeError(f"module 'melody_lab' has no attribute {name!r}")
