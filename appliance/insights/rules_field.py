"""Insight rules about the field side: sensors, drivers, services, QC and its inference hardware."""

from __future__ import annotations

from collections.abc import Iterator

from appliance.insights.figures import count, duration, figure, last, number, services, text, window
from appliance.insights.kinds import (
    CAMERA_DOWN_S,
    CRITICAL_SERVICES,
    DEFAULT_LATENCY_BUDGET_MS,
    SENSOR_BAD_S,
    SERIAL_DOWN_S,
    SERVICE_DOWN_S,
    SERVICE_TOPICS,
    Insight,
    Topic,
)
from appliance.insights.memory import Check, Rule
from appliance.records import Severity
from appliance.status.field import BusStatus, ModbusStatus, SerialStatus

_C, _W = Severity.CRITICAL, Severity.WARNING


def sensors_silent(check: Check) -> Iterator[Insight]:
    """Channels stale or in error for SENSOR_BAD_S, one insight per device and quality."""
    groups: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for sensor in check.status.sensors:
        if sensor.quality not in ("stale", "error"):
            continue
        # a stale mark carries the time it was made; an error reading is fresh each poll, so memory counts
        since = check.since(f"sensor:{sensor.id}", number(sensor.ts))
        if check.now - since >= SENSOR_BAD_S:
            groups.setdefault((sensor.quality, sensor.device or sensor.id), []).append((sensor.id, since))
    for (quality, device), bad in groups.items():
        since = min(t for _, t in bad)
        verb = "been stale (no fresh value)" if quality == "stale" else "failed to read"
        if len(bad) == 1:
            message = f"Sensor {bad[0][0]} has {verb} for {duration(check.now - since)}."
            yield check.say(f"sensor-{quality}", bad[0][0], message, name=device, began=since)
            continue
        names = [sensor_id.removeprefix(f"{device}.") for sensor_id, _ in bad]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        message = f"{len(bad)} channels of {device} ({shown}) have {verb} for {duration(check.now - since)}."
        yield check.say(f"sensor-{quality}", device, message, began=since)


def drivers_failing(check: Check) -> Iterator[Insight]:
    """Modbus failures and overruns, serial frame errors and RS-485 garbage rising since earlier calls."""
    for name, _, device, service in services(check):
        if isinstance(service, ModbusStatus):
            yield from _modbus_failing(check, device, service)
        elif isinstance(service, SerialStatus):
            yield from _serial_failing(check, device, service)
        elif isinstance(service, BusStatus) and (
            risen := check.rise(f"{name}/garbage", service.garbage_bytes)
        ):
            garbage = count(risen[0], "byte")
            message = f"RS-485 line {device} received {garbage} of garbage in {window(check.now - risen[1])}."
            yield check.say("bus-garbage", device, message, began=risen[1])


def _garbage(check: Check, name: str, bus: BusStatus) -> tuple[float, float] | None:
    return check.rise(f"{name}/garbage", bus.garbage_bytes)


def _modbus_failing(check: Check, device: str, service: ModbusStatus) -> Iterator[Insight]:
    if risen := check.rise(f"modbus:{device}/failures", sum(service.failures.values())):
        endpoint = f" ({e})" if (e := text(service.endpoint)) else ""
        message = (
            f"Modbus device {device}{endpoint} had {count(risen[0], 'failed request')} in "
            f"{window(check.now - risen[1])}{last(service.last_failure, 'the last')}."
        )
        yield check.say("driver-failures", device, message, began=risen[1])
    if risen := check.rise(f"modbus:{device}/overruns", service.overruns):
        took = f" (the last poll took {figure(n)} ms)" if (n := service.last_poll_ms) else ""
        message = (
            f"Modbus device {device} overran its poll interval {count(risen[0], 'time')} in "
            f"{window(check.now - risen[1])}{took}."
        )
        yield check.say("driver-overruns", device, message, began=risen[1])
    yield from _bad_values(check, "modbus", device, service.bad_values)


def _serial_failing(check: Check, device: str, service: SerialStatus) -> Iterator[Insight]:
    state = text(service.state)
    down = state not in (None, "open") and service.running
    if down and check.now - (since := check.since(f"serial-down:{device}")) >= SERIAL_DOWN_S:
        reconnects = count(service.reconnects, "reconnect")
        message = (
            f"Serial sensor {device} has not been connected for {duration(check.now - since)} (state "
            f"{state}, {reconnects}){last(service.last_error)}."
        )
        yield check.say("serial-down", device, message, began=since)
    if risen := check.rise(f"serial:{device}/errors", sum(service.errors.values())):
        kinds = ", ".join(f"{kind} {figure(n)}" for kind, n in service.errors.items() if n)
        message = (
            f"Serial sensor {device} sent {count(risen[0], 'bad frame')} in "
            f"{window(check.now - risen[1])} (so far: {kinds})."
        )
        yield check.say("driver-errors", device, message, began=risen[1])
    yield from _bad_values(check, "serial", device, service.bad_values)


def _bad_values(check: Check, kind: str, device: str, bad_values: dict[str, int]) -> Iterator[Insight]:
    if risen := check.rise(f"{kind}:{device}/bad_values", sum(bad_values.values())):
        channels = ", ".join(f"{channel} {figure(n)}" for channel, n in bad_values.items() if n)
        message = (
            f"Device {device} sent {count(risen[0], 'non-finite value')} (inf or nan) in "
            f"{window(check.now - risen[1])} (so far: {channels})."
        )
        yield check.say("bad-values", device, message, began=risen[1])


def services_down(check: Check) -> Iterator[Insight]:
    """Services not running, or restarted since earlier calls."""
    for name, kind, _, service in services(check):
        topic, error = SERVICE_TOPICS.get(kind, Topic.RUNTIME), last(service.last_error)
        if (
            not service.running
            and check.now - (since := check.since(f"service-down:{name}")) >= SERVICE_DOWN_S
        ):
            message = f"Service {name} has not been running for {duration(check.now - since)}{error}."
            severity = _C if name in CRITICAL_SERVICES else _W
            yield check.say("service-down", name, message, began=since, severity=severity, topic=topic)
        if risen := check.rise(f"{name}/restarts", service.restarts):
            restarts = count(risen[0], "time")
            message = f"Service {name} restarted {restarts} in {window(check.now - risen[1])}{error}."
            yield check.say("service-restarts", name, message, began=risen[1], topic=topic)


def qc_slow(check: Check) -> Iterator[Insight]:
    """QC's p99 latency over the configured budget."""
    if (qc := check.status.qc) is None:
        return
    p99, budget = number(qc.latency_ms.p99), number(qc.latency_budget_ms) or DEFAULT_LATENCY_BUDGET_MS
    if p99 is not None and p99 > budget:
        p50 = f" (p50 {figure(n)} ms)" if (n := number(qc.latency_ms.p50)) is not None else ""
        message = f"QC's p99 latency is {figure(p99)} ms{p50}, over its {figure(budget)} ms budget."
        yield check.say("qc-latency", "", message)


def camera_down(check: Check) -> Iterator[Insight]:
    """The QC camera not streaming."""
    if (qc := check.status.qc) is None:
        return
    camera = qc.camera
    if camera.state != "streaming" and check.now - (since := check.since("camera-down")) >= CAMERA_DOWN_S:
        reopens = count(camera.reopens, "reopen")
        message = (
            f"The QC camera has sent no frame for {duration(check.now - since)} (state {camera.state}, "
            f"{reopens}){last(camera.last_error)}."
        )
        yield check.say("camera-down", "", message, began=since)


def inference_fallen_back(check: Check) -> Iterator[Insight]:
    """QC inference on another backend than the plan's first, or an accelerator that dropped out lately."""
    if (qc := check.status.qc) is None:
        return
    active = text(qc.inference.backend)
    fallbacks, recoveries = qc.inference.fallbacks or 0, qc.inference.recoveries or 0
    hal = check.status.hal
    planned = hal.inference.backends[0].backend if hal is not None and hal.inference.backends else None
    risen = check.rise("inference/fallbacks", fallbacks)
    if (active and planned and active != planned) or fallbacks > recoveries:
        message = (
            f"QC inference runs on {active or 'a fallback'} instead of the planned {planned or 'backend'} "
            f"({count(fallbacks, 'fallback')}, {count(recoveries, 'recovery', 'recoveries')})."
        )
        yield check.say("inference-fallback", "", message, name=planned or "accelerator")
    elif risen:
        times = count(risen[0], "time")
        message = (
            f"QC inference fell back from {planned} {times} in {window(check.now - risen[1])} and came back."
        )
        yield check.say("inference-recovered", "", message, name=planned or "accelerator", began=risen[1])


FIELD_RULES: tuple[Rule, ...] = (
    sensors_silent,
    drivers_failing,
    services_down,
    qc_slow,
    camera_down,
    inference_fallen_back,
)
