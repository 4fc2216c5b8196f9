"""The health watch: assesses the status once a second, so that the insights' durations ("stale for 5
minutes", "the backlog grew for 5 minutes") run whether or not anyone is looking at the page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from appliance.insights import HealthInsights
from appliance.service import Service
from appliance.status.document import InsightStatus, Status
from appliance.status.service import HealthStatus

ASSESS_S = 1.0


class HealthWatch(Service):
    name = "health"

    def __init__(self, status: Callable[[], Status]) -> None:
        super().__init__()
        self.source = status
        self.insights = HealthInsights()
        self.current: list[InsightStatus] = []  # the latest assessment, most severe first

    async def run(self) -> None:
        while True:
            self.current = self.insights.assess(self.source(), time.time())
            await asyncio.sleep(ASSESS_S)

    def status(self) -> HealthStatus:
        return HealthStatus(**self.basics(), insights=len(self.current))
