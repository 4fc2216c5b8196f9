"""The metric tables of GET /metrics: which figure of each status section becomes which metric."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.sync.tiers import LinkTier

MIB = 1024 * 1024
MS = 1e-3  # from milliseconds to seconds


class Kind(enum.StrEnum):
    """The metric types this exposition uses."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Field:
    """One number (or {name: number} map) of a status section and the metric it becomes. `scale` turns
    the status's unit into the metric's base unit; a name ending in _total makes a counter."""

    key: str
    metric: str
    help: str
    scale: float = 1.0

    @property
    def kind(self) -> Kind:
        return Kind.COUNTER if self.metric.endswith("_total") else Kind.GAUGE


@dataclass(frozen=True)
class Driver:
    """How a field driver's service (`modbus:NAME`, `serial:NAME`, `bus:NAME`) is exported: the label
    naming the part, its plain fields, and its errors counted by kind, if it counts any."""

    label: str
    fields: tuple[Field, ...]
    errors: Field | None = None


UPTIME = Field("uptime_s", "appliance_uptime_seconds", "Time since the runtime started.")
LOOP_LAG = Field("loop_lag_ms", "appliance_loop_lag_seconds", "How late the event loop ran a timer.", MS)
LOOP_MAX = Field("max_lag_ms", "appliance_loop_lag_max_seconds", "Worst event loop lag, recently.", MS)

SENSOR = (
    Field("value", "appliance_sensor_value", "The latest reading of a sensor channel (numeric ones only)."),
    Field("ts", "appliance_sensor_timestamp_seconds", "When the latest reading was taken (Unix time)."),
)

SERVICE = (
    Field("running", "appliance_service_running", "1 while the service is started."),
    Field("restarts", "appliance_service_restarts_total", "Restarts of the service after a failure."),
)
STORE = (
    Field("rows_committed", "appliance_store_rows_committed_total", "Sensor rows committed."),
    Field("events_committed", "appliance_store_events_committed_total", "Events committed."),
    Field("commits", "appliance_store_commits_total", "SQLite transactions committed."),
    Field("dropped", "appliance_store_dropped_records_total", "Records dropped: the write queue was full."),
    Field("commit_errors", "appliance_store_commit_errors_total", "Commits that failed."),
    Field("pending_records", "appliance_store_pending_records", "Records queued and not yet committed."),
    Field("last_commit_ms", "appliance_store_last_commit_seconds", "Duration of the last commit.", MS),
    Field("used_mb", "appliance_store_used_bytes", "Disk used by the database.", 1e6),
    Field("quota_mb", "appliance_store_quota_bytes", "The database's disk quota.", 1e6),
    Field("over_quota", "appliance_store_over_quota", "1 while the database is over its quota."),
    Field("bytes_written_per_record", "appliance_store_written_bytes_per_record", "Disk bytes per record."),
)
STORE_EVICTED = Field("evicted", "appliance_store_evicted_records_total", "Records thinned, by class.")
SAFETY_LINK = (
    Field("connected", "appliance_safety_link_connected", "1 while the safety supervisor is connected."),
    Field("trips_requested", "appliance_safety_trips_requested_total", "Trips asked of the supervisor."),
)
MODBUS = (
    Field("polls", "appliance_modbus_polls_total", "Polls of a device's registers."),
    Field("overruns", "appliance_modbus_overruns_total", "Polls that took longer than the interval."),
    Field("replans", "appliance_modbus_replans_total", "Times the request plan was retuned."),
    Field("requests_per_poll", "appliance_modbus_requests_per_poll", "Modbus requests in one poll."),
    Field("last_poll_ms", "appliance_modbus_last_poll_seconds", "Duration of the last poll.", MS),
)
SERIAL = (
    Field("frames_ok", "appliance_serial_frames_ok_total", "Frames decoded from the line."),
    Field("reconnects", "appliance_serial_reconnects_total", "Times the line was reopened."),
)
BUS = (
    Field("transactions", "appliance_bus_transactions_total", "Request/response exchanges on the bus."),
    Field("garbage_bytes", "appliance_bus_garbage_bytes_total", "Bytes on the bus that fit no frame."),
    Field("reopens", "appliance_bus_reopens_total", "Times the bus's port was reopened."),
    Field("busy_s", "appliance_bus_busy_seconds_total", "Time the bus spent in transactions."),
    Field("queued", "appliance_bus_queued_requests", "Requests waiting for the bus."),
)
DRIVERS = {
    "modbus": Driver(
        "device", MODBUS, Field("failures", "appliance_modbus_failures_total", "Failures by kind.")
    ),
    "serial": Driver(
        "device", SERIAL, Field("errors", "appliance_serial_errors_total", "Bad frames by kind.")
    ),
    "bus": Driver("bus", BUS),
}

HAL = (
    Field("memory_mb", "appliance_hal_memory_bytes", "Memory of the board.", MIB),
    Field("cores", "appliance_hal_cpu_cores", "CPU cores."),
)

QC = (
    Field("frames", "appliance_qc_frames_total", "Camera frames inspected."),
    Field("fps", "appliance_qc_frames_per_second", "Frames inspected per second, recently."),
)
QC_DEFECTS = Field("defects", "appliance_qc_defects_total", "Defects confirmed by the policy, by class.")
QC_CAMERA = (
    Field("dropped", "appliance_qc_camera_dropped_frames_total", "Frames dropped while inference was busy."),
    Field("reopens", "appliance_qc_camera_reopens_total", "Times the camera was reopened."),
    Field("last_frame_age_s", "appliance_qc_camera_frame_age_seconds", "Age of the camera's latest frame."),
)
QC_INFERENCE = (
    Field("fallbacks", "appliance_qc_inference_fallbacks_total", "Falls to the next inference backend."),
    Field("recoveries", "appliance_qc_inference_recoveries_total", "Returns to a preferred backend."),
)
QC_EVIDENCE = (
    Field("saved", "appliance_qc_evidence_saved_total", "Reject images saved."),
    Field("bytes", "appliance_qc_evidence_bytes", "Disk used by reject images."),
)
QC_LATENCY = "appliance_qc_latency_seconds"
QC_LATENCY_HELP = "Time from a frame in memory to its decision recorded."

ESTOP = (
    Field("tripped", "appliance_estop_tripped", "1 while the stop output is tripped, 0 while it is ok."),
    Field("latched", "appliance_estop_latched", "1 while a trip is latched, waiting for a reset."),
    Field("trips", "appliance_estop_trips_total", "Trips of the stop output."),
    Field("resets", "appliance_estop_resets_total", "Accepted resets of a latched trip."),
    Field("refused_resets", "appliance_estop_refused_resets_total", "Resets the supervisor refused."),
    Field("since", "appliance_estop_since_timestamp_seconds", "When the state last changed (Unix time)."),
)
LAST_TRIP = Field("latency_ms", "appliance_estop_last_trip_latency_seconds", "Cause to line dropped.", MS)
RULE_ACTIVE = Field("active", "appliance_estop_rule_active", "1 while a safety rule's condition holds.")

SYNC = (
    Field("goodput_mbit", "appliance_sync_goodput_bytes_per_second", "Measured uplink goodput.", 1e6 / 8),
    Field("rtt_ms", "appliance_sync_rtt_seconds", "Smoothed round-trip time to upstream.", MS),
    Field("since", "appliance_sync_tier_age_seconds", "Time in the current link tier."),
    Field("metered", "appliance_sync_link_metered", "1 if the link is paid for by the byte."),
    Field("failures", "appliance_sync_failures_total", "Transfers that timed out or failed."),
    Field("last_ok", "appliance_sync_last_ok_timestamp_seconds", "Last acknowledgement (Unix time)."),
    Field("inflight", "appliance_sync_inflight_batches", "Batches sent and not yet acknowledged."),
    Field("batches_sent", "appliance_sync_batches_sent_total", "Batches sent upstream."),
    Field("batches_acked", "appliance_sync_batches_acked_total", "Batches acknowledged by upstream."),
    Field("records_acked", "appliance_sync_records_acked_total", "Records acknowledged by upstream."),
    Field("resent", "appliance_sync_batches_resent_total", "Batches sent again for want of an ack."),
    Field("payload_bytes", "appliance_sync_payload_bytes_total", "Batch bytes sent (encoded, compressed)."),
    Field("wire_bytes", "appliance_sync_wire_bytes_total", "Protocol bytes sent (before TCP/IP and TLS)."),
)
SYNC_BACKLOG = Field("backlog", "appliance_sync_backlog_records", "Records waiting to go upstream, by class.")
SYNC_OLDEST = Field("oldest_s", "appliance_sync_oldest_record_age_seconds", "Age of the oldest waiting.")
UPSTREAM = Field("connected", "appliance_sync_upstream_connected", "1 while upstream is connected.")
TIERS = [tier.label for tier in LinkTier]
