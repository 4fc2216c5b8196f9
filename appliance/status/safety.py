"""The stop output: the runtime's link to the safety supervisor, and the `estop` section of what the
supervisor reports (its state, counters, latest trips and resets, the rules that hold)."""

from __future__ import annotations

from typing import Annotated, Literal

from appliance.status.metric import Metric
from appliance.status.section import Section
from appliance.status.service import ServiceStatus, service_kind


@service_kind("safety")
class SafetyLinkStatus(ServiceStatus):
    connected: Annotated[
        bool, Metric("appliance_safety_link_connected", "1 while the safety supervisor is connected.")
    ]
    trips_requested: Annotated[
        int, Metric("appliance_safety_trips_requested_total", "Trips asked of the supervisor.")
    ]


class Change(Section):
    """A trip or a reset as the supervisor recorded it (appliance/safety/latch.py)."""

    id: str
    kind: Literal["trip", "reset"]
    reason: str
    source: str
    ts: float
    cause_ns: int
    line_ns: int
    line_changed: bool
    latency_ms: float


class LatchFile(Section):
    recorded: bool
    error: str | None


class SupervisorInfo(Section):
    pid: int | None = None
    scheduling: str | None = None
    refused: dict[str, int] = {}
    latch_file: LatchFile | None = None


class RuleStatus(Section):
    name: str
    type: str
    severity: str
    active: Annotated[bool, Metric("appliance_estop_rule_active", "1 while a safety rule's condition holds.")]
    detail: str


class EstopStatus(Section):
    """The stop output; `state` is "ok" only while the supervisor says the line is energized."""

    state: Literal["ok", "tripped"]
    reason: str
    since: Annotated[
        float | None,
        Metric("appliance_estop_since_timestamp_seconds", "When the state last changed (Unix time)."),
    ]
    latched: Annotated[
        bool, Metric("appliance_estop_latched", "1 while a trip is latched, waiting for a reset.")
    ]
    phase: str
    causes: list[str]
    trips: Annotated[int, Metric("appliance_estop_trips_total", "Trips of the stop output.")]
    resets: Annotated[int, Metric("appliance_estop_resets_total", "Accepted resets of a latched trip.")]
    refused_resets: Annotated[
        int, Metric("appliance_estop_refused_resets_total", "Resets the supervisor refused.")
    ]
    history: list[Change]  # newest first
    supervisor: SupervisorInfo
    rules: list[RuleStatus]
