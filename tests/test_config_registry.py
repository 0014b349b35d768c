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


@pytest.mark.parametrize("data, where", [
    ({"lr": "1e-3"}, r"Outer\.lr: expected float, got str"),
    ({"lr": True}, r"Outer\.lr: expected float, got bool"),
    ({"maybe": "7"}, r"Outer\.maybe: expected int, got str"),
    ({"inner": {"widths": [1, "2"]}}, r"Inner\.widths\[1\]: expected int, got str"),
    ({"inner": {"name": 3}}, r"Inner\.name: expected str, got int"),
    ({"inner": [1]}, r"Outer\.inner: expected a mapping"),
    ({"tags": "a"}, r"Outer\.tags: expected a list"),
])
def test_values_of_the_wrong_type_are_named(data, where):
    with pytest.raises(ConfigError, match=where):
        Outer.from_dict(data)


def test_well_typed_values_still_load():
    cfg = Outer.from_dict({"lr": 1, "maybe": None, "inner": {"widths": [3]}, "tags": ["a"]})
    assert cfg.lr == 1 and cfg.maybe is None and cfg.inner.widths == (3,) and cfg.tags == ["a"]


def test_a_component_registry_holds_config_class_and_presets():
    reg: Registry = Registry("gadget")

    @reg.register("g", config=Inner, presets={"small": Inner(widths=(1,)), "big": Inner(widths=(9,))})
    class Gadget:
        def __init__(self, config: Inner):
            self.config = config

    assert Gadget.kind == "gadget" and Gadget.name == "g" and reg.config_class("g") is Inner
    assert reg.presets["g"]["big"].widths == (9,) and reg.build("g", "small", name="z").config.name == "z"
    with pytest.raises(Exception, match="unknown g preset 'huge'; choose one of: small, big"):
        reg.config("g", "huge")
