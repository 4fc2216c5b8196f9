"""Loaded (through PYTHONPATH) by every Python process the bench runs under libfaketime: Debian's libfaketime
0.9.10 breaks clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) when the monotonic clock is not faked
(wolfcw/libfaketime#426), which is how Python 3.11 sleeps, so time.sleep waits in select() instead."""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)  # a relative timeout, which libfaketime leaves alone


time.sleep = _sleep  # type: ignore[assignment]
