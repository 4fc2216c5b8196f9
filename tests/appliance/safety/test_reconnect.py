"""A runtime that loses an energized supervisor and finds a successor that lost its files (its data directory
deleted: no latch, no run marker) trips it before its first heartbeat: the line does not come back."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from hal.gpio.mock import JOURNAL_ENV, read_journal
from tests.appliance.safety.processes import start_supervisor, wait_level
from tests.appliance.safety.test_runtime_safety import safety_config
from tests.conftest import start_appliance


def test_a_successor_that_lost_its_latch_is_tripped_by_the_reconnecting_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal"
    monkeypatch.setenv(JOURNAL_ENV, str(journal))
    config = safety_config(tmp_path, "external")
    sup = start_supervisor(tmp_path, config.read_text())
    app = start_appliance(config, sup.data)
    try:
        wait_level(sup, 1)
        sup.proc.send_signal(signal.SIGKILL)
        sup.stop()
        for name in ("safety-latch.json", "safety.sock.pid"):  # as if the files had gone with the directory
            (sup.data / name).unlink(missing_ok=True)
        rows = len(read_journal(journal))
        again = start_supervisor(tmp_path, config.read_text())
        try:
            status = app.wait_for(lambda s: s["estop"]["phase"] == "tripped" and s["estop"]["supervisor"])
            assert "reconnected after losing the supervisor" in status["estop"]["reason"]
            time.sleep(0.3)  # heartbeats keep coming: still down
            assert [t.level for t in read_journal(journal)[rows:]] == [0]  # opened de-energized, never up
        finally:
            again.stop()
    finally:
        app.stop()
