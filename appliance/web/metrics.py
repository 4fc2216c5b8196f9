"""GET /metrics: the status document in Prometheus text exposition format 0.0.4, written by hand."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from appliance.web.metric_tables import (
    DRIVERS,
    ESTOP,
    HAL,
    LAST_TRIP,
    LOOP_LAG,
    LOOP_MAX,
    MS,
    QC,
    QC_CAMERA,
    QC_DEFECTS,
    QC_EVIDENCE,
    QC_INFERENCE,
    QC_LATENCY,
    QC_LATENCY_HELP,
    RULE_ACTIVE,
    SAFETY_LINK,
    SENSOR,
    SERVICE,
    STORE,
    STORE_EVICTED,
    SYNC,
    SYNC_BACKLOG,
    SYNC_OLDEST,
    TIERS,
    UPSTREAM,
    UPTIME,
    Field,
    Kind,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class _Family:
    kind: Kind
    help: str
    lines: list[str] = field(default_factory=list)


class Exposition:
    """Metric families in the order first seen. Each family's samples stay together under one HELP and
    one TYPE line, as the format requires, whatever order they were added in."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def add(
        self,
        metric: str,
        kind: Kind,
        help: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        suffix: str = "",
    ) -> None:
        """One sample of `metric`; a histogram's samples carry a suffix (_bucket, _sum, _count)."""
        family = self._families.setdefault(metric, _Family(kind, help))
        family.lines.append(f"{metric}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        out = []
        for metric, family in self._families.items():
            out += [f"# HELP {metric} {_escape_help(family.help)}", f"# TYPE {metric} {family.kind}"]
            out += family.lines
        return "\n".join(out) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str] | None) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, int):  # a bool too: true is 1
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _is_number(value: object) -> TypeGuard[float]:
    """An int, float or bool of the status (JSON true is 1); strings and nulls are not exported."""
    return isinstance(value, int | float)


def _scaled(value: float, scale: float) -> float:
    """`value` in base units; 15 significant digits drop the float noise of the product (0.119 * 1e6)."""
    return value if scale == 1 else float(f"{value * scale:.15g}")


def _section(value: object) -> Mapping[str, Any]:
    """A status section, or an empty one when it is missing or null."""
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[Mapping[str, Any]]:
    """A list of status sections (sensors, rules, history), or none when it is missing or null."""
    return [_section(item) for item in value] if isinstance(value, list) else []


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _fields(
    out: Exposition,
    section: Mapping[str, Any],
    fields: Iterable[Field],
    labels: Mapping[str, str] | None = None,
) -> None:
    """Every field whose value in `section` is a number; missing and null ones are left out."""
    for f in fields:
        if _is_number(value := section.get(f.key)):
            out.add(f.metric, f.kind, f.help, _scaled(value, f.scale), labels)


def _by_label(
    out: Exposition, f: Field, section: Mapping[str, Any], label: str, labels: Mapping[str, str] | None = None
) -> None:
    """A {name: number} map of the status (failures by kind, backlog by class): one sample per name."""
    for name, value in _section(section.get(f.key)).items():
        if _is_number(value):
            out.add(f.metric, f.kind, f.help, _scaled(value, f.scale), {**(labels or {}), label: str(name)})


def render(status: Mapping[str, Any]) -> str:
    """The status document (GET /api/v1/status) as Prometheus text; missing or null sections are skipped."""
    out = Exposition()
    _process(out, status)
    _sensors(out, _items(status.get("sensors")))
    _services(out, _section(status.get("services")))
    _hal(out, _section(status.get("hal")))
    _qc(out, _section(status.get("qc")))
    _estop(out, _section(status.get("estop")))
    _sync(out, _section(status.get("sync")))
    return out.text()


def _process(out: Exposition, status: Mapping[str, Any]) -> None:
    """Up, the device and version, uptime and the event loop's lag."""
    runtime, loop = _section(status.get("runtime")), _section(_section(status.get("services")).get("loop"))
    out.add("appliance_up", Kind.GAUGE, "1 while the runtime answers.", 1)
    info = {"device": _text(status.get("device")), "version": _text(runtime.get("version"))}
    out.add("appliance_info", Kind.GAUGE, "The device id and the software version; always 1.", 1, info)
    _fields(out, status, [UPTIME])
    _fields(out, runtime if "loop_lag_ms" in runtime else {"loop_lag_ms": loop.get("lag_ms")}, [LOOP_LAG])
    _fields(out, loop, [LOOP_MAX])


def _sensors(out: Exposition, sensors: list[Mapping[str, Any]]) -> None:
    """Numeric readings as values; every reading's timestamp, so that its age is time() minus it."""
    for reading in sensors:
        labels = {
            "sensor": _text(reading.get("id")),
            "device": _text(reading.get("device")),
            "unit": _text(reading.get("unit")),
            "quality": _text(reading.get("quality")),
        }
        _fields(out, reading, SENSOR, labels)


def _services(out: Exposition, services: Mapping[str, Any]) -> None:
    """Every service's running state and restarts, then what its kind of service reports."""
    for name, service in ((str(k), _section(v)) for k, v in services.items()):
        _fields(out, service, SERVICE, {"service": name})
        kind, _, part = name.partition(":")
        if part and (driver := DRIVERS.get(kind)):
            _fields(out, service, driver.fields, {driver.label: part})
            if driver.errors is not None:
                _by_label(out, driver.errors, service, "kind", {driver.label: part})
        elif name == "store":
            _fields(out, service, STORE)
            _by_label(out, STORE_EVICTED, service, "class")
        elif name == "safety":
            _fields(out, service, SAFETY_LINK)


def _hal(out: Exposition, hal: Mapping[str, Any]) -> None:
    """The board and the inference plan as info metrics, the accelerators found, memory and cores."""
    if not hal:
        return
    board, plan = _section(hal.get("board")), _section(hal.get("inference"))
    first = next(iter(_items(plan.get("backends"))), {})
    info = {
        "board": _text(board.get("key")),
        "soc": _text(board.get("soc")),
        "inference": _text(first.get("backend")),
        "model_variant": _text(plan.get("model_variant")),
    }
    out.add(
        "appliance_hal_info", Kind.GAUGE, "The board and the preferred inference backend; always 1.", 1, info
    )
    for acc in _items(hal.get("accelerators")):
        labels = {"accelerator": _text(acc.get("key")), "kind": _text(acc.get("kind"))}
        out.add("appliance_hal_accelerator_info", Kind.GAUGE, "An accelerator found; always 1.", 1, labels)
    _fields(out, {**hal, **_section(hal.get("cpu"))}, HAL)


def _qc(out: Exposition, qc: Mapping[str, Any]) -> None:
    """Frames, defects by class, the latency histogram, camera, inference backend and evidence."""
    _fields(out, qc, QC)
    _by_label(out, QC_DEFECTS, qc, "class")
    _latency_histogram(out, _section(qc.get("latency_histogram")))
    _fields(out, _section(qc.get("camera")), QC_CAMERA)
    _fields(out, _section(qc.get("inference")), QC_INFERENCE)
    _fields(out, _section(qc.get("evidence")), QC_EVIDENCE)


def _latency_histogram(out: Exposition, histogram: Mapping[str, Any]) -> None:
    """The pipeline's per-bucket counts (ms) as cumulative buckets in seconds; its last count is +Inf's."""
    bounds, counts, sum_ms = histogram.get("le_ms"), histogram.get("counts"), histogram.get("sum_ms")
    if not (isinstance(bounds, list) and isinstance(counts, list) and len(counts) == len(bounds) + 1):
        return
    if not _is_number(sum_ms) or not all(_is_number(v) for v in [*bounds, *counts]):
        return
    total = 0
    for bound, count in zip([*bounds, math.inf], counts, strict=True):
        total += count
        le = "+Inf" if math.isinf(bound) else _number(_scaled(bound, MS))
        out.add(QC_LATENCY, Kind.HISTOGRAM, QC_LATENCY_HELP, total, {"le": le}, "_bucket")
    out.add(QC_LATENCY, Kind.HISTOGRAM, QC_LATENCY_HELP, _scaled(sum_ms, MS), suffix="_sum")
    out.add(QC_LATENCY, Kind.HISTOGRAM, QC_LATENCY_HELP, total, suffix="_count")


def _estop(out: Exposition, estop: Mapping[str, Any]) -> None:
    """The stop output: tripped or not, its counters, the last trip's latency, the rules that hold."""
    if not estop:
        return
    tripped = estop.get("state") != "ok"  # anything but "ok" is not ok
    _fields(out, {**estop, "tripped": tripped}, ESTOP)
    trips = (
        e for e in _items(estop.get("history")) if e.get("kind") == "trip" and _is_number(e.get("latency_ms"))
    )
    _fields(out, next(trips, {}), [LAST_TRIP])  # the history is newest first
    for rule in _items(estop.get("rules")):
        labels = {"rule": _text(rule.get("name")), "type": _text(rule.get("type"))}
        _fields(out, rule, [RULE_ACTIVE], {**labels, "severity": _text(rule.get("severity"))})


def _sync(out: Exposition, sync: Mapping[str, Any]) -> None:
    """The link tier as one gauge per tier (1 for the current one), then goodput, backlog and traffic."""
    tier = sync.get("tier")
    if not isinstance(tier, str) or tier == "disabled":
        return
    for name in TIERS if tier in TIERS else [*TIERS, tier]:
        out.add(
            "appliance_sync_tier", Kind.GAUGE, "1 for the link's current tier.", name == tier, {"tier": name}
        )
    _fields(out, sync, SYNC)
    _by_label(out, SYNC_BACKLOG, sync, "class")
    _by_label(out, SYNC_OLDEST, sync, "class")
    upstream = _section(sync.get("upstream"))
    _fields(out, upstream, [UPSTREAM], {"kind": _text(upstream.get("kind"))})
