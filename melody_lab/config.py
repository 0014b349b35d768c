"""Configs: dataclasses that round-trip through plain JSON / YAML.

Every component's configuration is a ``@dataclass`` that inherits :class:`Config`. A config holds
only plain values (numbers, strings, bools, lists/tuples of those, nested configs), so it
serialises to JSON for checkpoints and to YAML for humans, and loading one never executes code.

    >>> @dataclass
    ... class Toy(Config):
    ...     width: int = 8
    >>> Toy.from_dict({"width": 16}).width
    16
"""
from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config file or dict does not match the dataclass it is loaded into."""


def _convert(value: Any, annotation: Any) -> Any:
    """Turn a plain JSON value back into the type a dataclass field declares."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation.from_dict(value) if isinstance(value, dict) else value
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        return tuple(value)
    if origin is list and isinstance(value, (list, tuple)):
        (arg,) = typing.get_args(annotation) or (Any,)
        return [_convert(v, arg) for v in value]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(annotation):
            if arg is type(None):
                if value is None:
                    return None
                continue
            return _convert(value, arg) if value is not None else None
    return value


@dataclasses.dataclass
class Config:
    """Base class for all melody_lab configs (see module docstring)."""

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build from a plain dict; unknown keys are an error that names them."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown field(s) {unknown}; valid fields are {sorted(fields)}"
            )
        return cls(**{k: _convert(v, hints[k]) for k, v in data.items()})

    def replace(self: C, **overrides: Any) -> C:
        """A copy with some fields changed; unknown names are an error."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}: unknown override(s) {unknown}; valid: {sorted(fields)}"
            )
        return dataclasses.replace(self, **overrides)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        path = Path(path)
        text = self.to_yaml() if path.suffix in (".yaml", ".yml") else self.to_json()
        path.write_text(text)

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        path = Path(path)
        text = path.read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        return cls.from_dict(data)
