"""Name → constructor registries: how an ablation swaps a component with one word.

    SCHEDULES = Registry("schedule")

    @SCHEDULES.register("uniform")
    class UniformSchedule: ...

    SCHEDULES.get("uniform")      # the class
    SCHEDULES.get("unifrom")      # KeyError: unknown schedule 'unifrom'; choose one of: linear, uniform

A registry of *components* (codec, denoiser, mulan, rvq, tokenizer, lm) also knows each entry's
config class and its preset table — one shape everywhere, ``{preset name: config instance}``::

    DENOISERS.register("dpd", config=DPDConfig, presets={"micro": DPDConfig(...), ...})(DPD)
    DENOISERS.config("dpd", "micro", width=64)    # a copy of the preset with overrides
    DENOISERS.build("dpd", "micro")               # DPD(DENOISERS.config("dpd", "micro"))
    DENOISERS.presets["dpd"]                      # {"micro": DPDConfig(...), ...}

Registering a component class stamps it with ``kind`` (the registry's) and ``name`` (its entry),
and gives it ``save_pretrained`` / ``from_pretrained`` from :class:`melody_lab.io.Pretrained`
(unless it defines its own), so every component is saved and loaded the same way.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from .errors import UserError

T = TypeVar("T")

#: every registry by kind ("codec", "denoiser", …), filled as the component packages import
REGISTRIES: dict[str, "Registry"] = {}


class UnknownNameError(KeyError):
    """Raised for a name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; print it plainly instead
        return str(self.args[0])


def _make_component(cls: Any, kind: str, name: str) -> None:
    from .io import Pretrained  # io builds on this module, so it is imported when first needed

    cls.kind, cls.name = kind, name
    for method in ("save_pretrained", "from_pretrained", "from_config"):
        if not hasattr(cls, method):
            setattr(cls, method, Pretrained.__dict__[method])


class Registry(Generic[T]):
    """A small dict of named constructors with helpful errors (see module docstring)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._configs: dict[str, type] = {}
        #: ``{name: {preset: config}}`` of the entries registered with presets
        self.presets: dict[str, dict[str, Any]] = {}
        REGISTRIES.setdefault(kind, self)

    def register(self, name: str, config: type | None = None,
                 presets: dict[str, Any] | None = None) -> Callable[[T], T]:
        """Decorator; ``config`` (the config class) and ``presets`` for components."""
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            if config is not None:
                self._configs[name] = config
                self.presets[name] = dict(presets or {})
                _make_component(obj, self.kind, name)
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def config_class(self, name: str) -> type:
        """The config dataclass of entry ``name``."""
        self.get(name)
        return self._configs[name]

    def config(self, name: str, preset: str = "tiny", /, **overrides) -> Any:
        """A copy of ``name``'s ``preset`` config with field ``overrides``."""
        self.get(name)  # an unknown name lists the valid ones
        table = self.presets.get(name, {})
        if preset not in table:
            raise UserError(f"unknown {name} preset {preset!r}; choose one of: {', '.join(table)}")
        return table[preset].replace(**overrides)

    def build(self, name: str, preset: str = "tiny", /, **overrides) -> T:
        """A fresh (untrained) ``name`` at ``preset``: ``cls(self.config(name, preset, **overrides))``."""
        return self.get(name)(self.config(name, preset, **overrides))  # type: ignore[operator]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
