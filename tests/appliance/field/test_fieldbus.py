"""Several TCP devices and three RTU slaves on one paced line, run by `appliance run` against `bench sim`:
a dead slave does not slow the others, and every fault the bench injects is survived, counted and shown."""

from __future__ import annotations

import json
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ApplianceProcess, free_port, start_appliance

pytestmark = pytest.mark.slow

REGISTERS = """
[[devices.{name}.registers]]
channel = "temperature"
table = "input"
address = 0
datatype = "float32"
[[devices.{name}.registers]]
channel = "count"
table = "holding"
address = 10
"""
SIM_REGISTERS = """
[[{table}.registers]]
table = "input"
address = 0
datatype = "float32"
signal = {{ type = "sine", mean = {mean}, amplitude = 1.0, period_s = 5.0 }}
[[{table}.registers]]
table = "holding"
address = 10
signal = {{ type = "constant", value = {mean} }}
"""


def world(tmp: Path, control: int, tcp_ports: list[int]) -> str:
    link = tmp / "ttyRS485"
    text = textwrap.dedent(f"""
        [device]
        id = "line-box"
        [http]
        listen = "127.0.0.1:0"
        [store]
        commit_interval_ms = 50
        [buses.line-a]
        type = "modbus_rtu"
        url = "{link}"
        baudrate = 19200
        [bench]
        control = "127.0.0.1:{control}"
        [[bench.rtu_lines]]
        name = "line-a"
        link = "{link}"
        baudrate = 19200
    """)
    for unit in (1, 2, 3):
        text += f"[[bench.rtu_lines.slaves]]\nunit = {unit}\n" + SIM_REGISTERS.format(
            table="bench.rtu_lines.slaves", mean=10 * unit
        )
        text += (
            f'[devices.rtu{unit}]\ntype = "modbus_rtu"\nbus = "line-a"\nunit = {unit}\n'
            f"poll_interval_s = 0.2\nturnaround_s = 0.03\n" + REGISTERS.format(name=f"rtu{unit}")
        )
    for n, port in enumerate(tcp_ports):
        text += f'[[bench.modbus_tcp]]\nname = "tcp{n}"\nport = {port}\n' + SIM_REGISTERS.format(
            table="bench.modbus_tcp", mean=100 + n
        )
        text += (
            f'[devices.tcp{n}]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n'
            f"poll_interval_s = 0.2\ntimeout_s = 0.3\n" + REGISTERS.format(name=f"tcp{n}")
        )
    return text


def post(port: int, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApplianceProcess, int]]:
    tmp = tmp_path_factory.mktemp("line")
    control = free_port()
    config = tmp / "appliance.toml"
    config.write_text(world(tmp, control, [free_port(), free_port()]))
    app = start_appliance(config, tmp / "data")
    try:
        app.wait_for(
            lambda s: len(s["sensors"]) == 10 and all(x["quality"] == "ok" for x in s["sensors"]), timeout=20
        )
        yield app, control
    finally:
        app.close()


def polls(app: ApplianceProcess) -> dict[str, int]:
    return {name: s["polls"] for name, s in app.status()["services"].items() if name.startswith("modbus:")}


def rates(app: ApplianceProcess, seconds: float) -> dict[str, float]:
    before, began = polls(app), time.monotonic()
    time.sleep(seconds)
    after, took = polls(app), time.monotonic() - began
    return {name: (after[name] - before[name]) / took for name in after}


def failures(app: ApplianceProcess, device: str) -> dict[str, int]:
    return dict(app.status()["services"][f"modbus:{device}"]["failures"])


COUNTS = {"rtu1.count": 10, "rtu2.count": 20, "rtu3.count": 30, "tcp0.count": 100, "tcp1.count": 101}


def good_counts(status: dict[str, Any]) -> dict[str, Any]:
    """The constant `count` channel of every device whose reading is ok: what each device serves."""
    return {
        x["id"]: x["value"] for x in status["sensors"] if x["channel"] == "count" and x["quality"] == "ok"
    }


def test_every_device_reads_its_own_values(line: tuple[ApplianceProcess, int]) -> None:
    app, _ = line
    values = {s["id"]: s["value"] for s in app.status()["sensors"]}
    assert [values[f"rtu{u}.count"] for u in (1, 2, 3)] == [10, 20, 30]
    assert [values[f"tcp{n}.count"] for n in (0, 1)] == [100, 101]
    assert abs(values["rtu2.temperature"] - 20) <= 1.0
    bus = app.status()["services"]["bus:line-a"]
    assert bus["transactions"] > 0 and bus["garbage_bytes"] == 0


@pytest.mark.realtime("a dead slave does not slow the other devices' polls (docs/drivers.md)")
def test_a_dead_slave_does_not_change_the_others_poll_rate(line: tuple[ApplianceProcess, int]) -> None:
    app, control = line
    before = rates(app, 3.0)
    post(control, "/faults", {"target": "line-a/3", "no_answer": True})
    try:
        app.wait_for(lambda s: s["services"]["modbus:rtu3"]["failures"].get("backed_off", 0) > 0)
        during = rates(app, 3.0)
        status = app.status()
    finally:
        post(control, "/faults/clear", {"target": "line-a/3"})
    for device in ("rtu1", "rtu2", "tcp0", "tcp1"):
        assert during[f"modbus:{device}"] == pytest.approx(before[f"modbus:{device}"], rel=0.1), (
            before,
            during,
        )
    assert status["services"]["modbus:rtu3"]["failures"]["timeout"] >= 2
    assert {x["quality"] for x in status["sensors"] if x["device"] == "rtu3"} == {"error"}
    assert {x["quality"] for x in status["sensors"] if x["device"] != "rtu3"} == {"ok"}
    assert 3 in status["services"]["bus:line-a"]["resting_units"]
    app.wait_for(lambda s: all(x["quality"] == "ok" for x in s["sensors"]), timeout=40)


@pytest.mark.realtime("a babbling RTU slave costs the healthy ones on its line < 10% of their poll rate")
def test_a_babbling_slave_does_not_change_the_others_poll_rate(line: tuple[ApplianceProcess, int]) -> None:
    """Random bytes on 30% of the line's time, never 3.5 characters of silence: the master finds the
    answers among them, counts the garbage and never waits on the line to fall quiet."""
    app, control = line
    before = rates(app, 3.0)
    start = app.status()["services"]
    post(control, "/faults", {"target": "line-a/3", "babble": 0.3})
    try:
        during = rates(app, 3.0)
        status = app.status()
    finally:
        post(control, "/faults/clear", {"target": "line-a/3"})
    for device in ("rtu1", "rtu2", "rtu3", "tcp0", "tcp1"):
        assert during[f"modbus:{device}"] == pytest.approx(before[f"modbus:{device}"], rel=0.1), (
            before,
            during,
        )
        seen, was = status["services"][f"modbus:{device}"], start[f"modbus:{device}"]
        assert seen["failures"] == was["failures"], seen["last_failure"]
    assert status["services"]["bus:line-a"]["garbage_bytes"] > start["bus:line-a"]["garbage_bytes"] + 1000
    assert {x["quality"] for x in status["sensors"]} == {"ok"}


def test_garbage_ahead_of_an_rtu_answer_is_skipped_and_counted(line: tuple[ApplianceProcess, int]) -> None:
    app, control = line
    start = app.status()["services"]
    post(control, "/faults", {"target": "line-a/2", "garbage": True})  # 7 random bytes before each answer
    try:
        status = app.wait_for(
            lambda s: (
                s["services"]["bus:line-a"]["garbage_bytes"] >= start["bus:line-a"]["garbage_bytes"] + 28
            )
        )
    finally:
        post(control, "/faults/clear", {"target": "line-a/2"})
    assert status["services"]["modbus:rtu2"]["failures"] == start["modbus:rtu2"]["failures"]
    assert good_counts(status) == COUNTS


@pytest.mark.parametrize(
    ("target", "device", "fault", "counted"),
    [
        ("line-a/2", "rtu2", {"exception": 4}, "exception"),
        ("line-a/2", "rtu2", {"bad_crc": True}, "bad_crc"),
        ("line-a/2", "rtu2", {"truncate": True}, "bad_response"),
        ("line-a/2", "rtu2", {"late_s": 0.3}, "timeout"),
        ("tcp1", "tcp1", {"exception": 6}, "exception"),
        ("tcp1", "tcp1", {"no_answer": True}, "timeout"),
        ("tcp1", "tcp1", {"late_s": 0.5}, "timeout"),
        ("tcp1", "tcp1", {"garbage": True}, None),
        ("tcp1", "tcp1", {"truncate": True}, None),
    ],
)
def test_each_injected_fault_is_survived_counted_and_shown(
    line: tuple[ApplianceProcess, int], target: str, device: str, fault: dict[str, Any], counted: str | None
) -> None:
    app, control = line
    start = failures(app, device)
    post(control, "/faults", {"target": target, **fault})
    try:
        status = app.wait_for(
            lambda s: sum(s["services"][f"modbus:{device}"]["failures"].values()) >= sum(start.values()) + 2
        )
    finally:
        post(control, "/faults/clear", {"target": target})
    grew = {
        k: v - start.get(k, 0)
        for k, v in status["services"][f"modbus:{device}"]["failures"].items()
        if v > start.get(k, 0)
    }
    if counted:
        assert counted in grew, grew
    assert {x["quality"] for x in status["sensors"] if x["device"] == device} <= {"error", "ok"}
    assert status["services"][f"modbus:{device}"]["restarts"] == 0
    # a bad answer is never a value: every count shown as ok is the one its device serves, during and after
    assert good_counts(status) == {k: v for k, v in COUNTS.items() if k in good_counts(status)}
    after = app.wait_for(lambda s: all(x["quality"] == "ok" for x in s["sensors"]), timeout=40)
    assert good_counts(after) == COUNTS


def test_a_dropped_tcp_connection_and_an_unplugged_line_come_back(line: tuple[ApplianceProcess, int]) -> None:
    app, control = line
    before = app.status()["services"]
    assert post(control, "/disconnect", {"target": "tcp0"})["dropped"] == 1
    # the poller notices the drop itself: only a connection found gone counts, never a poll
    noticed = app.wait_for(
        lambda s: s["services"]["modbus:tcp0"]["connection_drops"] > before["modbus:tcp0"]["connection_drops"]
    )["services"]
    assert noticed["modbus:tcp0"]["connection_drops"] == before["modbus:tcp0"]["connection_drops"] + 1
    assert noticed["modbus:tcp1"]["connection_drops"] == before["modbus:tcp1"]["connection_drops"]
    polls = noticed["modbus:tcp0"]["polls"]
    back = app.wait_for(
        lambda s: (
            s["services"]["modbus:tcp0"]["polls"] > polls + 3
            and {x["quality"] for x in s["sensors"] if x["device"] == "tcp0"} == {"ok"}
        )
    )
    assert next(x["value"] for x in back["sensors"] if x["id"] == "tcp0.count") == 100  # reconnected
    assert back["services"]["modbus:tcp0"]["connection_drops"] == noticed["modbus:tcp0"]["connection_drops"]
    post(control, "/unplug", {"target": "line-a"})
    app.wait_for(lambda s: s["services"]["modbus:rtu1"]["failures"].get("disconnected", 0) > 0)
    post(control, "/plug_in", {"target": "line-a"})
    app.wait_for(lambda s: all(x["quality"] == "ok" for x in s["sensors"]), timeout=40)
    assert app.status()["services"]["bus:line-a"]["reopens"] >= 2
