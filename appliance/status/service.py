"""Every service's status: running, restarts, last error, then what its kind reports. The runtime's own
services (event loop, clock, page, bench world, health watch) are here; the others beside their packages'
sections (field.py, store.py, sync.py, safety.py, qc.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ClassVar, TypeVar

from appliance.status.metric import MS, Metric
from appliance.status.section import Section


class ServiceStatus(Section):
    """What every service reports (appliance/service.py); a kind's own fields follow in a subclass. A
    service named `KIND:PART` (modbus:press-1) labels its own metrics with `part_label`=PART."""

    part_label: ClassVar[str | None] = None

    running: Annotated[bool, Metric("appliance_service_running", "1 while the service is started.")]
    restarts: Annotated[
        int, Metric("appliance_service_restarts_total", "Restarts of the service after a failure.")
    ]
    last_error: str | None = None


S = TypeVar("S", bound=type[ServiceStatus])
SERVICE_KINDS: dict[str, type[ServiceStatus]] = {}
"""Service kind (the name before any `:`) -> its status model, so a status read back from JSON (a test, a
client) is typed by the service's name."""


def service_kind(*kinds: str) -> Callable[[S], S]:
    """Registers a status model for services of these kinds."""

    def register(model: S) -> S:
        for kind in kinds:
            SERVICE_KINDS[kind] = model
        return model

    return register


@service_kind("loop")
class LoopStatus(ServiceStatus):
    lag_ms: float
    max_lag_ms: Annotated[
        float, Metric("appliance_loop_lag_max_seconds", "Worst event loop lag, recently.", MS)
    ]


class ClockStep(Section):
    step_s: float
    before: float
    after: float


@service_kind("clock")
class ClockStatus(ServiceStatus):
    steps: int
    last_step: ClockStep | None


@service_kind("web")
class WebStatus(ServiceStatus):
    url: str
    connections: Annotated[int | None, Metric("appliance_web_connections", "HTTP connections open.")] = None
    refused: Annotated[
        dict[str, int],
        Metric(
            "appliance_web_refused_total",
            "Requests refused and connections closed by the web server's limits, by reason.",
            by="reason",
        ),
    ] = {}


@service_kind("bench")
class WorldStatus(ServiceStatus):
    """The `bench sim` child process of a box on a bench."""

    pid: int | None
    parts: int


@service_kind("health")
class HealthStatus(ServiceStatus):
    insights: int
