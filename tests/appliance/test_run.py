"""`appliance run` as a real process: live values over HTTP, clean stops, and a SIGKILL that loses nothing."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from hal.report import detect
from tests.conftest import ApplianceProcess, bench_config, free_port, start_appliance


def row_count(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / "appliance.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is dead for our purposes
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


def test_status_shows_changing_sensor_values_and_the_page_is_served(appliance: ApplianceProcess) -> None:
    first = appliance.wait_for(
        lambda s: len(s["sensors"]) == 2 and all(x["quality"] == "ok" for x in s["sensors"])
    )
    assert first["device"] == "test-box"
    sensors = {s["id"]: s for s in first["sensors"]}
    assert sensors["line.setpoint"]["value"] == 42.5 and sensors["line.setpoint"]["unit"] == "degC"
    assert abs(sensors["line.temperature"]["ts"] - time.time()) < 5
    temp = sensors["line.temperature"]["value"]
    later = appliance.wait_for(
        lambda s: next(x for x in s["sensors"] if x["id"] == "line.temperature")["value"] != temp
    )
    assert later["uptime_s"] > first["uptime_s"]
    assert all(service["running"] for service in later["services"].values()), later["services"]
    assert later["services"]["store"]["rows_committed"] > 0
    assert later["services"]["modbus:line"]["failures"] == {}
    hal, here = later["hal"], detect(Path("/"))  # this machine: an x86 PC, an arm64 board or VM
    assert hal["board"]["family"] == str(here.board.spec.family) and hal["cpu"]["cores"] == here.cpu.cores
    assert [b["backend"] for b in hal["inference"]["backends"]] == [str(b.kind) for b in here.plan.backends]
    with urllib.request.urlopen(appliance.url, timeout=5) as response:
        assert b"/api/v1/stream" in response.read()


@pytest.mark.realtime("SIGTERM or SIGINT stops every service within 2 s (docs/running.md)")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_everything_within_two_seconds_and_commits_everything(
    appliance: ApplianceProcess, sig: int
) -> None:
    status = appliance.wait_for(lambda s: s["services"]["store"]["rows_committed"] >= 20)
    bench_pid = status["services"]["bench"]["pid"]
    began = time.monotonic()
    code = appliance.stop(sig)
    took = time.monotonic() - began
    assert code == 0, "".join(appliance.stderr)
    assert took < 2.0
    assert wait_gone(bench_pid, timeout=0.5)
    committed = re.search(r"stopped in [\d.]+ s; (\d+) readings committed", appliance.output)
    assert committed is not None, appliance.stderr
    assert row_count(appliance.data_dir) == int(committed.group(1))


def test_sigkill_loses_no_committed_reading_and_a_restart_carries_on(
    config_file: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    app = start_appliance(config_file, data)
    try:
        status = app.wait_for(lambda s: s["services"]["store"]["rows_committed"] >= 40)
        bench_pid = status["services"]["bench"]["pid"]
        committed = app.status()["services"]["store"]["rows_committed"]
    finally:
        app.stop(signal.SIGKILL)
    assert wait_gone(bench_pid), "the simulated world must not outlive a killed appliance"
    after_kill = row_count(data)
    assert after_kill >= committed
    again = start_appliance(config_file, data)  # same ports, same database
    try:
        again.wait_for(lambda s: s["services"]["store"]["rows_committed"] >= 10)
    finally:
        assert again.stop() == 0
    assert row_count(data) >= after_kill + 10


def test_an_invalid_bench_section_exits_2_before_touching_state(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text(bench_config(free_port()).replace('name = "line"', 'name = ""'))
    app = start_appliance(config, tmp_path / "data", ready=False)
    assert app.wait() == 2
    assert (
        f"{config}: bench.modbus_tcp[0].name: string should have at least 1 character" in app.output.lower()
    )
    assert not (tmp_path / "data").exists()


def test_a_busy_http_port_is_reported_and_nothing_is_left_running(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text(bench_config(free_port()))
    with contextlib.closing(socket.socket()) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        app = start_appliance(config, tmp_path / "data", "--http", f"127.0.0.1:{port}", ready=False)
        assert app.wait() == 1
    assert f"cannot start: [Errno 98] cannot listen on 127.0.0.1:{port}" in app.output
    assert not any("status page" in line for line in app.stdout)


def test_a_dead_simulated_world_is_restarted_and_polling_recovers(appliance: ApplianceProcess) -> None:
    status = appliance.wait_for(lambda s: s["sensors"] and all(x["quality"] == "ok" for x in s["sensors"]))
    old_pid = status["services"]["bench"]["pid"]
    os.kill(old_pid, signal.SIGKILL)
    assert wait_gone(old_pid)
    appliance.wait_for(lambda s: s["services"]["modbus:line"]["failures"].get("disconnected", 0) >= 1)
    after = appliance.wait_for(
        lambda s: (
            s["services"]["bench"]["restarts"] == 1
            and s["services"]["bench"]["pid"] not in (None, old_pid)
            and all(x["quality"] == "ok" for x in s["sensors"])
        ),
        timeout=40,
    )
    assert "bench sim exited with code -9" in after["services"]["bench"]["last_error"]
    assert appliance.stop() == 0


@pytest.mark.realtime("a signal stops everything within 2 s, while starting too (docs/running.md)")
def test_a_signal_while_starting_ends_the_start_and_leaves_nothing_running(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text(bench_config(free_port()))
    app = start_appliance(config, tmp_path / "data", ready=False)
    deadline = time.monotonic() + 30
    while not any("hardware:" in line for line in app.stderr):  # the services start right after
        assert time.monotonic() < deadline and app.proc.poll() is None, app.output
        time.sleep(0.01)
    began = time.monotonic()
    code = app.stop(signal.SIGTERM)
    assert code == 0, app.output
    assert time.monotonic() - began < 2.0
    assert "stopped in" in app.output
    assert not any(line.startswith("status page") for line in app.stdout)
    left = [pid for pid in Path("/proc").iterdir() if pid.name.isdigit() and _runs_with(pid, config)]
    assert not left, "a child of the stopped start is still running"


def _runs_with(proc: Path, config: Path) -> bool:
    with contextlib.suppress(OSError):
        return str(config).encode() in (proc / "cmdline").read_bytes()
    return False
