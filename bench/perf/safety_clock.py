"""Clock faults under the safety chain (needs libfaketime): the wall clock of the runtime and its bench world
stepped 6 h forward or back: no false trip; then a serial sensor silenced through the bench's fault API and
the clock stepped back to the true time at once: its stale rule must still trip the line in time."""

from __future__ import annotations

import time
from pathlib import Path

from bench.harness import faketime
from bench.harness.runtime import credential, start_runtime, stop_runtime
from bench.harness.worlds import bench_world
from bench.perf.line_watch import control, down_within, failed, held, held_down, outcome, reset, tripped

CLOCK_SAFETY = """
[safety]
trip_on_qc = false
stop_line = { gpio = "mock", line = "STOP" }

[[safety.rules]]
type = "stale"
name = "air sensor silent"
sensor = "air.temperature"
after_s = 2.0
"""


def clock_world(folder: Path) -> Path:
    """examples/bench.toml with one critical rule: the serial air sensor must not fall silent."""
    config = folder / "clock.toml"
    config.write_text(bench_world(CLOCK_SAFETY))
    return config


def run(runs: int, folder: Path) -> dict[str, list[bool]]:
    """The wall clock stepped under the bench world: no false trip for 3 s, then the air sensor silenced
    through the bench's fault API must still trip the line in time, and it stays down until a reset."""
    journal, offset = folder / "clock.journal", folder / "clock.offset"
    faketime.step(offset, 0)
    runtime = start_runtime(clock_world(folder), folder / "clock-data", journal, faketime.environment(offset))
    results: dict[str, list[bool]] = {"+6h": [], "-6h": []}
    try:
        token = credential(runtime)

        def once(hours: int) -> bool:
            """Step, no false trip; then the sensor falls silent and the clock steps back at once: its
            stale rule must still trip (a step back must not make an old value look fresh)."""
            if not reset(runtime, token, journal, timeout=20):
                return failed(runtime, "clock: the line did not come up before the step")
            faketime.step(offset, hours * 3600)
            try:
                time.sleep(1.5)  # the step is seen within a second
                if not held(journal, 1, 3.0):
                    return failed(runtime, f"clock {hours:+d} h: the line dropped after the step")
                control("serial", {"target": "air", "action": "silence"})
                silenced = time.monotonic()
                faketime.step(offset, 0)
                if not down_within(journal, silenced, 2.0 + 1.5):  # after_s, the step seen, a heartbeat
                    return failed(runtime, f"clock {hours:+d} h: a silent input did not trip in time")
                if not held_down(journal, 1.0, tripped(runtime)):
                    return failed(runtime, f"clock {hours:+d} h: the line came back without a reset")
            finally:
                control("serial", {"target": "air", "action": "resume"})
                faketime.step(offset, 0)
            return reset(runtime, token, journal, timeout=20) or failed(runtime, "clock: no reset after")

        for _ in range(runs):
            for name, hours in (("+6h", 6), ("-6h", -6)):
                results[name].append(outcome(lambda: once(hours)))  # noqa: B023 - called at once
    finally:
        stop_runtime(runtime)
    return results
