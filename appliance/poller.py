"""Polls one Modbus device (TCP, or RTU through its line's bus) on its interval into readings.

Like a Home Assistant coordinator it owns the connection, the schedule and the errors: a failed
read marks the affected channels' quality as error and is counted by kind; the poller never dies of
a bad device, and a device that is gone is retried with growing backoff instead of every cycle.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from appliance.config.models import ModbusDeviceSettings
from appliance.records import Quality, Reading
from appliance.service import Service
from drivers.modbus.planner import Block, plan_reads
from drivers.modbus.registers import DecodeError, Point
from drivers.modbus.tcp import FailureKind, ReadFailure

log = logging.getLogger(__name__)

ReadingSink = Callable[[Sequence[Reading]], None]
RECONNECT_BACKOFF_MAX_S = 30.0


class ModbusClient(Protocol):
    """What the poller needs of a client: drivers.modbus.tcp.ModbusTcpClient and rtu.ModbusRtuClient."""

    @property
    def connected(self) -> bool: ...

    async def read(self, block: Block) -> Sequence[int] | Sequence[bool]: ...

    def close(self) -> None: ...


class ModbusPoller(Service):
    """One device, one connection, one schedule."""

    def __init__(
        self,
        device_id: str,
        settings: ModbusDeviceSettings,
        client: Callable[[], ModbusClient],
        sink: ReadingSink,
        endpoint: str = "",
    ) -> None:
        super().__init__()
        self.client = client
        self.endpoint = endpoint
        self.name = f"modbus:{device_id}"
        self.device_id = device_id
        self.settings = settings
        self.sink = sink
        self.blocks: list[Block] = plan_reads(settings.register_map(), settings.max_gap)
        self.polls = 0
        self.overruns = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.last_failure: str | None = None
        self.last_poll_ms = 0.0
        self._reconnect_delay = settings.poll_interval_s
        self._reconnect_at = 0.0

    def details(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "requests_per_poll": len(self.blocks),
            "polls": self.polls,
            "overruns": self.overruns,
            "failures": dict(self.failures),
            "last_failure": self.last_failure,
            "last_poll_ms": round(self.last_poll_ms, 3),
        }

    async def run(self) -> None:
        s = self.settings
        client = self.client()
        try:
            due = time.monotonic()
            while True:
                began = time.monotonic()
                self.sink(await self.poll_once(client))
                self.polls += 1
                self.last_poll_ms = (time.monotonic() - began) * 1000
                due += s.poll_interval_s
                now = time.monotonic()
                if due < now:  # the poll took longer than the interval: skip, don't pile up
                    self.overruns += 1
                    due = now
                await asyncio.sleep(due - now)
        finally:
            client.close()

    async def poll_once(self, client: ModbusClient) -> list[Reading]:
        """Read every block once; each point yields exactly one reading, good or not."""
        readings: list[Reading] = []
        for block in self.blocks:
            if not client.connected and time.monotonic() < self._reconnect_at:
                readings += self._failed(block.points, time.time())
                continue
            try:
                values = await client.read(block)
            except ReadFailure as failure:
                self._count(failure)
                if failure.kind in (FailureKind.DISCONNECTED, FailureKind.TIMEOUT):
                    self._reconnect_at = time.monotonic() + self._reconnect_delay
                    self._reconnect_delay = min(self._reconnect_delay * 2, RECONNECT_BACKOFF_MAX_S)
                readings += self._failed(block.points, time.time())
                continue
            self._reconnect_delay = self.settings.poll_interval_s
            readings += self._decode(block, values, time.time())
        return readings

    def _decode(self, block: Block, values: Sequence[int] | Sequence[bool], ts: float) -> list[Reading]:
        out = []
        for point in block.points:
            try:
                value: float | None = point.decode(values[block.slice_for(point)])
                quality = Quality.OK
            except DecodeError as exc:
                self._count(ReadFailure(FailureKind.BAD_RESPONSE, str(exc)))
                value, quality = None, Quality.ERROR
            out.append(Reading(self.device_id, point.channel, value, point.unit, ts, quality))
        return out

    def _failed(self, points: Sequence[Point], ts: float) -> list[Reading]:
        return [Reading(self.device_id, p.channel, None, p.unit, ts, Quality.ERROR) for p in points]

    def _count(self, failure: ReadFailure) -> None:
        self.failures[str(failure.kind)] += 1
        if str(failure) != self.last_failure:
            log.warning("%s: %s", self.name, failure)
        self.last_failure = str(failure)
