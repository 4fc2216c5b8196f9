"""`appliance health` against a real `appliance run` (and its real safety supervisor), with systemd's
answers from the stand-in systemctl: healthy, and each way of not being healthy named."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from appliance.config.loader import load_config
from appliance.update.health import check_once, target
from tests.appliance.safety.processes import start_supervisor
from tests.appliance.safety.test_runtime_safety import safety
from tests.appliance.update.box import UNITS, systemctl
from tests.conftest import ROOT, free_port, start_appliance


def config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(f'[http]\nlisten = "127.0.0.1:{port}"\n{extra}\n')
    return path


def health(cfg: Path, standin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-P", "-m", "appliance", "health", "--config", str(cfg)]
    return subprocess.run(
        [*command, "--systemctl", str(standin), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )


def test_a_running_box_is_healthy(tmp_path: Path) -> None:
    # HTTPS with the box's own certificate, not verified on loopback; the supervisor spawned by the runtime
    cfg = config(tmp_path, free_port(), 'tls = "self-signed"\n' + safety("spawn"))
    standin, _ = systemctl(tmp_path)
    app = start_appliance(cfg, tmp_path / "data")
    try:
        done = health(cfg, standin, "--timeout", "60", "--save", str(tmp_path / "health.json"))
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("healthy (after ")
        assert f"  ok      systemd            {', '.join(UNITS)} active" in lines
        assert any(
            line.startswith("  ok      status API         answered at https://127.0.0.1:") for line in lines
        )
        assert any(line.startswith("  ok      store              open at ") for line in lines)
        assert any(line.startswith("  ok      safety supervisor  connected (pid ") for line in lines)
        saved = json.loads((tmp_path / "health.json").read_text())
        assert saved["healthy"] is True and saved["failed"] == [] and saved["boot_id"]
        assert (tmp_path / "health.json").stat().st_mode & 0o777 == 0o644
        as_json = json.loads(health(cfg, standin, "--timeout", "60", "--json").stdout)
        assert [c["name"] for c in as_json["checks"]] == [
            "systemd",
            "status API",
            "store",
            "safety supervisor",
        ]
        assert all(c["ok"] for c in as_json["checks"])
    finally:
        app.close()


def test_a_unit_that_is_not_active_is_named(tmp_path: Path) -> None:
    cfg = config(tmp_path, free_port())
    standin, calls = systemctl(
        tmp_path, {"appliance.service": "active", "appliance-safety.service": "activating"}
    )
    app = start_appliance(cfg, tmp_path / "data")
    try:
        done = health(cfg, standin, "--timeout", "1")
    finally:
        app.close()
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("NOT healthy after ")
    assert "  FAILED  systemd            appliance-safety.service is activating" in lines
    assert any(line.startswith("  ok      status API") for line in lines)
    assert (
        "health: " in done.stderr
        and "waiting for systemd (appliance-safety.service is activating)" in done.stderr
    )
    assert json.loads(calls.read_text())["calls"][0] == ["is-active", *UNITS]


def test_a_failed_unit_ends_the_wait_at_once(tmp_path: Path) -> None:
    """A unit systemd gave up on (its restarts hit the start limit) will not come back by waiting: the
    check says so at once rather than at its timeout, so a bad update falls back minutes sooner."""
    cfg = config(tmp_path, free_port())
    standin, _ = systemctl(tmp_path, {"appliance.service": "failed", "appliance-safety.service": "active"})
    done = health(cfg, standin, "--timeout", "120", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["waited_s"] < 60, result  # not the timeout
    detail = {c["name"]: c["detail"] for c in result["checks"]}
    assert detail["systemd"] == "appliance.service is failed (systemd gave up restarting it: not waiting)"


def test_no_status_api_fails_it_and_what_it_would_have_told(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cfg = config(tmp_path, port, safety("spawn"))
    standin, _ = systemctl(tmp_path)
    done = health(cfg, standin, "--timeout", "0", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["healthy"] is False
    assert result["failed"] == ["status API", "store", "safety supervisor"]
    detail = {c["name"]: c["detail"] for c in result["checks"]}
    assert detail["status API"].startswith(f"no answer from http://127.0.0.1:{port}/api/v1/status: ")
    assert "Connection refused" in detail["status API"]
    assert detail["store"] == "not known: the status API did not answer"


def test_a_runtime_cut_off_from_its_supervisor_is_not_healthy(tmp_path: Path) -> None:
    port = free_port()
    sup = start_supervisor(tmp_path, f'[http]\nlisten = "127.0.0.1:{port}"\n' + safety("external"))
    cfg = tmp_path / "appliance.toml"  # the supervisor's and the runtime's
    standin, _ = systemctl(tmp_path)
    app = start_appliance(cfg, sup.data)
    try:
        app.wait_for(lambda s: s["estop"]["phase"] not in (None, "unknown"))
        assert health(cfg, standin, "--timeout", "30").returncode == 0
        sup.proc.send_signal(signal.SIGKILL)
        sup.stop()
        app.wait_for(lambda s: s["estop"]["phase"] == "unknown")
        done = health(cfg, standin, "--timeout", "0")
    finally:
        app.close()
        sup.stop()
    assert done.returncode == 1
    failed = [line for line in done.stdout.splitlines() if line.startswith("  FAILED")]
    assert len(failed) == 1
    assert failed[0].startswith("  FAILED  safety supervisor  the runtime is not connected to it: ")


def test_a_store_that_is_not_open_is_named(tmp_path: Path) -> None:
    port = free_port()
    cfg = config(tmp_path, port)
    (tmp_path / "data").mkdir()
    db = sqlite3.connect(tmp_path / "data" / "appliance.db", isolation_level=None)
    db.execute("CREATE TABLE other_writer (x)")
    db.execute("BEGIN EXCLUSIVE")  # another writer holds it: the store waits (SQLite's busy wait, 5 s)
    app = start_appliance(cfg, tmp_path / "data", ready=False)
    standin, _ = systemctl(tmp_path)
    where = target(load_config(cfg), systemctl=str(standin))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the page answers first, while the store still opens
            with contextlib.suppress(OSError):
                urllib.request.urlopen(where.url, timeout=1).close()
                break
            time.sleep(0.02)
        checks = {c.name: c for c in check_once(where)}
        db.execute("ROLLBACK")  # the other writer is done: the store opens, the runtime goes on
        assert checks["status API"].ok and checks["systemd"].ok, checks
        assert not checks["store"].ok
        assert checks["store"].detail.startswith("not open")
        done = health(cfg, standin, "--timeout", "60")
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        db.close()
        app.close()


def test_a_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "appliance.toml"
    cfg.write_text('[http]\nlisten = "nowhere"\n')
    standin, _ = systemctl(tmp_path)
    done = health(cfg, standin)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{cfg}: http.listen: ")
