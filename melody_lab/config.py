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
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config file or dict does not match the dataclass it is loaded into."""


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Turn a plain JSON/YAML value back into the type a dataclass field declares, checking it.

    ``where`` names the field in errors (``Cls.field[2]``). Numbers are not coerced: an ``int``
    is accepted where a ``float`` is declared (JSON writes ``2.0`` as ``2`` in some tools), a
    ``bool`` is never a number, and a string is never a number.
    """
    origin = typing.get_origin(annotation)
    if annotation is Any or isinstance(annotation, TypeVar):
        return value
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping ({annotation.__name__}), got "
                              f"{type(value).__name__} {value!r}")
        return annotation.from_dict(value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: expected {_type_name(annotation)}, got None")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: expected {_type_name(annotation)}, got "
                          f"{type(value).__name__} {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"{where}: expected one of {list(typing.get_args(annotation))}, "
                              f"got {value!r}")
        return value
    if origin in (tuple, list) or annotation in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(annotation)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            items = [_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        elif origin is list and args:
            items = [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            items = list(value)
        return tuple(items) if (origin or annotation) is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        args = typing.get_args(annotation)
        if len(args) == 2:
            return {k: _convert(v, args[1], f"{where}[{k!r}]") for k, v in value.items()}
        return value
    checks = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    if annotation in checks:
        if not isinstance(value, checks[annotation]) or (annotation is not bool and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got "
                              f"{type(value).__name__} {value!r}")
    return value


@dataclasses.dataclass
class Config:
    """Base class for all melody_lab configs (see module docstring)."""

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build from a plain dict; unknown keys and values of the wrong type are a
        :class:`ConfigError` that names the field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown field(s) {unknown}; valid fields are {sorted(fields)}"
            )
        return cls(**{k: _convert(v, hints[k], f"{cls.__name__}.{k}") for k, v in data.items()})

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
