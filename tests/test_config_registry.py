"""Configs round-trip through JSON/YAML; registries give helpful errors."""
from dataclasses import dataclass, field

import pytest

from melody_lab.config import Config, ConfigError
from melody_lab.registry import Registry, UnknownNameError


@dataclass
class Inner(Config):
    widths: tuple[int, ...] = (1, 2)
    name: str = "x"


@dataclass
class Outer(Config):
    lr: float = 1e-3
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None
    tags: list[str] = field(default_factory=list)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_round_trip_through_files(tmp_path, suffix):
    cfg = Outer(lr=0.5, inner=Inner(widths=(3, 4, 5), name="y"), maybe=7, tags=["a"])
    path = tmp_path / f"cfg{suffix}"
    cfg.save(path)
    loaded = Outer.load(path)
    assert loaded == cfg
    assert isinstance(loaded.inner, Inner) and loaded.inner.widths == (3, 4, 5)


def test_unknown_fields_are_named():
    with pytest.raises(ConfigError, match="bogus"):
        Outer.from_dict({"lr": 1.0, "bogus": 2})
    with pytest.raises(ConfigError, match="nope"):
        Outer().replace(nope=1)
    assert Outer().replace(lr=2.0).lr == 2.0


def test_registry_lists_names_on_unknown():
    reg: Registry = Registry("widget")
    reg.register("b")(int)
    reg.register("a")(float)
    assert reg.get("a") is float and reg.names() == ["a", "b"] and "b" in reg
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; choose one of: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(str)
