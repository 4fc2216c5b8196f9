"""Measures the uplink from completed transfers and picks the link tier, with hysteresis and a hold time."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from appliance.sync.tiers import KIB, MIB, LinkTier, TierThresholds

GOODPUT_ALPHA = 0.3  # weight of a new goodput sample: a real change shows within a few samples
RTT_ALPHA = 0.125  # TCP's weight for its smoothed RTT
RTT_WINDOW = 20  # RTT samples the minimum is taken over
MIN_GOODPUT_BYTES = 16 * KIB  # smaller transfers are mostly latency on any link worth measuring
MIN_TRANSFER_S = 1e-3  # floor of a transfer's time beyond the RTT, against dividing by noise
FAILURES_PER_STEP = 3  # failures in a row that take the tier one step down
PROBE_FIRST, PROBE_MIN, PROBE_MAX = 64 * KIB, 32 * KIB, 1 * MIB
PROBE_S = 0.25  # a probe lasting this long at the estimate dwarfs RTTs and a shaper's burst allowance
QUEUEING = 4.0  # smoothed RTT over the minimum past this: transfers queue, the link is slower than thought
METERED_PROBE_S = 900.0  # a metered link pays for probes: only this rarely, and the smallest


def _ewma(smoothed: float | None, sample: float, alpha: float) -> float:
    return sample if smoothed is None else smoothed + alpha * (sample - smoothed)


class LinkMeter:
    """Goodput and RTT from the transfers the transport completes, and the link tier they make.

    The smoothed goodput gives a level through `TierThresholds.level` (hysteresis); the hints cap it
    (`metered` below UNMETERED, `max_tier`). A new tier applies once it has been wanted for `hold_s`;
    OFFLINE applies at once.

    Reconnecting: an estimate whose last goodput sample is younger than `probe_interval_s` (we would not
    probe yet either) still stands and its tier applies at once, so a short drop costs no hold time at
    MINIMAL. An older estimate is forgotten, as the link may be another one now (a failover to cellular):
    the tier starts at MINIMAL and a probe is due at once.

    Failures: every `FAILURES_PER_STEP` failures in a row while connected lower the tier one step at once,
    never below MINIMAL, by putting a ceiling over it. A completed transfer ends the streak; the next goodput
    sample lifts the ceiling, and the tier climbs back through the hold time. A disconnect forgets streak
    and ceiling alike: those failures were the drop coming.
    """

    def __init__(
        self,
        thresholds: TierThresholds,
        metered: bool,
        link_kind: str | None = None,
        max_tier: LinkTier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_tier is LinkTier.OFFLINE:
            raise ValueError("max_tier offline would never send anything")
        self.thresholds = thresholds
        self.metered = metered
        self.link_kind = link_kind
        self.max_tier = max_tier
        self._clock = clock
        self._lock = threading.Lock()
        self._connected = False
        self._tier = LinkTier.OFFLINE
        self._since = clock()
        self._wanted: LinkTier | None = None  # a tier waiting out the hold time, since _wanted_since
        self._wanted_since = 0.0
        self._failures = self._streak = 0
        self._ceiling = LinkTier.UNMETERED  # lowered by failures
        self._forget()

    def _forget(self) -> None:
        self._level = LinkTier.MINIMAL  # what the goodput says, with its hysteresis
        self._goodput: float | None = None  # Mbit/s, smoothed
        self._goodput_at = self._probe_at = -math.inf
        self._goodput_took = 0.0  # how long the last measured transfer took: the RTT cannot be longer
        self._samples = 0
        self._srtt: float | None = None
        self._rtts: deque[float] = deque(maxlen=RTT_WINDOW)

    def connected(self) -> None:
        with self._lock:
            now = self._clock()
            if self._connected:
                return
            self._connected = True
            if now - self._goodput_at >= self.thresholds.probe_interval_s:
                self._forget()
            self._set(self._target(), now)

    def disconnected(self) -> None:
        with self._lock:
            self._connected = False
            self._streak, self._ceiling = 0, LinkTier.UNMETERED  # the failures were the drop coming
            self._set(LinkTier.OFFLINE, self._clock())

    def transfer(self, nbytes: int, seconds: float) -> None:
        """A completed transfer: `nbytes` acknowledged `seconds` after its first byte left. It is a goodput
        sample if it is not small and carried more than the link does in one RTT, else an RTT sample."""
        with self._lock:
            now = self._clock()
            self._streak = 0
            rtt_min = min(self._rtts, default=0.0)  # none yet: the RTT counts as transfer time, erring low
            one_rtt = (self._goodput or 0.0) * 1e6 / 8 * rtt_min
            if nbytes >= max(MIN_GOODPUT_BYTES, one_rtt):
                mbit = nbytes * 8 / max(seconds - rtt_min, MIN_TRANSFER_S) / 1e6
                self._goodput = _ewma(self._goodput, mbit, GOODPUT_ALPHA)
                self._goodput_at, self._goodput_took = now, seconds
                self._samples += 1
                self._level = self.thresholds.level(self._goodput, self._level)
                self._ceiling = LinkTier.UNMETERED
            else:
                self._rtts.append(seconds)
                self._srtt = _ewma(self._srtt, seconds, RTT_ALPHA)
            self._settle(now)

    def failure(self) -> None:
        """A transfer timed out or failed."""
        with self._lock:
            self._failures += 1
            if not self._connected:
                return
            self._streak += 1
            if self._streak % FAILURES_PER_STEP == 0:
                # at once, not after the hold time: timeouts say this tier asks more than the link gives
                self._ceiling = LinkTier(max(self._tier - 1, LinkTier.MINIMAL))
                self._set(self._ceiling, self._clock())

    def tier(self) -> LinkTier:
        with self._lock:
            self._settle(self._clock())
            return self._tier

    def probe_size(self) -> int | None:
        """Bytes of filler to send now to measure the link, or None. An answer counts as the probe sent, so
        the next is due an interval later even if this one is never acknowledged."""
        with self._lock:
            now = self._clock()
            interval = METERED_PROBE_S if self.metered else self.thresholds.probe_interval_s
            if not self._connected or now - max(self._goodput_at, self._probe_at) < interval:
                return None
            self._probe_at = now
            if self.metered:
                return PROBE_MIN
            if self._goodput is None:
                return PROBE_FIRST
            rtt_min = min(self._rtts, default=None)
            if rtt_min is not None and self._srtt is not None and self._srtt > QUEUEING * max(rtt_min, 1e-3):
                return PROBE_MIN  # a probe sized for the old estimate could hold a slower link for seconds
            return int(min(max(self._goodput * 1e6 / 8 * PROBE_S, PROBE_MIN), PROBE_MAX))

    def status(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            self._settle(now)
            return {
                "tier": self._tier.label,
                "goodput_mbit": None if self._goodput is None else round(self._goodput, 3),
                "rtt_ms": None if self._srtt is None else round(self._srtt * 1000, 3),
                "samples": self._samples,
                "since": round(now - self._since, 3),
                "metered": self.metered,
                "link": self.link_kind,
                "failures": self._failures,
            }

    def _target(self) -> LinkTier:
        if not self._connected:
            return LinkTier.OFFLINE
        level = LinkTier.UNMETERED if self._level is LinkTier.NORMAL and not self.metered else self._level
        return min(level, self._ceiling, self.max_tier or LinkTier.UNMETERED)

    def _settle(self, now: float) -> None:
        target = self._target()
        if target == self._tier:
            self._wanted = None
            return
        if target != self._wanted:
            self._wanted, self._wanted_since = target, now
        if now - self._wanted_since >= self.thresholds.hold_s:
            self._set(target, now)

    def _set(self, tier: LinkTier, now: float) -> None:
        if tier != self._tier:
            self._tier, self._since = tier, now
        self._wanted = None
