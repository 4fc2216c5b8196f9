"""The latest state of every sensor channel, as the status page and API show it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from appliance.records import Reading


class SensorSnapshot:
    """Latest reading per channel, kept in the order channels first appeared."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], Reading] = {}

    def update(self, readings: Sequence[Reading]) -> None:
        latest = self._latest
        for reading in readings:  # keyed by (device, channel): no string is built on this hot path
            latest[reading[0], reading[1]] = reading

    def sensors(self) -> list[dict[str, Any]]:
        return [
            {
                "id": r.sensor_id,
                "device": r.device,
                "channel": r.channel,
                "value": r.value,
                "unit": r.unit,
                "ts": r.ts,
                "quality": str(r.quality),
            }
            for r in self._latest.values()
        ]
