"""The records that flow through the box: readings from sensors, with their quality."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Quality(enum.StrEnum):
    """How far a reading can be trusted."""

    OK = "ok"
    STALE = "stale"  # the last good value, older than the channel allows
    ERROR = "error"  # the read failed; value is None


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one channel of one field device at one moment (wall-clock seconds)."""

    device: str
    channel: str
    value: float | None
    unit: str
    ts: float
    quality: Quality

    @property
    def sensor_id(self) -> str:
        return f"{self.device}.{self.channel}"
