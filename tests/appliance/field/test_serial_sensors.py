"""Serial line sensors through `appliance run`: ASCII and binary sensors on ptys from `bench sim`, their
faults counted, silence marked stale, an unplugged adapter reconnected."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.appliance.field.test_fieldbus import post
from tests.conftest import ApplianceProcess, free_port, start_appliance

pytestmark = pytest.mark.slow


def config(tmp: Path, control: int) -> str:
    return textwrap.dedent(f"""
        [device]
        id = "air-box"
        [http]
        listen = "127.0.0.1:0"
        [devices.air]
        type = "serial_ascii"
        url = "{tmp}/air"
        stale_after_s = 1.0
        pattern = '\\$PSEN,T=(?P<temperature>[^,]*),P=(?P<pressure>[^,]*)(?:,H=(?P<humidity>[^,]*))?'
        checksum = "nmea"
        fields = [{{ name = "temperature", unit = "degC" }}, {{ name = "pressure", unit = "hPa" }},
                  {{ name = "humidity", unit = "%RH" }}]
        [devices.box]
        type = "serial_binary"
        url = "{tmp}/box"
        stale_after_s = 1.0
        channels = [{{ id = 1, name = "temperature", unit = "degC" }}, {{ id = 2, name = "pressure" }},
                    {{ id = 3, name = "humidity", scale = 0.01, unit = "ratio" }}]
        [bench]
        control = "127.0.0.1:{control}"
        [[bench.serial_sensors]]
        name = "air"
        link = "{tmp}/air"
        rate_hz = 20
        [[bench.serial_sensors]]
        name = "box"
        link = "{tmp}/box"
        wire = "binary"
        rate_hz = 20
        seed = 7
    """)


@pytest.fixture(scope="module")
def sensors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApplianceProcess, int]]:
    tmp = tmp_path_factory.mktemp("serial")
    control = free_port()
    path = tmp / "appliance.toml"
    path.write_text(config(tmp, control))
    app = start_appliance(path, tmp / "data")
    try:
        app.wait_for(lambda s: len(s["sensors"]) == 6 and all(x["quality"] == "ok" for x in s["sensors"]))
        yield app, control
    finally:
        app.close()


def service(status: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(status["services"][f"serial:{name}"])


def test_both_sensors_deliver_values_in_their_units(sensors: tuple[ApplianceProcess, int]) -> None:
    app, _ = sensors
    values = {s["id"]: s for s in app.status()["sensors"]}
    assert 15 < values["air.temperature"]["value"] < 30 and values["air.temperature"]["unit"] == "degC"
    assert 1000 < values["box.pressure"]["value"] < 1030
    assert 0.2 < values["box.humidity"]["value"] < 0.8 and values["box.humidity"]["unit"] == "ratio"
    assert service(app.status(), "air")["state"] == "open"


@pytest.mark.parametrize(
    ("target", "action", "kind"),
    [
        ("air", "garbage", "not_text"),  # the seeded noise has no line end: it spoils one sentence
        ("air", "bad_checksum", "bad_checksum"),
        ("air", "truncated", None),
        ("box", "garbage", "garbage"),  # and no STX: skipped up to the next frame
        ("box", "bad_checksum", "bad_crc"),
        ("box", "truncated", None),
    ],
)
def test_bad_frames_are_counted_and_skipped(
    sensors: tuple[ApplianceProcess, int], target: str, action: str, kind: str | None
) -> None:
    app, control = sensors
    before = service(app.status(), target)
    post(control, "/serial", {"target": target, "action": action})
    after = app.wait_for(
        lambda s: sum(service(s, target)["errors"].values()) > sum(before["errors"].values())
    )
    grew = {k for k, v in service(after, target)["errors"].items() if v > before["errors"].get(k, 0)}
    if kind:
        assert kind in grew, grew
    app.wait_for(lambda s: service(s, target)["frames_ok"] > before["frames_ok"] + 5)
    assert service(app.status(), target)["restarts"] == 0


def test_a_silent_sensor_goes_stale_and_comes_back(sensors: tuple[ApplianceProcess, int]) -> None:
    app, control = sensors
    post(control, "/serial", {"target": "air", "action": "silence"})
    try:
        stale = app.wait_for(
            lambda s: {x["quality"] for x in s["sensors"] if x["device"] == "air"} == {"stale"}
        )
    finally:
        post(control, "/serial", {"target": "air", "action": "resume"})
    assert all(
        x["value"] is not None for x in stale["sensors"] if x["device"] == "air"
    )  # last good value kept
    assert {x["quality"] for x in stale["sensors"] if x["device"] == "box"} == {"ok"}
    app.wait_for(lambda s: {x["quality"] for x in s["sensors"] if x["device"] == "air"} == {"ok"})


def test_an_unplugged_adapter_is_reconnected(sensors: tuple[ApplianceProcess, int]) -> None:
    app, control = sensors
    before = service(app.status(), "box")["reconnects"]
    post(control, "/serial", {"target": "box", "action": "unplug"})
    app.wait_for(lambda s: {x["quality"] for x in s["sensors"] if x["device"] == "box"} == {"stale"})
    post(control, "/serial", {"target": "box", "action": "replug"})
    after = app.wait_for(
        lambda s: (
            service(s, "box")["reconnects"] > before
            and {x["quality"] for x in s["sensors"] if x["device"] == "box"} == {"ok"}
        ),
        timeout=20,
    )
    assert service(after, "box")["state"] == "open"


def test_1e999_from_a_sensor_trips_the_rule_on_it_instead_of_being_skipped(tmp_path: Path) -> None:
    """A well-formed sentence whose temperature is `1e999`: a fault of the input, so the critical threshold
    rule on it trips the line at once; counted and shown on its device. A binary frame's inf likewise."""
    control = free_port()
    path = tmp_path / "appliance.toml"
    rule = '[[safety.rules]]\ntype = "threshold"\nname = "{0} too hot"\nsensor = "{0}.temperature"\n'
    safety = '[safety]\nstop_line = { gpio = "mock", line = "STOP" }\n'
    safety += "".join(rule.format(device) + "above = 80.0\n" for device in ("air", "box"))
    path.write_text(config(tmp_path, control) + safety)
    app = start_appliance(path, tmp_path / "data")
    try:
        app.wait_for(lambda s: s["estop"]["state"] == "ok" and len(s["sensors"]) == 6)
        post(control, "/serial", {"target": "air", "action": "overrange"})
        status = app.wait_for(lambda s: s["estop"]["state"] == "tripped")
        assert status["estop"]["reason"].endswith("air too hot: bad value inf (not a finite number)")
        assert service(status, "air")["bad_values"] == {"temperature": 1}
        post(control, "/serial", {"target": "box", "action": "overrange"})
        status = app.wait_for(lambda s: service(s, "box")["bad_values"] == {"temperature": 1})
        assert service(status, "box")["errors"].get("bad_number", 0) == 0  # the frame's other values came
        assert service(status, "air")["errors"].get("bad_number", 0) == 0
    finally:
        app.close()
