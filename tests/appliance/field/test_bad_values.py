"""Values that are not finite numbers (inf, -inf, nan) from a serial sensor, a Modbus float register or a
scale that overflows: each is a reading of quality error that keeps what came, counted per channel in its
device's status, and a fault to the safety rules on that sensor (not a reading that is absent)."""

from __future__ import annotations

import asyncio
import math
import os
import struct
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import pytest

from appliance.config.devices import SerialAsciiDeviceSettings, SerialBinaryDeviceSettings
from appliance.config.models import ModbusTcpDeviceSettings
from appliance.config.safety import SafetySettings
from appliance.field.poller import ModbusPoller
from appliance.field.serial_sensor import SerialSensor
from appliance.records import Event, Quality, Reading
from appliance.safety.rules import SafetyRules
from drivers.modbus.tcp import ModbusTcpClient
from drivers.serial.binary import encode
from tests.conftest import free_port
from tests.drivers.serial.test_line import wait_for
from tests.drivers.test_interop import pymodbustcp_server, wait_running


def words(fmt: str, value: float) -> list[int]:
    data = struct.pack(">" + fmt, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


# (channel, address, datatype, scale, raw value served)
POINTS: list[tuple[str, int, str, float, float]] = [
    ("good", 0, "float32", 1.0, 21.5),
    ("nan", 2, "float32", 1.0, math.nan),
    ("overrange", 4, "float32", 1.0, math.inf),
    ("underrange", 6, "float64", 1.0, -math.inf),
    ("overflow", 10, "float64", 10.0, 1e308),  # a finite register, a scale past float's range
]


def test_non_finite_modbus_values_are_bad_quality_and_counted() -> None:
    server_module = pymodbustcp_server()
    bank = server_module.DataBank()
    for _, address, datatype, _, value in POINTS:
        assert bank.set_input_registers(address, words("f" if datatype == "float32" else "d", value))
    port = free_port()
    server = server_module.ModbusServer(host="127.0.0.1", port=port, no_block=True, data_bank=bank)
    settings = ModbusTcpDeviceSettings.model_validate(
        {
            "type": "modbus_tcp",
            "host": "127.0.0.1",
            "port": port,
            "max_gap": 8,
            "registers": [
                {"channel": c, "table": "input", "address": a, "datatype": d, "scale": s}
                | ({"features": {"window_s": 5, "baseline_samples": 2}} if c == "nan" else {})
                for c, a, d, s, _ in POINTS
            ],
        }
    )
    poller = ModbusPoller(
        "dev", settings, partial(ModbusTcpClient, "127.0.0.1", port, 1, 0.5), lambda *_: None
    )

    async def twice() -> list[Reading]:
        client = ModbusTcpClient("127.0.0.1", port, 1, 0.5)
        try:
            await poller.poll_once(client)
            return await poller.poll_once(client)
        finally:
            client.close()

    server.start()
    try:
        wait_running(server)
        readings = {r.channel: r for r in asyncio.run(twice())}
    finally:
        server.stop()
    assert (readings["good"].value, readings["good"].quality) == (21.5, Quality.OK)
    for channel in ("nan", "overrange", "underrange", "overflow"):
        assert readings[channel].quality is Quality.ERROR, readings[channel]
    assert math.isnan(readings["nan"].value)  # type: ignore[arg-type]
    assert (readings["overrange"].value, readings["underrange"].value) == (math.inf, -math.inf)
    assert readings["overflow"].value == math.inf
    assert "nan.rate" not in readings and "nan.sigma" not in readings  # a bad value feeds no feature
    status = poller.status()
    assert status.bad_values == {"nan": 2, "overrange": 2, "underrange": 2, "overflow": 2}
    assert status.failures == {}  # the device answered: the values are bad, not the reads


class Pty:
    """The sensor's end of a pty line; the appliance opens `path`."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def pty() -> Iterator[Pty]:
    line = Pty()
    yield line
    line.close()


def serial_readings(
    settings: SerialAsciiDeviceSettings | SerialBinaryDeviceSettings, send: Callable[[], object], count: int
) -> tuple[list[Reading], SerialSensor]:
    """Readings of a SerialSensor on the line until `count` came, after `send()` wrote the frames."""
    got: list[Reading] = []

    async def body() -> SerialSensor:
        enough = asyncio.Event()

        def sink(readings: Sequence[Reading], _: int) -> None:
            got.extend(readings)
            if len(got) >= count:
                enough.set()

        sensor = SerialSensor("air", settings, sink)
        await sensor.start()
        try:
            opened = lambda: sensor.line.status()["state"] == "open"  # noqa: E731
            await asyncio.to_thread(wait_for, opened, "the sensor's port open")  # opening empties it
            send()
            await asyncio.wait_for(enough.wait(), 5)
        finally:
            await sensor.stop()
        return sensor

    sensor = asyncio.run(body())
    return got, sensor


def test_1e999_from_an_ascii_sensor_is_a_bad_value_of_its_channel_only(pty: Pty) -> None:
    settings = SerialAsciiDeviceSettings.model_validate(
        {
            "type": "serial_ascii",
            "url": pty.path,
            "pattern": r"T:(?P<t>\S+)\s+H:(?P<h>\S+)",
            "fields": [{"name": "t"}, {"name": "h", "scale": 1e300}],
        }
    )
    lines = b"T:1e999 H:45.2\r\nT:-1e999 H:1e10\r\nT:21.5 H:1\r\n"  # h * 1e300 overflows on the second
    got, sensor = serial_readings(settings, lambda: os.write(pty.master, lines), 6)
    assert [(r.channel, r.value, r.quality) for r in got] == [
        ("t", math.inf, Quality.ERROR),
        ("h", 45.2 * 1e300, Quality.OK),
        ("t", -math.inf, Quality.ERROR),
        ("h", math.inf, Quality.ERROR),
        ("t", 21.5, Quality.OK),
        ("h", 1e300, Quality.OK),
    ]
    assert sensor.status().bad_values == {"t": 2, "h": 1}


def test_nan_from_a_binary_sensor_marks_that_channel_not_the_frame(pty: Pty) -> None:
    settings = SerialBinaryDeviceSettings.model_validate(
        {
            "type": "serial_binary",
            "url": pty.path,
            "channels": [{"id": 1, "name": "temperature"}, {"id": 2, "name": "pressure"}],
        }
    )
    frame = encode({1: math.nan, 2: 1013.25})
    got, sensor = serial_readings(settings, lambda: os.write(pty.master, frame), 2)
    by = {r.channel: r for r in got}
    assert math.isnan(by["temperature"].value) and by["temperature"].quality is Quality.ERROR  # type: ignore[arg-type]
    assert (by["pressure"].value, by["pressure"].quality) == (1013.25, Quality.OK)
    status = sensor.status()
    assert status.bad_values == {"temperature": 1}
    assert status.errors.get("bad_number", 0) == 0


class Rig:
    """Safety rules as the runtime wires them: the trips they ask for and the events they record."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        settings = SafetySettings.model_validate({"stop_line": {"gpio": "mock", "line": 1}, "rules": rules})
        self.trips: list[str] = []
        self.events: list[Event] = []
        self.rules = SafetyRules(
            settings.rules,
            lambda sensor: (sensor.split(".", 1)[0], sensor.split(".", 1)[1]),
            lambda reason, _: self.trips.append(reason),
            self.events.extend,
        )

    def feed(self, channel: str, value: float | None, quality: Quality = Quality.OK) -> None:
        self.rules.readings([Reading("air", channel, value, "", time.time(), quality)], time.monotonic_ns())

    def active(self) -> dict[str, str]:
        return {r.name: r.detail for r in self.rules.status() if r.active}


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_bad_value_trips_a_critical_rule_on_its_sensor(bad: float) -> None:
    rig = Rig(
        [
            {"type": "threshold", "name": "too hot", "sensor": "air.t", "above": 80.0, "hysteresis": 2.0},
            {"type": "rate", "name": "t jumps", "sensor": "air.t", "limit_per_s": 1.0, "severity": "warning"},
            {"type": "sigma", "name": "h odd", "sensor": "air.h", "sigma": 3.0, "severity": "warning"},
        ]
    )
    rig.feed("t", 21.0)
    assert rig.trips == [] and rig.active() == {}
    rig.feed("t", bad, Quality.ERROR)
    assert rig.trips == [f"too hot: bad value {bad} (not a finite number)"]
    assert rig.active() == {
        "too hot": f"bad value {bad} (not a finite number)",
        "t jumps": f"bad value {bad} (not a finite number)",
    }
    assert [(e.kind, e.severity, e.message) for e in rig.events] == [
        ("rule.fired", "critical", f"too hot: bad value {bad} (not a finite number)"),
        ("rule.fired", "warning", f"t jumps: bad value {bad} (not a finite number)"),
    ]
    assert rig.rules.causes() == (f"too hot: bad value {bad} (not a finite number)",)
    rig.feed("t", 21.0)  # a good value inside the limits clears them: the cause is gone
    assert rig.active() == {} and rig.rules.causes() == ()
    rig.feed("h", bad, Quality.ERROR)  # a sigma rule too, though it has learned nothing yet
    assert rig.active() == {"h odd": f"bad value {bad} (not a finite number)"}


def test_a_failed_read_is_still_for_the_stale_rule_to_judge() -> None:
    """No value at all (a timeout) is absence, which a `stale` rule watches; a bad value is a fault now."""
    rig = Rig([{"type": "threshold", "name": "too hot", "sensor": "air.t", "above": 80.0}])
    rig.feed("t", None, Quality.ERROR)
    rig.feed("t", 50.0, Quality.STALE)
    assert rig.trips == [] and rig.active() == {}
