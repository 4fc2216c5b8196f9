"""The supervisor stays small: what it imports, that it reads its keys as the runtime's model does, and that
no file in the current directory can pose as its code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.config.safety import SafetySettings
from appliance.safety.settings import SettingsError, read_settings
from tests.appliance.safety.processes import ROOT, safety_command, safety_toml
from tests.appliance.safety.test_runtime_safety import safety_config
from tests.conftest import start_appliance

# What the supervisor must never load: the runtime's numerics, drivers, features, config models, web,
# store and sync.
FORBIDDEN = ("numpy", "cv2", "pydantic", "pydantic_core", "starlette", "uvicorn", "sqlite_utils", "paho")
FORBIDDEN_OURS = (
    *("drivers", "appliance.config", "appliance.field", "appliance.store", "appliance.web"),
    *("appliance.sync", "appliance.runtime", "appliance.qc", "appliance.insights", "appliance.status"),
)


def test_the_supervisor_process_imports_only_what_it_needs(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(safety_toml())
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", *safety_command(config, tmp_path / "data")[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "APPLIANCE_GPIO_MOCK_JOURNAL": str(tmp_path / "journal")},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "safety supervisor ready"
    proc.terminate()
    _, stderr = proc.communicate(timeout=10)
    loaded = [
        line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")
    ]
    assert "appliance.safety.supervisor" in loaded
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN_OURS)]
    assert bad == []


CASES: list[dict[str, Any]] = [
    {},
    {"tick_ms": 0},
    {"tick_ms": 1000},
    {"tick_ms": 1001},
    {"tick_ms": True},
    {"tick_ms": 1.5},
    {"tick_ms": "10"},
    {"heartbeat_interval_ms": 300},
    {"heartbeat_interval_ms": 250},
    {"heartbeat_deadline_ms": 19},
    {"heartbeat_deadline_ms": 60_001, "heartbeat_interval_ms": 100},
    {"realtime_priority": 99},
    {"realtime_priority": -1},
    {"watchdog": "kernel"},
    {"watchdog": "dog"},
    {"supervisor": "external"},
    {"supervisor": "elsewhere"},
    {"socket": ""},
    {"socket": "/run/appliance/safety.sock"},
    {"unknown": 1},
    {"stop_line": None},
    {"stop_line": "17"},
    {"stop_line": {"line": -1}},
    {"stop_line": {"line": ""}},
    {"stop_line": {"line": "STOP", "chip": ""}},
    {"stop_line": {"line": 17, "chip": "pinctrl-rp1", "gpio": "gpiod", "active_level": "low"}},
    {"stop_line": {"line": 17, "gpio": "spi"}},
    {"stop_line": {"line": 17, "active_level": "middle"}},
    {"stop_line": {"line": 17, "pull": "down"}},
    {"stop_line": {"line": 1.5}},
]


@pytest.mark.parametrize("change", CASES, ids=[str(c) for c in CASES])
def test_the_supervisor_and_the_runtime_accept_the_same_safety_keys(change: dict[str, Any]) -> None:
    section: dict[str, Any] = {"stop_line": {"gpio": "mock", "line": "STOP"}, **change}
    section = {k: v for k, v in section.items() if v is not None}
    try:
        SafetySettings.model_validate(section)
        runtime_ok = True
    except ValidationError:
        runtime_ok = False
    try:
        read_settings({"safety": section}, "appliance.toml")
        supervisor_ok = True
    except SettingsError as exc:
        supervisor_ok = False
        assert all(line.startswith("appliance.toml: safety.") for line in exc.lines), exc.lines
    assert supervisor_ok == runtime_ok


def test_a_current_directory_cannot_pose_as_the_supervisor(tmp_path: Path) -> None:
    """Children start with `python -P`: a package named like ours in the current directory is not ours."""
    fake = tmp_path / "cwd" / "appliance"
    fake.mkdir(parents=True)
    owned = tmp_path / "owned"
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        f"open({str(owned)!r}, 'w').write('x')\nprint('safety supervisor ready')\n"
    )
    app = start_appliance(safety_config(tmp_path, "spawn"), tmp_path / "data", cwd=fake.parent)
    try:
        status = app.wait_for(lambda s: s["estop"]["phase"] != "unknown")
        assert status["estop"]["supervisor"]["pid"]
    finally:
        app.stop()
    assert not owned.exists()
