"""The default bench world under libfaketime, its wall clock stepped +6 h, back, and -6 h as NTP does on a box
without a real-time clock: no rule fires or clears, no sensor goes stale, the line stays energized, each
step is recorded as a `clock.step` event, and readings keep the (stepped) wall-clock time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.tomlfile import DEFAULT_CONFIG
from bench.harness import faketime
from hal.gpio.mock import JOURNAL_ENV, read_journal
from tests.conftest import ApplianceProcess, get_json, start_appliance

pytestmark = pytest.mark.slow

HOUR = 3600.0

# Stale, rate and sigma rules on the bench's sensors. Critical ones would trip the line if a step made
# them fire; the warning rate rule on the stroke counter (a steady ramp) is active all along, so a step
# that cleared it would show as a rule.cleared event.
RULES = """
[[safety.rules]]
type = "stale"
name = "oil silent"
sensor = "press-1.oil_temperature"
after_s = 3.0

[[safety.rules]]
type = "stale"
name = "air silent"
sensor = "air.temperature"
after_s = 3.0

[[safety.rules]]
type = "rate"
name = "pressure surge"
sensor = "press-1.hydraulic_pressure"
limit_per_s = 500.0
window_s = 2.0

[[safety.rules]]
type = "rate"
name = "strokes counting"
sensor = "press-1.stroke_count"
limit_per_s = 0.05
window_s = 3.0
severity = "warning"

[[safety.rules]]
type = "sigma"
name = "oil odd"
sensor = "press-1.oil_temperature"
sigma = 50.0
baseline_samples = 10

[[safety.rules]]
type = "sigma"
name = "flow odd"
sensor = "flow-3.flow"
sigma = 50.0
baseline_samples = 10
"""


def bench_world(tmp_path: Path) -> Path:
    """examples/bench.toml with the status page on a free port, the QC trip off and the rules above."""
    text = DEFAULT_CONFIG.read_text().replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
    text = text.replace('model = "../', f'model = "{DEFAULT_CONFIG.parent.parent}/')
    text = text.replace("trip_on_qc = true", "trip_on_qc = false")  # the demo camera's cracks trip it
    config = tmp_path / "bench.toml"
    config.write_text(text.replace("# --- sync:", RULES + "\n# --- sync:", 1))
    return config


def events(app: ApplianceProcess) -> list[dict[str, Any]]:
    """Every recorded event, oldest first (the API answers 500 at a time)."""
    found: list[dict[str, Any]] = []
    while page := get_json(app.url + f"api/v1/events?since={found[-1]['id'] if found else 0}"):
        found += page
    return found


@pytest.fixture
def stepped_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ApplianceProcess, Path, Path]]:
    if faketime.library() is None:
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    clock, journal = tmp_path / "faketime.rc", tmp_path / "journal"
    faketime.step(clock, 0)
    config = bench_world(tmp_path)
    monkeypatch.setenv(JOURNAL_ENV, str(journal))
    # every process of the box (runtime, supervisor, bench world) follows the offset in `clock`
    for name, value in faketime.environment(clock).items():
        monkeypatch.setenv(name, value)
    app = start_appliance(config, tmp_path / "data")
    try:
        yield app, clock, journal
    finally:
        app.stop()


def healthy(status: dict[str, Any]) -> bool:
    rules = {r["name"]: r["active"] for r in status["estop"]["rules"]}
    return bool(
        status["estop"]["state"] == "ok"
        and rules["strokes counting"]
        and not any(active for name, active in rules.items() if name != "strokes counting")
        and (status.get("qc") or {}).get("frames")
    )


def test_wall_clock_steps_trip_nothing_and_are_recorded(
    stepped_box: tuple[ApplianceProcess, Path, Path],
) -> None:
    app, clock, journal = stepped_box
    app.wait_for(healthy, timeout=30)
    time.sleep(1.0)  # every sensor polled a few times since
    before = app.status()
    good = {s["id"] for s in before["sensors"] if s["quality"] == "ok"}
    assert {"press-1.oil_temperature", "air.temperature", "flow-3.flow"} <= good
    seen = max((e["id"] for e in events(app)), default=0)
    transitions = len(read_journal(journal))
    assert read_journal(journal)[-1].level == 1

    for offset_h, step_h in ((6, 6), (0, -6), (-6, -6)):
        faketime.step(clock, offset_h * HOUR)
        deadline = time.monotonic() + 5.0  # longer than every stale rule's after_s
        while time.monotonic() < deadline:
            status = app.status()
            assert status["estop"]["state"] == "ok", status["estop"]
            time.sleep(0.1)
        status = app.status()
        assert abs(status["time"] - (time.time() + offset_h * HOUR)) < 5, "the box's clock did not step"
        new = [e for e in events(app) if e["id"] > seen]
        seen = max((e["id"] for e in new), default=seen)
        assert [e for e in new if e["kind"].startswith(("rule.", "estop."))] == [], f"step {step_h:+d} h"
        (step,) = [e for e in new if e["kind"] == "clock.step"]
        assert step["severity"] == "warning"
        assert abs(step["data"]["step_s"] - step_h * HOUR) < 5, step
        assert abs(step["ts"] - status["time"]) < 5  # recorded at the new time
        sensors = {s["id"]: s for s in status["sensors"]}
        # none went stale (a read that timed out on a busy machine is an error, and no concern here)
        assert [sensors[i] for i in good if sensors[i]["quality"] == "stale"] == []
        for i in good:  # readings keep wall-clock timestamps: the stepped ones
            assert abs(sensors[i]["ts"] - status["time"]) < 5, sensors[i]
        assert all(r["active"] == (r["name"] == "strokes counting") for r in status["estop"]["rules"])

    assert len(read_journal(journal)) == transitions and read_journal(journal)[-1].level == 1
