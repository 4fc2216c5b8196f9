"""A sliding time window over one scalar channel: mean, min, max, RMS and a least-squares rate of change."""

from __future__ import annotations

import math
from collections import deque

# Beyond this magnitude v*v or t*v can overflow the running sums; such a value forces a recount on leaving.
_HUGE = 1e150


def _real(x: float) -> float | None:
    """None for NaN, which would make every comparison in a rule quietly false; inf passes."""
    return None if math.isnan(x) else x


class RollingWindow:
    """The (ts, value) pairs of the last `seconds`, as the window (newest_ts - seconds, newest_ts].

    Samples may come at irregular times. Every statistic is kept as a running sum, and min/max as monotonic
    queues, so an update costs O(1) amortized. Times and values enter the sums relative to an origin sample,
    because wall-clock seconds squared would leave the slope with no precision. Once the origin is a window
    length old, it moves to the newest sample and the sums are recounted: by then every sample counted at
    the last recount has left, so each sample is recounted at most once, and the rounding that adding and
    subtracting leaves behind is cleared.
    """

    def __init__(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"window seconds must be a positive number, got {seconds!r}")
        self.seconds = seconds
        self._samples: deque[tuple[float, float]] = deque()
        self._lows: deque[tuple[float, float]] = deque()  # values rising from the front: front is the min
        self._highs: deque[tuple[float, float]] = deque()  # values falling from the front: front is the max
        self._t0 = 0.0
        self._v0 = 0.0
        self._sums = [0.0] * 5  # sum of t, t*t, u, t*u, v*v with t = ts - t0, u = value - v0

    def __len__(self) -> int:
        return len(self._samples)

    def clear(self) -> None:
        self._samples.clear()
        self._lows.clear()
        self._highs.clear()
        self._sums = [0.0] * 5

    def add(self, ts: float, value: float) -> bool:
        """Take one sample; False (and nothing changes) if ts or value is NaN or infinite."""
        # plain floats: numpy scalars would turn an overflow in the sums into a RuntimeWarning
        ts, value = float(ts), float(value)
        if not (math.isfinite(ts) and math.isfinite(value)):
            return False
        if self._samples and ts < self._samples[-1][0]:
            # Time went back (the runtime feeds monotonic times, so only a caller on the wall clock): the
            # old window no longer lines up with the new times, and dropping it beats freezing the channel.
            self.clear()
        self._evict(ts - self.seconds)
        if not self._samples:
            self._t0, self._v0 = ts, value
            self._sums = [0.0] * 5
        elif ts - self._t0 > self.seconds:
            self._recount(ts, value)
        self._accumulate(ts, value, 1.0)
        self._samples.append((ts, value))
        while self._lows and self._lows[-1][1] >= value:
            self._lows.pop()
        self._lows.append((ts, value))
        while self._highs and self._highs[-1][1] <= value:
            self._highs.pop()
        self._highs.append((ts, value))
        return True

    @property
    def mean(self) -> float | None:
        n = len(self._samples)
        return _real(self._v0 + self._sums[2] / n) if n else None

    @property
    def min(self) -> float | None:
        return self._lows[0][1] if self._lows else None

    @property
    def max(self) -> float | None:
        return self._highs[0][1] if self._highs else None

    @property
    def rms(self) -> float | None:
        n = len(self._samples)
        if not n or math.isnan(self._sums[4]):
            return None
        return math.sqrt(max(self._sums[4], 0.0) / n)  # rounding can leave a sum of squares just below 0

    @property
    def rate_of_change(self) -> float | None:
        """Least-squares slope of value over time, in units per second; None below 2 samples or 0 s span."""
        n = len(self._samples)
        if n < 2 or self._samples[-1][0] <= self._samples[0][0]:
            return None
        st, stt, su, stu, _ = self._sums
        spread = stt - st * st / n
        if not spread > 0:
            return None
        return _real((stu - st * su / n) / spread)

    def _accumulate(self, ts: float, value: float, sign: float) -> None:
        t, u = ts - self._t0, value - self._v0
        sums = self._sums
        sums[0] += sign * t
        sums[1] += sign * t * t
        sums[2] += sign * u
        sums[3] += sign * t * u
        sums[4] += sign * value * value

    def _evict(self, cutoff: float) -> None:
        recount = False
        samples = self._samples
        while samples and samples[0][0] <= cutoff:
            ts, value = samples.popleft()
            self._accumulate(ts, value, -1.0)
            recount = recount or abs(value) > _HUGE  # its inf in the sums would stay as inf - inf = NaN
        for queue in (self._lows, self._highs):
            while queue and queue[0][0] <= cutoff:
                queue.popleft()
        if recount and samples:
            self._recount(*samples[-1])

    def _recount(self, t0: float, v0: float) -> None:
        """Move the origin to (t0, v0) and rebuild the sums; costs one pass over the window."""
        self._t0, self._v0 = t0, v0
        self._sums = [0.0] * 5
        for ts, value in self._samples:
            self._accumulate(ts, value, 1.0)
