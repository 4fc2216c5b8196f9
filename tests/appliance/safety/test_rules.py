"""Safety rules: each fires and clears as configured, critical ones ask for a trip once, at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from appliance.config.safety import Rule, SafetySettings
from appliance.records import Event, Quality, Reading
from appliance.safety.rules import SafetyRules

RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


class Recorder:
    def __init__(self) -> None:
        self.alarms: list[tuple[str, int]] = []
        self.events: list[Event] = []

    def alarm(self, reason: str, cause_ns: int) -> None:
        self.alarms.append((reason, cause_ns))

    def record(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


def rules(*specs: dict[str, Any], camera: float | None = None) -> tuple[SafetyRules, Recorder]:
    rec = Recorder()
    parsed = [RULE.validate_python(s) for s in specs]
    resolve = lambda sensor: tuple(sensor.split(".", 1))  # noqa: E731
    return SafetyRules(parsed, resolve, rec.alarm, rec.record, lambda: camera), rec


def feed(
    r: SafetyRules,
    values: list[float],
    start: float = 1000.0,
    step: float = 0.1,
    q: Quality = Quality.OK,
    wall: float = 0.0,
) -> None:
    """One reading a `step` apart from monotonic `start`, stamped with a wall clock `wall` s ahead of it."""
    for i, v in enumerate(values):
        at = start + i * step
        r.readings([Reading("press", "oil", v, "degC", wall + at, q)], int(at * 1e9))


def test_threshold_fires_once_and_clears_only_past_the_hysteresis() -> None:
    r, rec = rules(
        {"type": "threshold", "sensor": "press.oil", "above": 80.0, "hysteresis": 5.0, "name": "hot"}
    )
    feed(r, [70, 79.9, 80.5, 90, 78, 76])
    assert len(rec.alarms) == 1 and rec.alarms[0][0] == "hot: 80.5 above 80"
    assert r.causes(1001.0) == ("hot: 76 above 80",)  # still inside the hysteresis band
    feed(r, [74.9])
    assert r.causes(1001.0) == ()
    assert [e.kind for e in rec.events] == ["rule.fired", "rule.cleared"]
    feed(r, [81])
    assert len(rec.alarms) == 2


def test_below_limits_and_bad_readings_are_ignored() -> None:
    r, rec = rules({"type": "threshold", "sensor": "press.oil", "below": 2.0})
    feed(r, [1.0], q=Quality.STALE)
    r.readings(
        [
            Reading("press", "oil", None, "", 1.0, Quality.ERROR),
            Reading("other", "oil", 0.0, "", 1.0, Quality.OK),
        ],
        1_000_000_000,
    )
    assert rec.alarms == []
    feed(r, [1.5])
    assert rec.alarms and "1.5 below 2" in rec.alarms[0][0]


def test_a_warning_rule_records_but_never_trips() -> None:
    r, rec = rules({"type": "threshold", "sensor": "press.oil", "above": 1.0, "severity": "warning"})
    feed(r, [5.0])
    assert rec.alarms == [] and r.causes(1000.0) == ()
    assert rec.events[0].severity == "warning"


def test_rate_of_change_over_the_window() -> None:
    r, rec = rules({"type": "rate", "sensor": "press.oil", "limit_per_s": 10.0, "window_s": 1.0})
    feed(r, [20 + 0.5 * i for i in range(10)])  # 5 units/s
    assert rec.alarms == []
    feed(r, [30 + 3.0 * i for i in range(10)], start=1001.0)  # 30 units/s
    assert len(rec.alarms) == 1 and "changing +" in rec.alarms[0][0]
    assert r.causes(1002.0) == ("rate press.oil: changing +30/s (limit 10/s)",)


def test_sigma_learns_then_fires_on_a_deviation() -> None:
    r, rec = rules({"type": "sigma", "sensor": "press.oil", "sigma": 4.0, "baseline_samples": 20})
    feed(r, [50 + (i % 5) * 0.1 for i in range(20)])  # learning
    feed(r, [50.2, 49.9], start=1010.0)
    assert rec.alarms == []
    feed(r, [60.0], start=1011.0)
    assert len(rec.alarms) == 1 and "sigma" in rec.alarms[0][0]


def test_stale_sensor_and_camera_fire_on_the_tick_and_clear_with_fresh_values() -> None:
    r, rec = rules(
        {"type": "stale", "sensor": "press.oil", "after_s": 2.0},
        {"type": "stale", "sensor": "qc.camera", "after_s": 1.0},
        camera=1000.0,
    )
    assert r.causes(1000.0) == ()  # stale time counts from the first evaluation
    feed(r, [20.0], start=1000.0)
    assert r.causes(1000.5) == ()
    causes = r.causes(1001.5)
    assert len(causes) == 1 and causes[0].startswith("stale qc.camera")
    causes = r.causes(1003.0)
    assert len(causes) == 2 and len(rec.alarms) == 2
    feed(r, [20.0], start=1003.0)
    assert len(r.causes(1003.1)) == 1  # the sensor is back; the camera is not


def test_a_rule_needs_a_limit_and_sane_settings() -> None:
    with pytest.raises(ValidationError, match="needs `above`, `below` or both"):
        RULE.validate_python({"type": "threshold", "sensor": "a.b"})
    with pytest.raises(ValidationError, match="must be less than above"):
        RULE.validate_python({"type": "threshold", "sensor": "a.b", "above": 1.0, "below": 2.0})
    with pytest.raises(ValidationError, match="at least twice"):
        SafetySettings.model_validate(
            {"stop_line": {"line": 4}, "heartbeat_interval_ms": 100, "heartbeat_deadline_ms": 150}
        )


def test_a_trip_counts_from_the_sample_that_made_it() -> None:
    r, rec = rules({"type": "threshold", "sensor": "press.oil", "above": 80.0})
    feed(r, [70, 90], start=1000.0, step=0.5)
    assert rec.alarms == [("threshold press.oil: 90 above 80", 1_000_500_000_000)]
    assert rec.events[0].data["cause_ns"] == 1_000_500_000_000


def test_a_stale_trip_counts_from_the_moment_the_input_went_stale() -> None:
    r, rec = rules({"type": "stale", "sensor": "press.oil", "after_s": 2.0})
    feed(r, [20.0], start=1000.0)
    assert r.causes(1002.7) and rec.alarms[0][1] == 1_002_000_000_000


@pytest.mark.parametrize("step_h", [6, -6])
def test_a_wall_clock_step_fires_and_clears_nothing(step_h: int) -> None:
    """The wall clock jumps by hours between two readings; the monotonic clock runs on."""
    r, rec = rules(
        {"type": "stale", "sensor": "press.oil", "after_s": 2.0},
        {"type": "rate", "sensor": "press.oil", "limit_per_s": 1.0, "window_s": 3.0, "severity": "warning"},
        {"type": "rate", "sensor": "press.oil", "limit_per_s": 50.0, "window_s": 3.0, "name": "surge"},
        {"type": "sigma", "sensor": "press.oil", "sigma": 1000.0, "baseline_samples": 10},
    )
    wall = 1.8e9 - 1000.0  # the wall clock, as seconds ahead of the monotonic one
    feed(r, [20 + 2.0 * i for i in range(20)], start=1000.0, step=0.5, wall=wall)  # 4 units/s
    assert [c.name for c in r.checks if c.active] == ["rate press.oil"]
    assert r.causes(1010.0) == ()
    fired = list(rec.events)
    feed(r, [60 + 2.0 * i for i in range(20)], start=1010.0, step=0.5, wall=wall + step_h * 3600.0)
    assert r.causes(1020.0) == ()
    assert rec.events == fired and rec.alarms == []  # nothing fired, nothing cleared
    assert [c.name for c in r.checks if c.active] == ["rate press.oil"]
    assert "changing +4/s" in r.checks[1].detail
