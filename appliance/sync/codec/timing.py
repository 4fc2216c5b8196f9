"""Timestamp columns: readings' shared poll timestamps and per-channel predictions, events' plain steps."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from statistics import median_low

from appliance.sync.codec.wire import LIMIT, BatchFormatError, Reader, Writer, zigzag

SAME, NEW = 0, 1  # a reading's timestamp flag: the previous row's timestamp, or a new one with a residual


class _Clock:
    """What both ends know of each channel's timestamps so far, and the prediction made from it."""

    def __init__(self, periods: Sequence[int]) -> None:
        self.periods = periods
        self.last: dict[int, int] = {}  # channel -> its latest timestamp
        self.step: dict[int, int] = {}  # channel -> its latest row's step from the row before
        self.previous = 0  # the previous row's timestamp; 0 before the first

    def predict(self, channel: int, periodic: bool) -> int:
        """Periodic: the channel's last timestamp plus its period. Otherwise the channel follows another
        device's row (same poll, same bus): the previous row plus the channel's last step."""
        if periodic and channel in self.last:
            return self.last[channel] + self.periods[channel]
        return self.previous + self.step.get(channel, 0)

    def advance(self, channel: int, stamp: int, first: bool) -> None:
        self.step[channel] = 0 if first else stamp - self.previous
        self.last[channel] = self.previous = stamp


def encode_times(stamps: list[int], channels: list[int], count: int) -> tuple[list[int], Writer]:
    """Each channel's period (0: follow the previous row) chosen by the bits its residuals take, and the
    flag and residual columns; the residuals in channel order, where like ones sit together."""
    gaps: list[list[int]] = [[] for _ in range(count)]
    last: dict[int, int] = {}
    for channel, stamp in zip(channels, stamps, strict=True):
        if channel in last and stamp > last[channel]:
            gaps[channel].append(stamp - last[channel])
        last[channel] = stamp
    candidates = [median_low(gap) if gap else 0 for gap in gaps]
    cost = [[0, 0] for _ in range(count)]
    clock = _Clock(candidates)
    for row, (channel, stamp) in enumerate(zip(channels, stamps, strict=True)):
        if row == 0 or stamp != clock.previous:
            for periodic in (False, True):
                cost[channel][periodic] += zigzag(stamp - clock.predict(channel, periodic)).bit_length()
        clock.advance(channel, stamp, row == 0)
    periods = [period if cost[c][True] < cost[c][False] else 0 for c, period in enumerate(candidates)]
    flags, clock = bytearray(), _Clock(periods)
    residuals: list[list[int]] = [[] for _ in range(count)]
    for row, (channel, stamp) in enumerate(zip(channels, stamps, strict=True)):
        if row and stamp == clock.previous:
            flags.append(SAME)
        else:
            flags.append(NEW)
            residuals[channel].append(stamp - clock.predict(channel, periods[channel] > 0))
        clock.advance(channel, stamp, row == 0)
    column = Writer(flags)
    column.numbers([residual for channel in residuals for residual in channel])
    return periods, column


def decode_times(body: Reader, channels: list[int], periods: list[int]) -> list[float]:
    flags = body.take(len(channels))
    if max(flags) > NEW:
        raise body.fail(f"timestamp flag {max(flags)} is not 0 or 1")
    counts = [0] * len(periods)
    for channel, flag in zip(channels, flags, strict=True):
        counts[channel] += flag
    column = iter(body.numbers(sum(counts), "timestamp residuals"))
    residuals = [list(itertools.islice(column, count))[::-1] for count in counts]  # popped from the end
    clock, times = _Clock(periods), []
    for row, (channel, flag) in enumerate(zip(channels, flags, strict=True)):
        stamp = clock.previous
        if flag == NEW:
            stamp = clock.predict(channel, periods[channel] > 0) + residuals[channel].pop()
            if abs(stamp) > LIMIT:
                raise BatchFormatError(f"body: row {row} has a timestamp of {stamp} µs, beyond ±2**53")
        clock.advance(channel, stamp, row == 0)
        times.append(stamp / 1_000_000)
    return times


def encode_steps(stamps: list[int]) -> Writer:
    """Events: each timestamp as its step from the one before (from 0 for the first)."""
    column, previous = Writer(), 0
    for stamp in stamps:
        column.zigzag(stamp - previous)
        previous = stamp
    return column


def decode_steps(body: Reader, count: int) -> list[float]:
    stamp, times = 0, []
    for _ in range(count):
        if abs(stamp := stamp + body.zigzag()) > LIMIT:
            raise body.fail(f"timestamp {stamp} µs is beyond ±2**53")
        times.append(stamp / 1_000_000)
    return times
