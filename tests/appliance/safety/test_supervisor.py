"""`appliance safety` as a real process: a real Unix socket, the mock line's journal as the wire."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.safety import protocol
from appliance.safety.protocol import Kind
from hal.gpio.mock import JOURNAL_ENV, read_journal, wire_level
from tests.appliance.safety.processes import (
    DEADLINE_MS,
    ROOT,
    TICK_MS,
    Client,
    Supervisor,
    run_supervisor,
    safety_toml,
    start_supervisor,
    wait_level,
)


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    s = start_supervisor(tmp_path)
    yield s
    s.stop()


def test_files_are_private_and_the_line_waits_for_a_healthy_heartbeat(sup: Supervisor) -> None:
    assert (sup.data / "safety.sock").stat().st_mode & 0o777 == 0o600
    assert (sup.data / "safety.key").stat().st_mode & 0o777 == 0o600
    assert sup.levels() == [0]
    client = Client(sup.data)
    state = client.send(Kind.STATUS)
    assert state["state"] == "starting" and state["energized"] is False
    state = client.beat()
    assert state["state"] == "ok" and state["energized"] is True and sup.levels() == [0, 1]
    client.close()


@pytest.mark.realtime("a trip request drops the line when it arrives (docs/safety.md)")
def test_a_trip_request_drops_the_line_and_reports_the_latency(sup: Supervisor) -> None:
    client = Client(sup.data)
    client.beat()
    cause = time.monotonic_ns()
    state = client.send(Kind.TRIP, "guard open", {"cause_ns": cause})
    drop = read_journal(sup.journal)[-1]
    assert drop.level == 0 and state["state"] == "tripped" and state["reason"] == "guard open"
    trip = state["history"][-1]
    assert trip["cause_ns"] == cause and drop.t_ns <= trip["line_ns"] and 0 < trip["latency_ms"] < 100
    assert json.loads((sup.data / "safety-latch.json").read_text())["reason"] == "guard open"
    client.close()


@pytest.mark.realtime("silence drops the line heartbeat_deadline_ms after the last heartbeat, plus a tick")
def test_silence_drops_the_line_within_the_deadline_plus_a_tick(sup: Supervisor) -> None:
    client = Client(sup.data)
    client.beat()
    last = time.monotonic_ns()
    client.beat()
    wait_level(sup, 0)
    drop = read_journal(sup.journal)[-1].t_ns
    assert drop - last <= (DEADLINE_MS + TICK_MS) * 1_000_000, (drop - last) / 1e6
    assert drop - last >= DEADLINE_MS * 1_000_000 * 0.9
    state = client.send(Kind.STATUS)
    assert state["history"][-1]["source"] == "heartbeat"
    client.close()


@pytest.mark.realtime("a closed runtime connection drops the line at once (docs/safety.md)")
def test_a_closed_runtime_connection_drops_the_line_at_once(sup: Supervisor) -> None:
    client = Client(sup.data)
    client.beat()
    closed = time.monotonic_ns()
    client.close()
    wait_level(sup, 0)
    assert read_journal(sup.journal)[-1].t_ns - closed < DEADLINE_MS * 1_000_000 / 2
    other = Client(sup.data)  # a client that never sent a heartbeat may come and go freely
    assert other.send(Kind.STATUS)["history"][-1]["source"] == "disconnect"
    other.close()


def test_a_reset_is_refused_while_the_cause_persists_and_accepted_after(sup: Supervisor) -> None:
    client = Client(sup.data)
    client.beat()
    state = client.beat("oil too hot")
    assert state["state"] == "tripped" and sup.levels()[-1] == 0
    answer = client.send(Kind.RESET, "admin")
    assert answer["accepted"] is False and "cause persists: oil too hot" in answer["message"]
    assert answer["refused_resets"] == 1 and sup.levels()[-1] == 0
    client.beat()
    answer = client.send(Kind.RESET, "admin")
    assert answer["accepted"] is True and sup.levels()[-1] == 1
    assert not (sup.data / "safety-latch.json").exists()
    client.close()


def test_forged_replayed_stale_and_garbage_messages_are_refused(sup: Supervisor) -> None:
    client = Client(sup.data)
    client.beat()
    trip = protocol.Sender(client.secret, "test")  # a second sender: its packets are recorded, then replayed
    forged = Client(sup.data, secret=b"x" * protocol.SECRET_BYTES)
    forged.sock.send(forged.sender.message(Kind.RESET, "intruder"))
    refusal = json.loads(forged.sock.recv(1 << 20)[protocol.TAG_BYTES :])
    assert refusal["data"] == {"refused": "unauthenticated", "ack": None}  # nothing of the state
    reset = trip.message(Kind.RESET, "admin")
    client.send(Kind.TRIP, "test")
    assert client.raw(reset)["accepted"] is True
    client.send(Kind.TRIP, "again")
    assert client.raw(reset)["refused"] == "replayed"
    old = protocol.encode(
        client.secret, protocol.Message(Kind.RESET, "old", 1, time.monotonic_ns() - 5_000_000_000)
    )
    assert client.raw(old) == {"refused": "stale", "ack": None}
    assert client.raw(b"\x00" * 5000) == {"refused": "unauthenticated", "ack": None}
    state = client.send(Kind.STATUS)
    assert state["state"] == "tripped" and sup.levels()[-1] == 0
    assert state["supervisor"]["refused"] == {"unauthenticated": 2, "replayed": 1, "stale": 1}
    client.close()
    forged.close()


def test_sigterm_drops_the_line_and_cleans_up(sup: Supervisor) -> None:
    client = Client(sup.data)
    client.beat()
    assert sup.stop() == 0
    assert sup.levels()[-1] == 0 and wire_level(sup.journal, "STOP") == 0
    assert not (sup.data / "safety.sock").exists() and not (sup.data / "safety.sock.pid").exists()
    client.close()


def test_a_killed_supervisor_leaves_the_wire_de_energized_and_restarts_latched(tmp_path: Path) -> None:
    sup = start_supervisor(tmp_path)
    client = Client(sup.data)
    client.beat()
    assert wire_level(sup.journal, "STOP") == 1
    sup.proc.kill()
    sup.stop()
    # nothing ran in the killed process: its last drive was "energized", but the line was released
    assert sup.levels()[-1] == 1 and wire_level(sup.journal, "STOP") == 0
    client.close()
    again = start_supervisor(tmp_path)
    client = Client(again.data)
    state = client.beat()
    assert state["state"] == "tripped" and "unclean exit" in state["reason"]
    assert again.levels()[-1] == 0
    assert client.send(Kind.RESET, "admin")["accepted"] is True
    client.close()
    again.stop()


def test_a_latched_trip_survives_a_restart(tmp_path: Path) -> None:
    sup = start_supervisor(tmp_path)
    client = Client(sup.data)
    client.beat()
    client.send(Kind.TRIP, "guard open")
    client.close()
    sup.stop()
    again = start_supervisor(tmp_path)
    client = Client(again.data)
    state = client.beat()
    assert state["state"] == "tripped" and state["reason"] == "guard open"
    client.close()
    again.stop()


def test_only_one_supervisor_owns_the_line(sup: Supervisor, tmp_path: Path) -> None:
    second = run_supervisor(
        tmp_path / "appliance.toml", sup.data, {**os.environ, JOURNAL_ENV: str(tmp_path / "j2")}
    )
    assert second.returncode == 1 and "already owns" in second.stderr
    client = Client(sup.data)
    assert client.send(Kind.STATUS)["state"] == "starting"
    client.close()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[device]\nid = 'x'\n", "the supervisor needs a [safety] section"),
        ("[safety]\nstop_line = { line = 3 }\ntick_ms = 0\n", "safety.tick_ms"),
        ("[safety]\n", "safety.stop_line"),
    ],
)
def test_a_bad_config_exits_2_before_touching_anything(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(toml)
    result = run_supervisor(config, tmp_path / "data")
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "data").exists()


def test_no_gpio_backend_is_an_error_not_a_mock(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(safety_toml().replace('gpio = "mock", ', ""))
    env = {k: v for k, v in os.environ.items() if k != "APPLIANCE_GPIO"}
    result = run_supervisor(config, tmp_path / "data", env)
    assert result.returncode == 1 and "no GPIO backend available" in result.stderr


def test_the_supervisor_loads_no_web_store_or_sync_code() -> None:
    code = (
        "import sys, appliance.cli.main, appliance.safety.supervisor\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'sqlite_utils', 'paho')"
        " or m.startswith(('appliance.store', 'appliance.web', 'appliance.sync', 'appliance.runtime'))]\n"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_replies_stay_small_after_many_trips_and_resets(sup: Supervisor) -> None:
    client = Client(sup.data)
    client.beat()
    for i in range(40):
        client.send(Kind.TRIP, f"trip {i}")
        client.beat()  # a reset needs a fresh heartbeat, however slowly a loaded machine runs this loop
        assert client.send(Kind.RESET, "admin")["accepted"] is True
    packet_state = client.send(Kind.STATUS)
    assert packet_state["trips"] == 40 and len(packet_state["history"]) == 10
    assert packet_state["history"][-1]["kind"] == "reset" and sup.levels()[-1] == 1
    client.close()


def test_the_supervisor_tells_systemd_it_is_ready_pets_its_watchdog_and_says_when_it_stops(
    tmp_path: Path,
) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(5)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"}
    sup = start_supervisor(tmp_path, env=env)
    try:
        got = [notify.recv(4096).decode() for _ in range(4)]
        assert got[0].startswith("READY=1") and got[1:] == ["WATCHDOG=1"] * 3
    finally:
        assert sup.stop() == 0
    rest = []
    with contextlib.suppress(TimeoutError):
        while True:
            rest.append(notify.recv(4096).decode())
    assert rest[-1] == "STOPPING=1"
    notify.close()


def test_a_stop_while_energized_latches_but_a_stop_while_starting_does_not(tmp_path: Path) -> None:
    sup = start_supervisor(tmp_path)
    assert sup.stop() == 0
    assert not (sup.data / "safety-latch.json").exists()
    sup = start_supervisor(tmp_path)
    client = Client(sup.data)
    client.beat()
    client.close()  # the runtime went away first: latched for that
    sup.stop()
    latched = json.loads((sup.data / "safety-latch.json").read_text())["reason"]
    assert latched == "runtime connection lost"
    (sup.data / "safety-latch.json").unlink()
    sup = start_supervisor(tmp_path)
    client = Client(sup.data)
    client.beat()
    assert sup.stop() == 0  # stopped under a live runtime (a desktop runtime killed: PDEATHSIG)
    assert "stopped while the line was energized" in (sup.data / "safety-latch.json").read_text()
    client.close()
