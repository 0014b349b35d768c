"""Name → constructor registries: how an ablation swaps a component with one word.

    SCHEDULES = Registry("schedule")

    @SCHEDULES.register("uniform")
    class UniformSchedule: ...

    SCHEDULES.get("uniform")      # the class
    SCHEDULES.get("unifrom")      # KeyError: unknown schedule 'unifrom'; choose one of: linear, uniform
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; print it plainly instead
        return str(self.args[0])


class Registry(Generic[T]):
    """A small dict of named constructors with helpful errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
