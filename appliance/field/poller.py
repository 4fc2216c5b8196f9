"""Polls one Modbus device (TCP, or RTU through its line's bus) on its interval into readings.

Like a Home Assistant coordinator it owns the connection, the schedule and the errors: a failed
read marks the affected channels' quality as error and is counted by kind; the poller never dies of
a bad device, and a device that is gone is retried with growing backoff instead of every cycle.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from appliance.config.devices import ModbusDeviceSettings
from appliance.field.derived import DerivedChannels
from appliance.records import Quality, Reading, is_bad_value
from appliance.service import Service
from appliance.status.field import ModbusStatus
from drivers.backoff import Backoff
from drivers.modbus.client import ModbusClient
from drivers.modbus.errors import FailureKind, ReadFailure
from drivers.modbus.planner import MAX_REGISTERS_PER_READ, Block, CostModel, plan_reads
from drivers.modbus.registers import DecodeError, Point, Table

log = logging.getLogger(__name__)

# (readings, CLOCK_MONOTONIC ns when they entered the box: what rules and windows count durations on)
ReadingSink = Callable[[Sequence[Reading], int], None]
RECONNECT_BACKOFF_MAX_S = 30.0
MAX_GAP = MAX_REGISTERS_PER_READ - 1
AUTO_START_GAP = 8  # auto mode's first plan, until the cost of reads has been measured
RETUNE_EVERY_POLLS = 20


# How each point of a read is decoded, worked out once per plan rather than once per poll.
_PLAIN, _WAVEFORM, _OTHER = "plain", "waveform", "other"
# (point, offset in the read, how, has features, (unpack_from, byte offset, scale, offset) for plain points)
Layout = tuple[tuple[Point, int, str, bool, tuple[Any, int, float, float] | None], ...]


def _bridges(block: Block) -> bool:
    """True if the read spans registers that belong to no point."""
    return block.count > sum(p.count for p in block.points)


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
        self.derived = DerivedChannels(device_id, settings.registers)
        self.name = f"modbus:{device_id}"
        self.device_id = device_id
        self.settings = settings
        self.sink = sink
        self.auto = settings.max_gap == "auto"
        self.max_gap = AUTO_START_GAP if settings.max_gap == "auto" else settings.max_gap
        self.costs = CostModel()
        self.barriers: frozenset[tuple[Table, int]] = frozenset()
        self.replans = 0
        self.blocks: list[Block] = []
        self._layouts: list[Layout] = []
        self._plan()
        self.polls = 0
        self.overruns = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.bad_values: collections.Counter[str] = collections.Counter()  # by channel: inf, -inf, nan
        self.last_failure: str | None = None
        self.last_poll_ms = 0.0
        # a gone device is tried again after one interval, then two, four, ... up to the cap
        self._reconnect = Backoff(settings.poll_interval_s, RECONNECT_BACKOFF_MAX_S)
        self._reconnect_at = 0.0
        # connections found gone: closed by the device between polls, or lost during a read
        self.connection_drops = 0
        self._had_connection = False
        self.answered_ns = 0  # when the last poll's first answer came (CLOCK_MONOTONIC)

    def status(self) -> ModbusStatus:
        return ModbusStatus(
            **self.basics(),
            endpoint=self.endpoint,
            requests_per_poll=len(self.blocks),
            max_gap=self.max_gap,
            max_gap_mode="auto" if self.auto else "fixed",
            replans=self.replans,
            polls=self.polls,
            overruns=self.overruns,
            failures=dict(self.failures),
            bad_values=dict(self.bad_values),
            connection_drops=self.connection_drops,
            last_failure=self.last_failure,
            last_poll_ms=round(self.last_poll_ms, 3),
        )

    async def run(self) -> None:
        s = self.settings
        client = self.client()
        try:
            due = time.monotonic()
            while True:
                began = time.monotonic()
                readings = await self.poll_once(client)
                self.sink(readings, self.answered_ns)
                self.polls += 1
                if self.auto and self.polls % RETUNE_EVERY_POLLS == 0:
                    self.retune()
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
        """Read every block once; each point yields exactly one reading, good or not. Readings carry the
        wall-clock time of their answer; `answered_ns` is the monotonic time of the poll's first answer,
        the poll's time for durations (so a batch is never younger than any sample in it)."""
        readings: list[Reading] = []
        self.answered_ns = 0
        for block, layout in zip(self.blocks, self._layouts, strict=True):
            connected = client.connected
            if self._had_connection and not connected:
                self.connection_drops += 1
                self._had_connection = False
                log.warning("%s: the device closed the connection; reconnecting", self.name)
            if not connected and time.monotonic() < self._reconnect_at:
                readings += self._failed(block.points, time.time())
                continue
            began = time.perf_counter()
            try:
                values = await client.read(block)
            except ReadFailure as failure:
                if failure.kind is FailureKind.DISCONNECTED and connected:
                    self.connection_drops += 1  # lost during this read
                self._had_connection = client.connected
                self._count(failure)
                if failure.kind is FailureKind.EXCEPTION and len(block.points) > 1 and _bridges(block):
                    self._split(block)
                if failure.kind in (FailureKind.DISCONNECTED, FailureKind.TIMEOUT):
                    self._reconnect_at = time.monotonic() + self._reconnect.next()
                readings += self._failed(block.points, time.time())
                continue
            self._had_connection = True  # it answered
            answered_ns = time.monotonic_ns()
            self.answered_ns = self.answered_ns or answered_ns
            self.costs.add(block.count, time.perf_counter() - began)
            self._reconnect.reset()
            readings += self._decode(block, layout, values, time.time(), answered_ns / 1e9)
        self.answered_ns = self.answered_ns or time.monotonic_ns()
        return readings

    def retune(self) -> None:
        """Auto mode: bridge holes up to what a request costs in registers, as measured so far. Until
        reads of two sizes have been timed, widen the gap to get some (a refused read only adds barriers)."""
        best = self.costs.best_gap()
        if best is None:
            best = min(self.max_gap * 2 + 1, MAX_GAP)
        if best != self.max_gap:
            log.info("%s: max_gap %d -> %d", self.name, self.max_gap, best)
            self.max_gap = best
            self._plan()
            self.replans += 1

    def _plan(self) -> None:
        """The reads, and for each how every point in it is decoded, worked out once per plan."""
        self.blocks = plan_reads(self.settings.register_map(), self.max_gap, self.barriers)
        self._layouts = [tuple(self._layout(p, p.address - b.address) for p in b.points) for b in self.blocks]

    def _layout(
        self, point: Point, offset: int
    ) -> tuple[Point, int, str, bool, tuple[Any, int, float, float] | None]:
        featured = point.channel in self.derived
        if point.is_plain:
            fast = (point.unpacker().unpack_from, 2 * offset, point.scale, point.offset)
            return point, offset, _PLAIN, featured, fast
        return point, offset, _WAVEFORM if point.is_waveform else _OTHER, featured, None

    def _split(self, block: Block) -> None:
        """The device refused a read that spans holes: never bridge into these points again."""
        self.barriers |= {(block.table, p.address) for p in block.points}
        log.warning(
            "%s: %s read %d+%d refused; reading its points separately",
            self.name,
            block.table,
            block.address,
            block.count,
        )
        self._plan()
        self.replans += 1

    def _decode(
        self, block: Block, layout: Layout, values: Sequence[int] | Sequence[bool], ts: float, at: float
    ) -> list[Reading]:
        """Readings stamped `ts` (wall clock); features' windows count on `at` (monotonic s)."""
        packed = b""
        if not block.table.is_bits:
            try:  # one pack per block; plain points then decode straight from it
                packed = struct.pack(f">{len(values)}H", *values)
            except struct.error:
                packed = b""  # a value that is no 16-bit word: every point goes the checked way
        out = []
        device, derived = self.device_id, self.derived
        for point, offset, how, featured, fast in layout:
            value: float | str | None = None
            try:
                if how is _PLAIN and packed:
                    unpack, byte_offset, scale, shift = fast  # type: ignore[misc]  # set for plain points
                    value = unpack(packed, byte_offset)[0] * scale + shift
                elif how is _WAVEFORM:
                    samples = point.decode_samples(values[offset : offset + point.count])
                    out += self._screened(derived.waveform(point.channel, ts, at, samples))
                    continue
                else:
                    value = point.decode(values[offset : offset + point.count])
                quality = Quality.OK
                if is_bad_value(value):  # a float register's NaN or inf, or a scale past float's range
                    quality = Quality.ERROR
                    self.bad_values[point.channel] += 1
            except DecodeError as exc:
                self._count(ReadFailure(FailureKind.BAD_RESPONSE, str(exc)))
                value, quality = None, Quality.ERROR
            out.append(Reading(device, point.channel, value, point.unit, ts, quality))
            if featured and quality is Quality.OK and isinstance(value, float):
                out += self._screened(derived.scalar(point.channel, ts, at, value))
        return out

    def _screened(self, readings: list[Reading]) -> list[Reading]:
        """Derived readings with a value that is no finite number counted (DerivedChannels marks them)."""
        for r in readings:
            if r.quality is Quality.ERROR and r.value is not None:
                self.bad_values[r.channel] += 1
        return readings

    def _failed(self, points: Sequence[Point], ts: float) -> list[Reading]:
        return [reading for p in points for reading in self.derived.failed(p.channel, ts)]

    def _count(self, failure: ReadFailure) -> None:
        self.failures[str(failure.kind)] += 1
        if str(failure) != self.last_failure:
            log.warning("%s: %s", self.name, failure)
        self.last_failure = str(failure)
