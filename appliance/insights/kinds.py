"""The kinds of health insight: what each is about, how bad it usually is, what to do, and the thresholds."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.records import Severity

SENSOR_BAD_S = 300.0  # a channel stale or in error this long is reported
COUNTER_HOLD_S = (
    120.0  # a rising counter (failures, restarts, drops) is reported this long after it last rose
)
SERVICE_DOWN_S = 10.0  # a service not running this long is reported (services start one after another)
SERIAL_DOWN_S = 30.0  # a serial line not open this long is reported (an unplug is retried with backoff)
CAMERA_DOWN_S = 10.0  # a camera not streaming this long is reported
ESTOP_STARTING_S = 30.0  # the stop output waiting this long for its first healthy heartbeat is reported
SYNC_OFFLINE_S = 60.0  # no upstream this long is reported (short drops are retried quietly)
SYNC_OLDEST_S = 600.0  # a record waiting this long to go upstream is reported
BACKLOG_GROWTH_S = 300.0  # the sync backlog growing over this long is reported
BACKLOG_SAMPLE_S = 10.0  # the backlog is sampled at most this often
DISK_FREE_WARNING = 0.10  # fraction of the data file system left free
DISK_FREE_CRITICAL = 0.03
LOOP_LAG_MS = 100.0  # the event loop running this late is reported
LOOP_LAG_CRITICAL_MS = 1000.0  # this late, the safety heartbeats may miss their deadline
DEFAULT_LATENCY_BUDGET_MS = 100.0  # when the status does not say (qc.latency_budget_ms)

SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


class Topic(enum.StrEnum):
    """Which part of the box an insight is about."""

    SENSORS = "sensors"
    QC = "qc"
    SYNC = "sync"
    STORE = "store"
    SAFETY = "safety"
    HARDWARE = "hardware"
    RUNTIME = "runtime"


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of insight: how bad it usually is, what it is about, and what to do ({name} is filled in)."""

    severity: Severity
    topic: Topic
    advice: str


_C, _W, _I = Severity.CRITICAL, Severity.WARNING, Severity.INFO
_LOG = "Read the appliance's log (journalctl -u appliance) for {name}'s error and fix its cause"
KINDS: Mapping[str, Kind] = {
    "sensor-stale": Kind(
        _W, Topic.SENSORS, "Check {name}'s wiring and power, and its address in the config."
    ),
    "sensor-error": Kind(
        _W, Topic.SENSORS, "Check {name}'s wiring and power, and its address in the config."
    ),
    "driver-failures": Kind(
        _W, Topic.SENSORS, "Check the cable or network to {name}, its unit id, and the register map."
    ),
    "driver-overruns": Kind(
        _W,
        Topic.SENSORS,
        "Raise {name}'s poll_interval_s or read fewer registers (on RS-485: a higher baud).",
    ),
    "driver-errors": Kind(
        _W, Topic.SENSORS, "Check {name}'s baud rate and framing against the config, and the cable's ground."
    ),
    "bad-values": Kind(
        _W,
        Topic.SENSORS,
        "Check {name}'s probes and their ranges (a missing probe reads NaN, one out of range inf), and "
        "each channel's scale; rules on those channels treat these values as a fault.",
    ),
    "serial-down": Kind(
        _W, Topic.SENSORS, "Check that sensor {name} is plugged in and powered, and its port in the config."
    ),
    "bus-garbage": Kind(
        _W, Topic.SENSORS, "Check {name}'s termination and biasing, and every device's baud rate and address."
    ),
    "service-down": Kind(_W, Topic.RUNTIME, _LOG + ", then restart the appliance."),
    "service-restarts": Kind(_W, Topic.RUNTIME, _LOG + "; until then it is restarted with backoff."),
    "qc-latency": Kind(
        _W, Topic.QC, "Use an accelerator, an int8 or smaller model, or raise qc.latency_budget_ms."
    ),
    "camera-down": Kind(_W, Topic.QC, "Check the camera's cable and power, and qc.camera.uri."),
    "inference-fallback": Kind(
        _W, Topic.HARDWARE, "Check that the {name} is seated, powered and has its driver (appliance hal)."
    ),
    "inference-recovered": Kind(
        _I, Topic.HARDWARE, "If it happens again, check the {name}'s power supply, cooling and cable."
    ),
    "sync-offline": Kind(
        _W,
        Topic.SYNC,
        "Check the network and the upstream's address and credentials; records wait meanwhile.",
    ),
    "sync-plain": Kind(
        _W,
        Topic.SYNC,
        "Nothing to do for an upstream on this box; else give [sync.upstream] a tls table (for HTTPS an "
        "https:// url) and drop insecure = true.",
    ),
    "sync-oldest": Kind(
        _W, Topic.SYNC, "Check the upstream's acknowledgements (upstream.last_error) and the link's goodput."
    ),
    "sync-held": Kind(
        _I, Topic.SYNC, "Nothing to do if the link is meant to be slow; they go when it improves."
    ),
    "sync-backlog": Kind(
        _W,
        Topic.SYNC,
        "Check the link's goodput, or give fewer readings a class this tier sends (store.classes).",
    ),
    "disk-full": Kind(
        _W, Topic.STORE, "Free space on it, or lower store.quota_mb and qc.evidence.budget_mb."
    ),
    "store-over-quota": Kind(
        _W, Topic.STORE, "Restore the upstream so records can go, or raise store.quota_mb if the disk allows."
    ),
    "store-dropping": Kind(_C, Topic.STORE, "Check the disk (dmesg, df) and lower the poll rates."),
    "store-commit-errors": Kind(
        _C, Topic.STORE, "Check the data partition for errors and space (dmesg, df); replace a worn SD card."
    ),
    "estop-tripped": Kind(
        _C, Topic.SAFETY, "Fix the cause, then reset the stop output on the status page (admin)."
    ),
    "estop-starting": Kind(
        _W, Topic.SAFETY, "Clear the causes the supervisor waits for; no reset is needed."
    ),
    "estop-supervisor": Kind(
        _C, Topic.SAFETY, "Check that the supervisor runs (systemctl status appliance-safety) and its log."
    ),
    "estop-unrecorded": Kind(
        _C,
        Topic.SAFETY,
        "The line stays down. Free space on the data partition or fix what made it read-only (dmesg, df); "
        "the supervisor writes the latch again each second.",
    ),
    "loop-lag": Kind(
        _W, Topic.RUNTIME, "Check the CPU load (top) and the log; lower poll rates or camera fps."
    ),
}
SERVICE_TOPICS = {"modbus": Topic.SENSORS, "serial": Topic.SENSORS, "bus": Topic.SENSORS, "qc": Topic.QC}
SERVICE_TOPICS |= {"sync": Topic.SYNC, "store": Topic.STORE, "safety": Topic.SAFETY}
CRITICAL_SERVICES = {"safety", "store"}  # without them the box neither stops safely nor keeps its data


@dataclass(frozen=True, slots=True)
class Insight:
    """One thing wrong with the box: what, how bad, what to do, and since when (wall-clock seconds)."""

    id: str
    severity: Severity
    topic: Topic
    message: str
    advice: str
    since: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "topic": str(self.topic),
            "message": self.message,
            "advice": self.advice,
            "since": round(self.since, 3),
        }
