"""Backoff: the delays every retry loop of the drivers and the runtime waits."""

from __future__ import annotations

import pytest

from drivers.backoff import Backoff


def test_delays_double_up_to_the_cap_and_start_afresh_on_reset() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.upcoming_s == 0.5
    assert backoff.next() == 0.5


def test_a_try_that_ran_long_starts_afresh() -> None:
    backoff = Backoff(1.0, 8.0, fresh_after_s=80.0)
    assert [backoff.next(ran_s=0.1) for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff.next(ran_s=80.0) == 8.0  # not longer than the threshold: still the longest wait
    assert backoff.next(ran_s=81.0) == 1.0  # ran well for a long while
    assert backoff.next() == 2.0


def test_a_first_delay_above_the_cap_is_waited_once() -> None:
    # the poller's first retry waits one poll interval, which may be longer than the cap
    backoff = Backoff(60.0, 30.0)
    assert [backoff.next() for _ in range(3)] == [60.0, 30.0, 30.0]


@pytest.mark.parametrize(("initial_s", "max_s"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_delays_must_be_positive(initial_s: float, max_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Backoff(initial_s, max_s)
