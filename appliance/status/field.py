"""The field side's services: Modbus devices (TCP or on an RTU bus), RTU buses, serial line sensors."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from appliance.status.metric import MS, Metric
from appliance.status.service import ServiceStatus, service_kind


@service_kind("modbus")
class ModbusStatus(ServiceStatus):
    part_label: ClassVar[str | None] = "device"

    endpoint: str
    requests_per_poll: Annotated[
        int, Metric("appliance_modbus_requests_per_poll", "Modbus requests in one poll.")
    ]
    max_gap: int
    max_gap_mode: Literal["auto", "fixed"]
    replans: Annotated[int, Metric("appliance_modbus_replans_total", "Times the request plan was retuned.")]
    polls: Annotated[int, Metric("appliance_modbus_polls_total", "Polls of a device's registers.")]
    overruns: Annotated[
        int, Metric("appliance_modbus_overruns_total", "Polls that took longer than the interval.")
    ]
    failures: Annotated[
        dict[str, int], Metric("appliance_modbus_failures_total", "Failures by kind.", by="kind")
    ]
    bad_values: Annotated[
        dict[str, int],
        Metric(
            "appliance_modbus_bad_values_total",
            "Values that were no finite number, by channel.",
            by="channel",
        ),
    ] = {}
    connection_drops: int
    last_failure: str | None
    last_poll_ms: Annotated[
        float, Metric("appliance_modbus_last_poll_seconds", "Duration of the last poll.", MS)
    ]


@service_kind("bus")
class BusStatus(ServiceStatus):
    """An RS-485 line shared by Modbus RTU slaves: one transaction at a time."""

    part_label: ClassVar[str | None] = "bus"

    url: str
    baudrate: int
    transactions: Annotated[
        int, Metric("appliance_bus_transactions_total", "Request/response exchanges on the bus.")
    ]
    garbage_bytes: Annotated[
        int, Metric("appliance_bus_garbage_bytes_total", "Bytes on the bus that fit no frame.")
    ]
    reopens: Annotated[int, Metric("appliance_bus_reopens_total", "Times the bus's port was reopened.")]
    resync_cutoffs: Annotated[
        int,
        Metric(
            "appliance_bus_resync_cutoffs_total",
            "Times the bus stopped waiting for a quiet line after a bad answer (a device keeps sending).",
        ),
    ] = 0
    busy_s: Annotated[
        float, Metric("appliance_bus_busy_seconds_total", "Time the bus spent in transactions.")
    ]
    queued: Annotated[int, Metric("appliance_bus_queued_requests", "Requests waiting for the bus.")]
    resting_units: list[int]


@service_kind("serial")
class SerialStatus(ServiceStatus):
    """A serial line sensor: its line's state, frames decoded, bad frames by kind, channels gone stale."""

    part_label: ClassVar[str | None] = "device"

    state: str
    frames_ok: Annotated[int, Metric("appliance_serial_frames_ok_total", "Frames decoded from the line.")]
    errors: Annotated[
        dict[str, int], Metric("appliance_serial_errors_total", "Bad frames by kind.", by="kind")
    ]
    reconnects: Annotated[int, Metric("appliance_serial_reconnects_total", "Times the line was reopened.")]
    stale: list[str]
    bad_values: Annotated[
        dict[str, int],
        Metric(
            "appliance_serial_bad_values_total",
            "Values that were no finite number, by channel.",
            by="channel",
        ),
    ] = {}
