"""The default bench world (examples/bench.toml) with its data directory on a small tmpfs that fills up: a
trip stays latched, the supervisor keeps running, a killed supervisor's successor starts latched, and only
an authenticated reset once there is room again brings the line back (the fault as first reproduced)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.tomlfile import DEFAULT_CONFIG
from bench.perf.safety_faults import fill
from hal.gpio.mock import JOURNAL_ENV, read_journal
from tests.conftest import ApplianceProcess, start_appliance


def bench_world(tmp_path: Path) -> Path:
    text = DEFAULT_CONFIG.read_text().replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
    text = text.replace('model = "../', f'model = "{DEFAULT_CONFIG.parent.parent}/')
    config = tmp_path / "bench.toml"
    config.write_text(text)
    return config


@pytest.fixture
def full_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ApplianceProcess, Path, Path]]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    data, journal = tmp_path / "data", tmp_path / "journal"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(data)], check=True)
    monkeypatch.setenv(JOURNAL_ENV, str(journal))
    try:
        app = start_appliance(bench_world(tmp_path), data)
        try:
            yield app, data, journal
        finally:
            for filler in data.glob("filler"):
                filler.unlink()  # a runtime with a full disk does not stop (its store retries the commit)
            try:
                app.stop()
            except subprocess.TimeoutExpired:
                app.close()
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def level(journal: Path) -> int:
    return read_journal(journal)[-1].level


def held_down(app: ApplianceProcess, journal: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert level(journal) == 0 and app.status()["estop"]["state"] == "tripped"
        time.sleep(0.1)


def energize(app: ApplianceProcess, token: str, journal: Path) -> None:
    """Reset until the line is up (the demo camera's cracks trip it now and then)."""
    deadline = time.monotonic() + 20
    while level(journal) != 1:
        assert time.monotonic() < deadline, app.status()["estop"]
        app.post("api/v1/estop/reset", token)
        time.sleep(0.2)


def test_a_full_disk_under_the_bench_world_never_energizes_the_line_without_a_reset(
    full_box: tuple[ApplianceProcess, Path, Path],
) -> None:
    app, data, journal = full_box
    token = app.admin_credential()
    app.wait_for(lambda s: (s.get("qc") or {}).get("frames"), timeout=30)
    energize(app, token, journal)
    filler = fill(data)
    assert app.post("api/v1/estop/trip", token, {"reason": "guard open"})[0] == 200
    assert level(journal) == 0
    status = app.wait_for(lambda s: s["estop"]["supervisor"]["latch_file"]["error"])
    assert "ENOSPC" in status["estop"]["supervisor"]["latch_file"]["error"]
    app.wait_for(lambda s: any(i["id"].startswith("estop-unrecorded") for i in s["insights"]), timeout=5)
    pid = status["estop"]["supervisor"]["pid"]
    held_down(app, journal, 1.5)
    assert app.status()["estop"]["supervisor"]["pid"] == pid  # it did not exit
    os.kill(pid, signal.SIGKILL)  # the runtime spawns a successor: it must start latched
    status = app.wait_for(lambda s: s["estop"]["supervisor"].get("pid") not in (None, pid), timeout=15)
    held_down(app, journal, 1.5)
    estop = app.status()["estop"]
    assert estop["latched"] is True and "unclean exit" in estop["reason"]
    filler.unlink()
    app.wait_for(lambda s: s["estop"]["supervisor"]["latch_file"]["recorded"], timeout=5)
    energize(app, token, journal)
