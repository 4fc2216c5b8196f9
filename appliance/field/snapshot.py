"""The latest state of every sensor channel, as the status page and API show it, and a few minutes of
history of each numeric one for the page's sparklines."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Sequence

from appliance.records import Reading
from appliance.status.document import SensorStatus

SAMPLE_S = 2.0  # the history keeps one value per channel this often
HISTORY_S = 600.0  # ... for this long


class SensorSnapshot:
    """Latest reading per channel, kept in the order channels first appeared."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], Reading] = {}
        self._history: dict[tuple[str, str], collections.deque[tuple[float, float]]] = {}
        self._sampled = 0.0

    def update(self, readings: Sequence[Reading]) -> None:
        latest = self._latest
        for reading in readings:  # keyed by (device, channel): no string is built on this hot path
            latest[reading[0], reading[1]] = reading
        if (now := time.monotonic()) - self._sampled >= SAMPLE_S:  # once per poll, not per reading
            self._sampled = now
            self._sample()

    def _sample(self) -> None:
        """The latest numeric value of every channel into its history (unchanged ones too: a flat line
        is news on a sparkline)."""
        size = int(HISTORY_S / SAMPLE_S)
        for key, reading in self._latest.items():
            value = reading.value
            if isinstance(value, int | float) and math.isfinite(value):
                if (ring := self._history.get(key)) is None:
                    ring = self._history[key] = collections.deque(maxlen=size)
                if not ring or ring[-1][0] != reading.ts:  # a stale channel adds nothing new
                    ring.append((round(reading.ts, 3), float(value)))

    def history(self) -> dict[str, list[tuple[float, float]]]:
        """DEVICE.CHANNEL -> [(ts, value), ...], oldest first, for the last HISTORY_S seconds."""
        return {f"{device}.{channel}": list(ring) for (device, channel), ring in self._history.items()}

    def sensors(self) -> list[SensorStatus]:
        return [
            SensorStatus(
                id=r.sensor_id,
                device=r.device,
                channel=r.channel,
                # JSON has no NaN or infinity: such a value (a float register's garbage) shows as null
                value=None if isinstance(r.value, float) and not math.isfinite(r.value) else r.value,
                unit=r.unit,
                ts=r.ts,
                quality=r.quality,
            )
            for r in self._latest.values()
        ]
