"""Safety rules on sensor channels: threshold with hysteresis, rate of change, sigma from a learned
baseline, stale input. A rule that fires makes an event of its severity; a critical one asks for a trip
at once, from the thread that saw the reading, and stays a cause (blocking any reset) until it clears.
A value that is no finite number (a probe's NaN, an overrange inf) makes the value rules on its sensor
fire, as a fault of the input; a read that failed (no value) is left to the sensor's stale rule.

Every duration here (staleness, rate windows) is on the monotonic clock, counted from when readings
entered the runtime, so a step of the wall clock (NTP setting a box that booted without a real-time
clock) neither fires nor clears a rule; readings' wall-clock `ts` is for people and the store."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.config.safety import RateRule, Rule, SigmaRule, StaleRule, ThresholdRule
from appliance.field.features.baseline import Baseline
from appliance.field.features.window import RollingWindow
from appliance.records import Event, Quality, Reading, Severity, is_bad_value
from appliance.status.safety import RuleStatus

CAMERA = "qc.camera"
Alarm = Callable[[str, int], None]  # (reason, cause_ns)
EventSink = Callable[[Sequence[Event]], None]


@dataclass(slots=True)
class Check:
    """One configured rule and where it stands."""

    rule: Rule
    name: str
    active: bool = False
    detail: str = ""
    window: RollingWindow | None = None
    baseline: Baseline | None = None
    last_ok: float | None = None  # stale rules, monotonic s: counted from the first evaluation

    def fires(self, value: float) -> tuple[bool, str]:
        """(active after this value, what it saw) for value rules."""
        rule = self.rule
        if isinstance(rule, ThresholdRule):
            h = rule.hysteresis if self.active else 0.0  # once fired, clear only well inside
            if rule.above is not None and value > rule.above - h:
                return True, f"{value:g} above {rule.above:g}"
            if rule.below is not None and value < rule.below + h:
                return True, f"{value:g} below {rule.below:g}"
            return False, f"{value:g}"
        if isinstance(rule, RateRule):
            assert self.window is not None
            rate = self.window.rate_of_change
            if rate is None:
                return False, ""
            return abs(rate) > rule.limit_per_s, f"changing {rate:+.3g}/s (limit {rule.limit_per_s:g}/s)"
        if isinstance(rule, SigmaRule):
            assert self.baseline is not None
            sigma = self.baseline.update(value)
            if sigma is None:
                return False, "learning"
            return abs(sigma) > rule.sigma, f"{value:g} is {sigma:+.1f} sigma (limit {rule.sigma:g})"
        return self.active, self.detail


class SafetyRules:
    """Evaluates the rules on every reading the runtime publishes and, for stale inputs, on each tick."""

    def __init__(
        self,
        rules: Sequence[Rule],
        resolve: Callable[[str], tuple[str, str] | None],
        alarm: Alarm,
        record: EventSink,
        camera_last: Callable[[], float | None] = lambda: None,  # monotonic s of the camera's last frame
    ) -> None:
        self.alarm, self.record, self.camera_last = alarm, record, camera_last
        self.checks: list[Check] = []
        self.by_sensor: dict[tuple[str, str], list[Check]] = {}
        for rule in rules:
            check = Check(rule, rule.name or f"{rule.type} {rule.sensor}")
            if isinstance(rule, RateRule):
                check.window = RollingWindow(rule.window_s)
            elif isinstance(rule, SigmaRule):
                check.baseline = Baseline(rule.baseline_samples)
            self.checks.append(check)
            key = resolve(rule.sensor) if rule.sensor != CAMERA else None
            if key is not None:
                self.by_sensor.setdefault(key, []).append(check)
        self.devices = {device for device, _ in self.by_sensor}
        self._lock = threading.Lock()

    def readings(self, readings: Sequence[Reading], received_ns: int) -> None:
        """One batch of readings that entered the runtime at `received_ns` (CLOCK_MONOTONIC): the time a
        stale rule counts from, a rate window's time, and the cause time of any trip they make."""
        devices, by_sensor = self.devices, self.by_sensor
        at = received_ns / 1e9
        for reading in readings:
            if reading[0] not in devices or (checks := by_sensor.get((reading[0], reading[1]))) is None:
                continue
            value = reading.value
            good = reading.quality is Quality.OK and isinstance(value, int | float) and math.isfinite(value)
            # a value that is no finite number is a fault of the input, not an absence: the value rules on
            # the sensor fire at their severity, and clear with the next good value inside their limits
            bad = not good and is_bad_value(value) and reading.quality is not Quality.STALE
            with self._lock:
                for check in checks:
                    if isinstance(check.rule, StaleRule):
                        if good:
                            check.last_ok = at
                        continue
                    if bad:
                        self._set(check, True, f"bad value {value} (not a finite number)", received_ns)
                    if not good:
                        continue
                    assert isinstance(value, int | float)
                    if check.window is not None:
                        check.window.add(at, float(value))
                    self._set(check, *check.fires(float(value)), received_ns)

    def causes(self, now: float | None = None) -> tuple[str, ...]:
        """Evaluate the stale rules at monotonic `now`, then name every critical rule that is active: the
        heartbeat's causes."""
        now = time.monotonic() if now is None else now
        camera = self.camera_last()
        with self._lock:
            for check in self.checks:
                if isinstance(check.rule, StaleRule):
                    last = now if check.last_ok is None else check.last_ok
                    if check.rule.sensor == CAMERA and camera is not None:
                        last = max(last, camera)
                    check.last_ok = last
                    age = now - last
                    went = int((last + check.rule.after_s) * 1e9)  # the moment it went stale: its cause
                    self._set(check, age > check.rule.after_s, f"no fresh value for {age:.1f} s", went)
            return tuple(
                f"{c.name}: {c.detail}" for c in self.checks if c.active and c.rule.severity == "critical"
            )

    def status(self) -> list[RuleStatus]:
        return [
            RuleStatus(
                name=c.name, type=c.rule.type, severity=c.rule.severity, active=c.active, detail=c.detail
            )
            for c in self.checks
        ]

    def _set(self, check: Check, active: bool, detail: str, cause_ns: int) -> None:
        if active == check.active:
            if active:
                check.detail = detail
            return
        check.active, check.detail = active, detail
        critical = check.rule.severity == "critical"
        if active and critical:
            self.alarm(f"{check.name}: {detail}", cause_ns)  # first, before any book-keeping
        severity = Severity(check.rule.severity) if active else Severity.INFO
        self.record(
            [
                Event(
                    time.time(),
                    "rule.fired" if active else "rule.cleared",
                    severity,
                    check.rule.sensor,
                    f"{check.name}: {detail}" if active else f"{check.name}: cleared ({detail})",
                    {"rule": check.name, "type": check.rule.type, "detail": detail, "cause_ns": cause_ns},
                )
            ]
        )
