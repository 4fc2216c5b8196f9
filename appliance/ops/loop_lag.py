"""Event-loop lag: how late the runtime's loop wakes up, which must stay at a few milliseconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from appliance.service import Service
from appliance.status.service import LoopStatus


class LoopMonitor(Service):
    """Sleeps a fixed tick and measures the overshoot; a blocked loop shows up here first."""

    name = "loop"
    tick_s = 0.1
    window_s = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.pet: Callable[[], None] | None = None  # systemd's watchdog: petted only while the loop runs
        self.lag_ms = 0.0
        self.max_lag_ms = 0.0  # worst over the current and the previous window

    async def run(self) -> None:
        window_start = time.monotonic()
        window_max = previous_max = 0.0
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.tick_s)
            after = time.monotonic()
            if self.pet is not None:
                self.pet()
            self.lag_ms = max(0.0, (after - before - self.tick_s) * 1000)
            if after - window_start > self.window_s:
                previous_max, window_max, window_start = window_max, 0.0, after
            window_max = max(window_max, self.lag_ms)
            self.max_lag_ms = max(previous_max, window_max)

    def status(self) -> LoopStatus:
        return LoopStatus(**self.basics(), lag_ms=round(self.lag_ms, 3), max_lag_ms=round(self.max_lag_ms, 3))
