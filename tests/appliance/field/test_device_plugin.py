"""A device type registered by a plugin module (tests/appliance/field/fake_counter.py) is validated in
[devices] like a built-in one, named among the known types, and built into a service by build_field."""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Iterator, Sequence
from types import ModuleType

import pytest

from appliance.config import ConfigError, parse_config
from appliance.field.fieldbus import build_field
from appliance.records import Reading

DEVICES = """
[devices.press-1]
type = "counter"
channel = "strokes"
start = 7
"""


@pytest.fixture
def plugin() -> Iterator[ModuleType]:
    module = importlib.import_module("tests.appliance.field.fake_counter")
    yield module
    from appliance.config.devices import DEVICE_TYPES

    DEVICE_TYPES.unregister(module.KEY)
    sys.modules.pop("tests.appliance.field.fake_counter", None)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(text), "t.toml")
    return caught.value.lines


def test_without_the_plugin_the_type_is_unknown() -> None:
    assert problems(DEVICES) == [
        "t.toml: devices.press-1.type: unknown type 'counter'; known types: "
        "'modbus_tcp', 'modbus_rtu', 'serial_ascii', 'serial_binary'"
    ]


def test_the_plugins_devices_load_and_build(plugin: ModuleType) -> None:
    config = parse_config(tomllib.loads(DEVICES), "t.toml")
    device = config.devices["press-1"]
    assert isinstance(device, plugin.CounterSettings) and device.start == 7
    got: list[Reading] = []

    def sink(readings: Sequence[Reading], received_ns: int) -> None:
        got.extend(readings)

    (service,) = build_field(config, sink)
    assert isinstance(service, plugin.Counter)
    service.count()
    assert [(r.device, r.channel, r.value) for r in got] == [("press-1", "strokes", 7.0)]


def test_the_plugins_config_is_as_strict_as_the_built_in_ones(plugin: ModuleType) -> None:
    assert problems(DEVICES + "speed = 3\n") == ["t.toml: devices.press-1.speed: unknown key"]
    assert problems(DEVICES.replace('type = "counter"', 'type = "counters"')) == [
        "t.toml: devices.press-1.type: unknown type 'counters'; known types: "
        "'modbus_tcp', 'modbus_rtu', 'serial_ascii', 'serial_binary', 'counter'"
    ]
