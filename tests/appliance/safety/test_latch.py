"""The stop latch: energized only while healthy, latched on a trip, reset only when the cause is gone."""

from __future__ import annotations

from appliance.safety.latch import State, StopLatch
from hal.gpio import GpioLineSettings
from hal.gpio.mock import MockChip

MS = 1_000_000
DEADLINE = 100 * MS


def latch(latched: str | None = None) -> tuple[StopLatch, MockChip]:
    chip = MockChip()
    line = chip.output(GpioLineSettings("STOP"))
    return StopLatch(line, DEADLINE, latched), chip


def test_the_line_stays_down_until_the_first_healthy_heartbeat() -> None:
    stop, chip = latch()
    assert stop.state is State.STARTING and chip.level("STOP") == 0
    stop.heartbeat(("camera stale",), 1 * MS)  # a runtime with a cause does not energize it
    assert stop.state is State.STARTING and chip.level("STOP") == 0
    assert stop.reset("admin", 1 * MS) == (False, "refused: waiting for the causes to clear: camera stale")
    stop.heartbeat((), 2 * MS)
    assert stop.snapshot()["state"] == "ok" and chip.level("STOP") == 1


def test_a_trip_drops_the_line_latches_and_records_its_latency() -> None:
    stop, chip = latch()
    stop.heartbeat((), 1 * MS)
    change = stop.trip("guard open", cause_ns=5 * MS, source="request")
    assert change is not None and change.line_changed and change.kind == "trip"
    assert chip.level("STOP") == 0 and stop.state is State.TRIPPED and stop.reason == "guard open"
    assert change.line_ns >= chip.history("STOP")[-1].t_ns
    assert stop.trip("again", 6 * MS, "request") is None  # already down: nothing changes
    stop.heartbeat((), 7 * MS)  # heartbeats alone never clear a latched trip
    assert chip.level("STOP") == 0


def test_a_late_heartbeat_trips_at_the_deadline() -> None:
    stop, chip = latch()
    stop.heartbeat((), 0)
    assert stop.due_ns() == DEADLINE
    assert stop.check(DEADLINE - 1) is None and chip.level("STOP") == 1
    change = stop.check(DEADLINE + 3 * MS)
    assert change is not None and change.source == "heartbeat" and change.cause_ns == DEADLINE
    assert "heartbeat late (103 ms)" in change.reason and chip.level("STOP") == 0
    assert stop.due_ns() is None


def test_a_cause_in_a_heartbeat_trips_and_blocks_the_reset_until_it_clears() -> None:
    stop, chip = latch()
    stop.heartbeat((), 0)
    change = stop.heartbeat(("oil too hot: 91 above 80",), 1 * MS)
    assert change is not None and change.source == "condition" and chip.level("STOP") == 0
    accepted, why = stop.reset("admin", 2 * MS)
    assert not accepted and "cause persists: oil too hot" in why and chip.level("STOP") == 0
    stop.heartbeat((), 3 * MS)
    accepted, why = stop.reset("admin", 4 * MS)
    assert accepted and chip.level("STOP") == 1 and stop.state is State.OK
    assert stop.counts == {"trips": 1, "resets": 1, "refused_resets": 1}
    assert [c.kind for c in stop.history] == ["trip", "reset"]
    assert len({c.id for c in stop.history}) == 2


def test_a_reset_without_a_fresh_heartbeat_is_refused() -> None:
    stop, chip = latch()
    stop.trip("manual", 0, "request")
    assert stop.reset("admin", 1 * MS) == (False, "refused: no healthy heartbeat from the runtime")
    stop.heartbeat((), 2 * MS)
    assert stop.reset("admin", 2 * MS + DEADLINE)[0] is False  # the heartbeat is too old by now
    assert chip.level("STOP") == 0


def test_a_latch_restored_after_a_restart_needs_a_reset() -> None:
    stop, chip = latch(latched="guard open")
    assert stop.state is State.TRIPPED and stop.reason == "guard open"
    stop.heartbeat((), 1 * MS)
    assert chip.level("STOP") == 0
    assert stop.reset("admin", 2 * MS)[0] and chip.level("STOP") == 1


def test_an_active_low_line_is_energized_at_0_volts() -> None:
    chip = MockChip()
    from hal.gpio import ActiveLevel

    line = chip.output(GpioLineSettings("STOP", active_level=ActiveLevel.LOW))
    stop = StopLatch(line, DEADLINE)
    assert chip.level("STOP") == 1  # de-energized
    stop.heartbeat((), 0)
    assert chip.level("STOP") == 0
