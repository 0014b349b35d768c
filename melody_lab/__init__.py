"""melody_lab: MeLoDy (Lam et al., NeurIPS 2023) as a modular educational and benchmark suite."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["MeLoDy", "__version__"]


def __getattr__(name: str):
    # Imported lazily so that `import melody_lab` and `melody-lab --help` stay fast.
    if name == "MeLoDy":
        from .pipeline import MeLoDy

        return MeLoDy
    raise AttributeError(f"module 'melody_lab' has no attribute {name!r}")
