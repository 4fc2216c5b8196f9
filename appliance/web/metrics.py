"""GET /metrics: the typed status (appliance/status) in Prometheus text format 0.0.4, by prometheus-client.

Which field becomes which metric is said where the field is declared (a `Metric` in its annotation); this
module adds the labels and the few figures that are not one field: info metrics, the stop output's state,
the link tier, the QC latency histogram.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric as Family
from pydantic import BaseModel

from appliance.status.document import Status
from appliance.status.metric import MS, Metric, metric_fields
from appliance.status.qc import QC_LATENCY, LatencyHistogram, QcStatus
from appliance.status.safety import EstopStatus
from appliance.status.service import ServiceStatus
from appliance.status.sync import SyncStatus
from appliance.sync.tiers import LinkTier

CONTENT_TYPE = CONTENT_TYPE_LATEST
TIERS = [tier.label for tier in LinkTier]
UP = Metric("appliance_up", "1 while the runtime answers.")
INFO = Metric("appliance_info", "The device id and the software version; always 1.")
HAL_INFO = Metric("appliance_hal_info", "The board and the preferred inference backend; always 1.")
ACCELERATOR = Metric("appliance_hal_accelerator_info", "An accelerator found; always 1.")
TRIPPED = Metric("appliance_estop_tripped", "1 while the stop output is tripped, 0 while it is ok.")
LAST_TRIP = Metric("appliance_estop_last_trip_latency_seconds", "Cause to line dropped.", MS)
TIER = Metric("appliance_sync_tier", "1 for the link's current tier.")

Labels = Mapping[str, str]


class Families:
    """Metric families in the order first seen; each family's samples stay together under one HELP and
    one TYPE line, as the format requires, whatever order they were added in."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def add(self, metric: Metric, value: float, labels: Labels | None = None) -> None:
        family = self._family(metric, "counter" if metric.counter else "gauge")
        family.add_sample(metric.name, dict(labels or {}), metric.scaled(value))

    def fields(
        self, section: BaseModel, labels: Labels | None = None, only: AbstractSet[str] | None = None
    ) -> None:
        """Every annotated field of `section` whose value is a number (a bool is 0 or 1); not nulls."""
        for name, metric in metric_fields(type(section)):
            if only is not None and name not in only:
                continue
            value = getattr(section, name)
            if metric.by is not None:
                for key, item in value.items():
                    if _is_number(item):
                        self.add(metric, item, {**(labels or {}), metric.by: str(key)})
            elif _is_number(value):
                self.add(metric, value, labels)

    def histogram(self, metric: Metric, histogram: LatencyHistogram) -> None:
        """Per-bucket counts (ms) as cumulative buckets in seconds; the last count is +Inf's."""
        if len(histogram.counts) != len(histogram.le_ms) + 1:
            return
        family, total = self._family(metric, "histogram"), 0
        for bound, count in zip([*histogram.le_ms, math.inf], histogram.counts, strict=True):
            total += count
            le = "+Inf" if math.isinf(bound) else repr(metric.scaled(bound))
            family.add_sample(f"{metric.name}_bucket", {"le": le}, total)
        family.add_sample(f"{metric.name}_sum", {}, metric.scaled(histogram.sum_ms))
        family.add_sample(f"{metric.name}_count", {}, total)

    def collect(self) -> Iterator[Family]:
        return iter(self._families.values())

    def _family(self, metric: Metric, kind: str) -> Family:
        name = metric.name.removesuffix("_total") if kind == "counter" else metric.name
        if (family := self._families.get(name)) is None:
            family = self._families[name] = Family(name, metric.help, kind)
        return family


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def render(status: Status) -> str:
    """The status document as Prometheus text."""
    out = Families()
    out.add(UP, 1)
    out.add(INFO, 1, {"device": status.device, "version": status.runtime.version})
    out.fields(status)
    out.fields(status.runtime)
    for sensor in status.sensors:
        labels = {
            "sensor": sensor.id,
            "device": sensor.device,
            "unit": sensor.unit,
            "quality": sensor.quality,
        }
        out.fields(sensor, labels)  # a text reading has its timestamp only
    for name, service in status.services.items():
        _service(out, name, service)
    if status.hal is not None:
        _hal(out, status)
    if status.estop is not None:
        _estop(out, status.estop)
    return generate_latest(out).decode()


def _service(out: Families, name: str, service: ServiceStatus) -> None:
    """Running and restarts, labelled by service; then the kind's own figures, labelled by its part."""
    out.fields(service, {"service": name}, only=COMMON)
    if isinstance(service, QcStatus) and not service.running:
        return  # as the document's top-level qc: null while the pipeline is stopped
    _, _, part = name.partition(":")
    if part or not service.part_label:
        out.fields(
            service, {service.part_label: part} if service.part_label else {}, only=_own(type(service))
        )
    if (more := MORE.get(type(service))) is not None:
        more(out, service)


COMMON = frozenset(ServiceStatus.model_fields)


@functools.cache
def _own(model: type[ServiceStatus]) -> frozenset[str]:
    return frozenset(model.model_fields) - COMMON


def _hal(out: Families, status: Status) -> None:
    hal = status.hal
    assert hal is not None
    first = hal.inference.backends[0].backend if hal.inference.backends else ""
    info = {
        "board": hal.board.key,
        "soc": hal.board.soc or "",
        "inference": first,
        "model_variant": hal.inference.model_variant,
    }
    out.add(HAL_INFO, 1, info)
    for acc in hal.accelerators:
        out.add(ACCELERATOR, 1, {"accelerator": acc.key, "kind": acc.kind})
    out.fields(hal)
    out.fields(hal.cpu)


def _qc(out: Families, qc: ServiceStatus) -> None:
    """The latency histogram, the camera, the inference backend, the evidence."""
    assert isinstance(qc, QcStatus)
    out.histogram(QC_LATENCY, qc.latency_histogram)
    out.fields(qc.camera)
    out.fields(qc.inference)
    out.fields(qc.evidence)


def _estop(out: Families, estop: EstopStatus) -> None:
    """Tripped or not, the counters, the last trip's latency (the history is newest first), the rules."""
    out.add(TRIPPED, estop.state != "ok")
    out.fields(estop)
    if trip := next((c for c in estop.history if c.kind == "trip"), None):
        out.add(LAST_TRIP, trip.latency_ms)
    for rule in estop.rules:
        out.fields(rule, {"rule": rule.name, "type": rule.type, "severity": rule.severity})


def _sync(out: Families, sync: ServiceStatus) -> None:
    """The link tier as one gauge per tier (1 for the current one), and whether upstream is connected."""
    assert isinstance(sync, SyncStatus)
    for name in TIERS if sync.tier in TIERS else [*TIERS, sync.tier]:
        out.add(TIER, name == sync.tier, {"tier": name})
    if sync.upstream is not None:
        out.fields(sync.upstream, {"kind": sync.upstream.kind})


# What a kind of service exports beyond its annotated fields.
MORE: dict[type[ServiceStatus], Callable[[Families, ServiceStatus], None]] = {
    QcStatus: _qc,
    SyncStatus: _sync,
}
