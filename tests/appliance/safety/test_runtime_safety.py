"""The safety chain through `appliance run`: heartbeats, deaths and freezes of the runtime, rules on live
sensor values, manual trip and reset over the API, trips and resets recorded as events."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hal.gpio.mock import JOURNAL_ENV, process_alive, read_journal, wire_level
from tests.appliance.safety.processes import DEADLINE_MS, TICK_MS, Supervisor, start_supervisor, wait_level
from tests.conftest import ApplianceProcess, bench_config, free_port, get_json, start_appliance


def safety(supervisor: str = "spawn", rules: str = "") -> str:
    return textwrap.dedent(f"""
        [safety]
        supervisor = "{supervisor}"
        heartbeat_interval_ms = 50
        heartbeat_deadline_ms = {DEADLINE_MS}
        tick_ms = {TICK_MS}
        stop_line = {{ gpio = "mock", line = "STOP" }}
    """) + textwrap.dedent(rules)


def safety_config(tmp_path: Path, supervisor: str) -> Path:
    """A box with nothing but its stop output, the status page on any free port."""
    config = tmp_path / "appliance.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:0"\n' + safety(supervisor))
    return config


def events(app: ApplianceProcess, kind: str) -> list[dict[str, Any]]:
    return [e for e in get_json(app.url + "api/v1/events?since=0") if e["kind"] == kind]


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal"
    monkeypatch.setenv(JOURNAL_ENV, str(path))
    return path


@pytest.fixture
def external(tmp_path: Path, journal: Path) -> Iterator[tuple[Supervisor, Path]]:
    config = safety_config(tmp_path, "external")
    sup = start_supervisor(tmp_path, config.read_text())
    yield sup, config
    sup.stop()


@pytest.mark.realtime(
    "a hung runtime's line drops heartbeat_deadline_ms after its last heartbeat, plus a tick"
)
def test_a_frozen_runtime_drops_the_line_in_time_and_a_reset_needs_it_back(
    external: tuple[Supervisor, Path], tmp_path: Path
) -> None:
    sup, config = external
    app = start_appliance(config, sup.data)
    try:
        wait_level(sup, 1)
        token = app.admin_credential()
        app.wait_for(lambda s: s["estop"]["state"] == "ok")
        for _ in range(3):
            time.sleep(0.137)  # a moment between heartbeats, different each round
            os.kill(app.proc.pid, signal.SIGSTOP)
            frozen = time.monotonic_ns()
            wait_level(sup, 0)
            drop = read_journal(sup.journal)[-1].t_ns
            assert drop - frozen <= (DEADLINE_MS + TICK_MS) * 1_000_000, (drop - frozen) / 1e6
            os.kill(app.proc.pid, signal.SIGCONT)
            status = app.wait_for(
                lambda s: s["estop"]["latched"] and "heartbeat late" in s["estop"]["reason"]
            )
            assert status["estop"]["state"] == "tripped"
            assert app.post("api/v1/estop/reset", token)[0] == 200
            wait_level(sup, 1)
        app.wait_for(lambda s: s["services"]["store"]["events_committed"] >= 6)
        trips = events(app, "estop.trip")
        assert len(trips) == 3 and all(t["data"]["source"] == "heartbeat" for t in trips)
        assert all(0 <= t["data"]["latency_ms"] < TICK_MS for t in trips)
    finally:
        app.stop()


@pytest.mark.realtime("a killed runtime's line drops at once, well within the heartbeat deadline")
def test_a_killed_runtime_drops_the_line_at_once_and_its_successor_records_the_trip(
    external: tuple[Supervisor, Path],
) -> None:
    sup, config = external
    app = start_appliance(config, sup.data)
    wait_level(sup, 1)
    token = app.admin_credential()
    killed = time.monotonic_ns()
    app.stop(signal.SIGKILL)
    wait_level(sup, 0)
    assert read_journal(sup.journal)[-1].t_ns - killed < DEADLINE_MS * 1_000_000
    app = start_appliance(config, sup.data)
    try:
        status = app.wait_for(lambda s: s["estop"]["phase"] == "tripped")
        assert status["estop"]["reason"] == "runtime connection lost"
        app.wait_for(lambda s: s["services"]["store"]["events_committed"] >= 1)
        (trip,) = events(app, "estop.trip")
        assert trip["data"]["source"] == "disconnect" and trip["severity"] == "critical"
        assert app.post("api/v1/estop/reset", token)[0] == 200
        wait_level(sup, 1)
    finally:
        app.stop()
    wait_level(sup, 0)  # a clean stop of the runtime closes its connection: the line drops too


def test_a_spawned_supervisor_dies_with_a_killed_runtime_and_the_line_is_down(
    tmp_path: Path, journal: Path
) -> None:
    config = safety_config(tmp_path, "spawn")
    app = start_appliance(config, tmp_path / "data")
    status = app.wait_for(lambda s: s["estop"]["state"] == "ok")
    supervisor_pid = status["estop"]["supervisor"]["pid"]
    assert wire_level(journal, "STOP") == 1
    app.stop(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while process_alive(supervisor_pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not process_alive(supervisor_pid)
    assert [t.level for t in read_journal(journal)][-1] == 0 and wire_level(journal, "STOP") == 0


@pytest.mark.realtime("a critical rule's trip: from the poll's answer to the line down in under 50 ms")
def test_a_rule_trips_on_a_live_value_and_the_reset_waits_for_the_cause_to_clear(
    tmp_path: Path, journal: Path
) -> None:
    rule = """
        [[safety.rules]]
        type = "threshold"
        name = "too hot"
        sensor = "line.temperature"
        above = 24.0
        hysteresis = 3.0
    """
    config = tmp_path / "appliance.toml"
    config.write_text(bench_config(free_port(), poll_interval_s=0.05) + safety("spawn", rule))
    app = start_appliance(config, tmp_path / "data")
    try:
        token = app.admin_credential()
        status = app.wait_for(lambda s: s["estop"]["latched"] and s["estop"]["causes"], timeout=15)
        assert status["estop"]["reason"].startswith("too hot: ")
        code, answer = app.post("api/v1/estop/reset", token)
        assert code == 409 and "cause persists: too hot" in answer["error"]
        assert wire_level(journal, "STOP") == 0
        app.wait_for(lambda s: not s["estop"]["causes"], timeout=10)
        code, answer = app.post("api/v1/estop/reset", token)
        assert code == 200, answer
        assert wire_level(journal, "STOP") == 1
        app.wait_for(lambda s: s["services"]["store"]["events_committed"] >= 5)
        (trip, *_) = events(app, "estop.trip")
        fired = events(app, "rule.fired")[0]
        assert trip["data"]["source"] == "request" and trip["data"]["cause_ns"] == fired["data"]["cause_ns"]
        assert trip["data"]["latency_ms"] < 50
        assert events(app, "estop.reset_refused") and events(app, "estop.reset")
    finally:
        app.stop()


def test_control_requests_need_the_admin_credential(tmp_path: Path, journal: Path) -> None:
    config = safety_config(tmp_path, "spawn")
    app = start_appliance(config, tmp_path / "data")
    try:
        token = app.admin_credential()
        app.wait_for(lambda s: s["estop"]["state"] == "ok")
        mode = (tmp_path / "data" / "admin-credential.json").stat().st_mode & 0o777
        assert mode == 0o600 and token not in (tmp_path / "data" / "admin-credential.json").read_text()
        assert app.post("api/v1/estop/trip", None)[0] == 401
        assert app.post("api/v1/estop/trip", "wrong")[0] == 401
        assert wire_level(journal, "STOP") == 1
        code, answer = app.post("api/v1/estop/trip", token, {"reason": "guard open"})
        assert code == 200 and answer["estop"]["state"] == "tripped"
        assert (
            answer["estop"]["reason"] == "manual trip by admin: guard open"
            and wire_level(journal, "STOP") == 0
        )
        assert app.post("api/v1/estop/reset", None)[0] == 401
        assert wire_level(journal, "STOP") == 0
        for _ in range(4):  # a request without a credential is no failed attempt; wrong ones are
            assert app.post("api/v1/estop/reset", "guess")[0] == 401
        code, answer = app.post("api/v1/estop/reset", token)
        assert code == 429 and "too many failed attempts" in answer["error"]  # five failures: locked out
        assert wire_level(journal, "STOP") == 0
    finally:
        app.stop()
    app = start_appliance(config, tmp_path / "data")  # the credential is shown once, on first start only
    try:
        app.wait_for(lambda s: s["estop"] is not None)
        assert not any(line.startswith("admin credential") for line in app.stdout)
    finally:
        app.stop()


@pytest.mark.realtime(
    "a critical defect's trip: from the frame to the line down, inference included, in under 50 ms"
)
def test_a_critical_defect_trips_the_line_from_the_inference_thread(tmp_path: Path, journal: Path) -> None:
    import cv2
    import numpy as np

    from bench.models.tflite_builder import image_classifier, write

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, bgr in enumerate([(220, 0, 0)] * 8 + [(0, 0, 220)] * 2):  # blue parts, then a red one
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((120, 160, 3), bgr, np.uint8))
    write(tmp_path / "rgb.tflite", image_classifier(64, 64, 3, 3, dtype="uint8"))
    config = tmp_path / "appliance.toml"
    config.write_text(
        textwrap.dedent(f"""
            [http]
            listen = "127.0.0.1:0"
            [qc]
            model = "rgb.tflite"
            labels = ["red", "green", "blue"]
            camera = {{ type = "directory", uri = "{frames}", fps = 20 }}
            [qc.policy.red]
            severity = "critical"
            threshold = 0.8
        """)
        + safety("spawn")
    )
    app = start_appliance(config, tmp_path / "data")
    try:
        status = app.wait_for(lambda s: s["estop"]["latched"], timeout=20)
        assert status["estop"]["reason"].startswith("QC: red (")
        assert wire_level(journal, "STOP") == 0
        app.wait_for(lambda s: s["services"]["store"]["events_committed"] >= 2)
        trip = events(app, "estop.trip")[0]
        assert trip["data"]["source"] == "request" and trip["data"]["latency_ms"] < 50
        assert events(app, "qc.defect")[0]["data"]["label"] == "red"
    finally:
        app.stop()


def test_the_runtime_tells_systemd_it_is_ready_and_pets_only_while_its_loop_runs(
    tmp_path: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(3)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    config = safety_config(tmp_path, "external")
    sup = start_supervisor(tmp_path, config.read_text(), env={"NOTIFY_SOCKET": ""})
    app = start_appliance(config, sup.data)
    try:
        assert notify.recv(4096).decode().startswith("READY=1")
        assert notify.recv(4096).decode() == "WATCHDOG=1"
        os.kill(app.proc.pid, signal.SIGSTOP)  # a hung runtime: the pets stop, systemd would restart it
        with contextlib.suppress(TimeoutError):
            while True:
                notify.settimeout(0.3)
                notify.recv(4096)
        with pytest.raises(TimeoutError):
            notify.recv(4096)
        os.kill(app.proc.pid, signal.SIGCONT)
        notify.settimeout(3)
        assert notify.recv(4096).decode() == "WATCHDOG=1"
    finally:
        app.stop()
        sup.stop()
        notify.close()


def test_a_runtime_started_before_its_external_supervisor_connects_when_it_comes(
    tmp_path: Path, journal: Path
) -> None:
    config = safety_config(tmp_path, "external")
    app = start_appliance(config, tmp_path / "data")
    try:
        status = app.wait_for(lambda s: s["services"]["safety"]["last_error"])
        assert status["estop"]["state"] == "tripped" and status["estop"]["phase"] == "unknown"
        sup = start_supervisor(tmp_path, config.read_text())
        try:
            app.wait_for(lambda s: s["estop"]["state"] == "ok", timeout=20)
            assert wire_level(journal, "STOP") == 1
        finally:
            app.stop()
            sup.stop()
    finally:
        app.close()
