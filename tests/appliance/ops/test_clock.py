"""The clock watch: a step of the wall clock against the monotonic one is one `clock.step` event; NTP's slow
slewing and a late tick are none."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from appliance.ops.clock import ClockWatch
from appliance.records import Event, Severity


class Clocks:
    """A wall clock and a monotonic one that the test moves."""

    def __init__(self) -> None:
        self.wall, self.mono = 1_800_000_000.0, 5000.0

    def tick(self, seconds: float, step: float = 0.0) -> None:
        self.mono += seconds
        self.wall += seconds + step


def watch() -> tuple[ClockWatch, Clocks, list[Event]]:
    clocks, recorded = Clocks(), list[Event]()

    def record(events: Sequence[Event]) -> None:
        recorded.extend(events)

    return ClockWatch(record, lambda: clocks.wall, lambda: clocks.mono), clocks, recorded


def test_a_step_forward_and_one_back_are_each_one_event() -> None:
    w, clocks, recorded = watch()
    clocks.tick(1.0)
    assert w.check() is None
    clocks.tick(1.0, step=6 * 3600.0)
    event = w.check()
    assert event is not None and recorded == [event]
    assert (event.kind, event.severity, event.source) == ("clock.step", Severity.WARNING, "clock")
    assert event.ts == clocks.wall  # recorded at the new time
    assert event.data == {"step_s": 21600.0, "before": clocks.wall - 21600.0, "after": clocks.wall}
    assert "forward by 6.0 h" in event.message and "2027-01-15T08:00:02+00:00" in event.message
    clocks.tick(1.0)
    assert w.check() is None  # the new time is the clock's time now
    clocks.tick(1.0, step=-3 * 86400.0)
    back = w.check()
    assert back is not None and back.data["step_s"] == -3 * 86400.0 and "back by 3.0 days" in back.message
    assert w.status().steps == 2 and w.status().model_dump()["last_step"] == back.data


def test_slewing_and_a_late_tick_are_no_step() -> None:
    w, clocks, recorded = watch()
    for _ in range(100):
        clocks.tick(1.0, step=0.0005)  # NTP slews at most 500 ppm
        assert w.check() is None
    clocks.tick(30.0)  # the loop was blocked for half a minute: both clocks moved alike
    clocks.tick(1.0, step=0.9)
    assert w.check() is None and recorded == []


def test_the_service_watches_the_real_clocks_without_a_false_step() -> None:
    recorded: list[Event] = []

    async def body() -> None:
        w = ClockWatch(recorded.extend)
        await w.start()
        await asyncio.sleep(1.2)
        await w.stop()
        assert w.status().running is False and w.status().steps == 0

    began = time.monotonic()
    asyncio.run(body())
    assert recorded == [] and time.monotonic() - began < 3
