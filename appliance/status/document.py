"""The whole status document (GET /api/v1/status), assembled by the runtime from its services' sections.

Two sections appear twice for the scripts that read them today: `qc` and `sync` at the top are the same
objects as `services.qc` and `services.sync` (docs/web.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import SerializeAsAny, field_validator

from appliance.records import Quality
from appliance.status.field import BusStatus, ModbusStatus, SerialStatus
from appliance.status.hal import HalStatus
from appliance.status.metric import MS, Metric
from appliance.status.qc import QcStatus
from appliance.status.safety import EstopStatus, SafetyLinkStatus
from appliance.status.section import Section
from appliance.status.service import (
    SERVICE_KINDS,
    ClockStatus,
    HealthStatus,
    LoopStatus,
    ServiceStatus,
    WebStatus,
    WorldStatus,
)
from appliance.status.store import StoreStatus
from appliance.status.sync import SyncDisabled, SyncStatus

# Every kind of service status, most specific first; the document serializes each as its own model.
AnyServiceStatus = (
    ModbusStatus
    | BusStatus
    | SerialStatus
    | StoreStatus
    | SyncStatus
    | SafetyLinkStatus
    | QcStatus
    | LoopStatus
    | ClockStatus
    | WebStatus
    | WorldStatus
    | HealthStatus
    | SerializeAsAny[ServiceStatus]
)


class SensorStatus(Section):
    """A channel's latest reading; a value JSON cannot hold (NaN, infinity) is null."""

    id: str  # DEVICE.CHANNEL
    device: str
    channel: str
    value: Annotated[
        float | int | str | bool | None,
        Metric("appliance_sensor_value", "The latest reading of a sensor channel (numeric ones only)."),
    ]
    unit: str
    ts: Annotated[
        float, Metric("appliance_sensor_timestamp_seconds", "When the latest reading was taken (Unix time).")
    ]
    quality: Quality


class InsightStatus(Section):
    """Something wrong with the box, in plain words, and what to do (appliance/insights)."""

    id: str
    severity: Literal["critical", "warning", "info"]
    topic: str
    message: str
    advice: str
    since: float


class DiskStatus(Section):
    """The data directory's file system: what the store, evidence and logs share."""

    path: str
    total_mb: float
    free_mb: float


class RuntimeInfo(Section):
    version: str
    pid: int
    loop_lag_ms: Annotated[
        float, Metric("appliance_loop_lag_seconds", "How late the event loop ran a timer.", MS)
    ]


class Status(Section):
    device: str
    time: float  # the box's clock (Unix time), so a page can tell how old a reading is
    uptime_s: Annotated[float, Metric("appliance_uptime_seconds", "Time since the runtime started.")]
    sensors: list[SensorStatus]
    services: dict[str, AnyServiceStatus]
    hal: HalStatus | None  # null until the hardware is detected
    qc: QcStatus | None  # null on a box without [qc], or while its pipeline is not running
    estop: EstopStatus | None  # null on a box without [safety]
    sync: SyncStatus | SyncDisabled
    disk: DiskStatus | None  # null when the data directory cannot be read
    insights: list[InsightStatus]  # most severe first
    runtime: RuntimeInfo

    @field_validator("services", mode="before")
    @classmethod
    def _typed_by_name(cls, services: Any) -> Any:
        """A service's section read back from JSON is typed by its name's kind (`modbus:press-1`)."""
        if not isinstance(services, dict):
            return services
        return {
            name: SERVICE_KINDS.get(str(name).partition(":")[0], ServiceStatus).model_validate(section)
            if isinstance(section, dict)
            else section
            for name, section in services.items()
        }
