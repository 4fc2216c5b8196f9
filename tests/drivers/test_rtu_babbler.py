"""A babbling slave on the bench's paced RS-485 line (random bytes, unasked, 30% of the line's time, never
3.5 characters of silence) next to three healthy ones: the master skips and counts the garbage, bounds its
wait for a quiet line, and the healthy slaves keep their poll rate (bench perf's
healthy_poll_rate_with_babbler, in its quick form)."""

from __future__ import annotations

import pytest

from bench.perf.babbler import GOAL, HEALTHY, POLL_INTERVAL_S, healthy_poll_rate_with_babbler


@pytest.mark.realtime("a babbling RTU slave costs the healthy ones on its line < 10% of their poll rate")
def test_a_babbling_slave_does_not_starve_its_neighbours() -> None:
    result = healthy_poll_rate_with_babbler(quick=True)
    figure = result["figures"]["healthy_poll_rate_with_babbler"]
    # without the babbler the line has room: every healthy slave is polled on its interval
    assert figure["baseline"] >= 0.9 * len(HEALTHY) / POLL_INTERVAL_S, figure
    assert result["healthy_poll_rate_with_babbler"] >= GOAL, figure
    assert figure["garbage_bytes"] > 1000, figure  # the babble was on the line, counted and skipped
    assert not {name for name in figure["failures"] if name != "rtu4"}, figure
