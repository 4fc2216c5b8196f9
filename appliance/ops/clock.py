"""The wall clock watched against the monotonic one: a step of it is recorded as a `clock.step` event.

A box without a real-time clock boots with a stale date until NTP steps it, by hours or days, forward or
back; a person may set it by hand. Nothing in the box measures a duration on the wall clock (rules, stale
inputs, windows, backoffs and hold times run on the monotonic clock), so a step changes only the time
stamped on what is recorded from then on, and the event says where the jump in those stamps comes from.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Sequence

from appliance.records import Event, Severity
from appliance.service import Service
from appliance.status.service import ClockStatus, ClockStep

log = logging.getLogger(__name__)

EventSink = Callable[[Sequence[Event]], None]
TICK_S = 1.0
# NTP slews small errors at 0.5 ms/s at most; anything near a second between two ticks is a step.
STEP_S = 1.0


def _utc(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


class ClockWatch(Service):
    """Compares wall-clock minus monotonic time once a second; a change of more than STEP_S is a step."""

    name = "clock"

    def __init__(
        self,
        record: EventSink,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.record, self.wall, self.monotonic = record, wall, monotonic
        self.offset = wall() - monotonic()
        self.steps = 0
        self.last_step: dict[str, float] | None = None

    async def open(self) -> None:
        self.offset = self.wall() - self.monotonic()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.check()

    def check(self) -> Event | None:
        """Look once; a step is recorded (and returned)."""
        mono = self.monotonic()
        wall = self.wall()
        offset = wall - mono
        step, self.offset = offset - self.offset, offset
        if abs(step) <= STEP_S:
            return None
        before = wall - step  # what the clock would read now had it not stepped
        self.steps += 1
        self.last_step = {"step_s": round(step, 3), "before": round(before, 3), "after": round(wall, 3)}
        way = "forward" if step > 0 else "back"
        message = f"the wall clock stepped {way} by {_span(step)}: {_utc(before)} became {_utc(wall)}"
        log.warning("%s", message)
        event = Event(wall, "clock.step", Severity.WARNING, "clock", message, dict(self.last_step))
        self.record([event])
        return event

    def status(self) -> ClockStatus:
        step = ClockStep(**self.last_step) if self.last_step is not None else None
        return ClockStatus(**self.basics(), steps=self.steps, last_step=step)
