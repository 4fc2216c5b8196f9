"""The registry every pluggable kind uses: keys, lazy imports, priorities, clear errors, change hooks."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from hal.registry import Registry, UnknownKey, load_object


def test_entries_come_back_by_key_in_registration_order() -> None:
    registry: Registry[Callable[[int], int]] = Registry("doubler")
    registry.register("twice", lambda x: 2 * x)
    registry.register("thrice", lambda x: 3 * x)
    assert registry.keys() == ("twice", "thrice")
    assert registry.get("thrice")(2) == 6
    assert "twice" in registry and "once" not in registry and len(registry) == 2


def test_an_unknown_key_names_the_kind_and_the_known_keys() -> None:
    registry: Registry[int] = Registry("GPIO backend")
    registry.register("gpiod", 1)
    registry.register("mock", 2)
    with pytest.raises(UnknownKey, match=r"^unknown GPIO backend 'spi'; known: gpiod, mock$"):
        registry.get("spi")


def test_a_key_cannot_be_claimed_twice() -> None:
    registry: Registry[int] = Registry("transport")
    registry.register("mqtt", 1)
    with pytest.raises(ValueError, match="transport 'mqtt' is registered already"):
        registry.register("mqtt", 2)


def test_a_lazy_target_is_imported_on_first_use_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    registry: Registry[Callable[[float, float, float], tuple[float, float, float]]] = Registry("colour space")
    registry.register("hsv", "colorsys:rgb_to_hsv")
    assert "colorsys" not in sys.modules  # registering imports nothing
    assert registry.get("hsv")(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules
    assert registry.get("hsv") is sys.modules["colorsys"].rgb_to_hsv


def test_a_bad_import_path_says_what_it_expected() -> None:
    with pytest.raises(ValueError, match=r"expected 'package\.module:attribute'"):
        load_object("colorsys.rgb_to_hsv")


def test_priorities_order_the_automatic_choice_and_none_means_only_by_name() -> None:
    registry: Registry[str] = Registry("runner")
    registry.register("mock", "m")  # never chosen by itself
    registry.register("low", "l", priority=10)
    registry.register("high", "h", priority=20)
    registry.register("also-low", "a", priority=10)
    assert [e.key for e in registry.by_priority()] == ["high", "low", "also-low"]


def test_config_classes_are_listed_and_listeners_hear_every_change() -> None:
    class TcpConfig:
        pass

    registry: Registry[str] = Registry("device type")
    heard: list[tuple[str, ...]] = []
    registry.on_change(lambda: heard.append(registry.keys()))
    registry.register("tcp", "t", config=TcpConfig)
    registry.register("plain", "p")
    assert registry.configs() == (TcpConfig,)
    registry.unregister("tcp")
    assert heard == [("tcp",), ("tcp", "plain"), ("plain",)]
    assert registry.configs() == ()
