"""The records that flow through the box: readings from sensors, with their quality."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Quality(enum.StrEnum):
    """How far a reading can be trusted."""

    OK = "ok"
    STALE = "stale"  # the last good value, older than the channel allows
    # the read failed (value None), or the device sent a value that is no finite number (inf, -inf, nan:
    # a probe missing, a range exceeded, a scale overflowed), kept as it came: the rules treat it as a fault
    ERROR = "error"


def is_bad_value(value: object) -> bool:
    """A number that is not finite: what no channel can use as a measurement."""
    return isinstance(value, float) and not math.isfinite(value)


class Reading(NamedTuple):
    """One value of one channel of one field device at one moment (wall-clock seconds).

    A NamedTuple rather than a frozen dataclass: just as immutable, and three times cheaper to create,
    which counts at thousands of readings a second on a Pi.
    """

    device: str
    channel: str
    value: float | str | None  # text for string registers
    unit: str
    ts: float
    quality: Quality

    @property
    def sensor_id(self) -> str:
        return f"{self.device}.{self.channel}"


class Priority(enum.IntEnum):
    """A record's class on the way upstream; lower numbers go first and are evicted last."""

    CRITICAL = 0  # sent at once, never evicted
    IMPORTANT = 1
    NORMAL = 2
    BACKGROUND = 3  # sent only on an unmetered link, thinned first when the disk fills

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> Priority:
        return cls[label.upper()]


class Severity(enum.StrEnum):
    CRITICAL = "critical"  # stop the line
    WARNING = "warning"  # needs a person: inspect the part, check the sensor
    INFO = "info"  # worth recording


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened: a confirmed defect, a trip, a reset; kept in the store with its evidence."""

    ts: float
    kind: str  # dotted: qc.defect, estop.trip, ...
    severity: Severity
    source: str  # what raised it: "qc", a device id, "api"
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def data_json(self) -> str:
        return json.dumps(dict(self.data), separators=(",", ":"), default=str)


def is_file_name(name: str) -> bool:
    """A plain file name, as evidence files are named: no folder part, nothing hidden, no NUL."""
    return bool(name) and not any(c in name for c in "/\\\0") and not name.startswith(".")
