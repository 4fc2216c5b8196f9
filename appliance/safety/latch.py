"""The stop output's logic: energized only while the runtime is healthy, latched on a trip, reset only by
request and only when no cause remains. No I/O beyond the line itself: the supervisor feeds it."""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from hal.gpio import OutputLine

HISTORY = 50


class State(enum.StrEnum):
    STARTING = "starting"  # de-energized until the first healthy heartbeat
    OK = "ok"  # energized
    TRIPPED = "tripped"  # de-energized and latched until a reset


@dataclass(frozen=True, slots=True)
class Change:
    """A trip or a reset: what, why, when (wall clock) and how long from the cause to the line change."""

    id: str
    kind: str  # "trip" or "reset"
    reason: str
    source: str  # request, heartbeat, disconnect, condition, restart
    ts: float
    cause_ns: int  # CLOCK_MONOTONIC of the cause
    line_ns: int  # CLOCK_MONOTONIC right after the line changed
    line_changed: bool

    @property
    def latency_ms(self) -> float:
        return (self.line_ns - self.cause_ns) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "latency_ms": round(self.latency_ms, 4)}


class StopLatch:
    def __init__(self, line: OutputLine, deadline_ns: int, latched: str | None = None) -> None:
        self.line = line
        self.deadline_ns = deadline_ns
        self.state = State.TRIPPED if latched else State.STARTING
        self.reason = latched or "waiting for the first healthy heartbeat"
        self.since = time.time()
        self.last_beat_ns: int | None = None
        self.causes: tuple[str, ...] = ()
        self.history: deque[Change] = deque(maxlen=HISTORY)
        self.counts = {"trips": 0, "resets": 0, "refused_resets": 0}
        self._epoch = f"{time.time_ns():x}"

    def heartbeat(self, causes: tuple[str, ...], now_ns: int) -> Change | None:
        """The runtime is alive; `causes` are its conditions that forbid running (empty when healthy)."""
        self.last_beat_ns, self.causes = now_ns, causes
        if causes and self.state is State.OK:
            return self.trip("; ".join(causes), now_ns, "condition")
        if self.state is State.STARTING:  # not latched yet: energize once the runtime reports no cause
            if causes:
                self.reason = "waiting for the causes to clear: " + "; ".join(causes)
            else:
                self._energize()
                self.reason = ""
        return None

    def trip(self, reason: str, cause_ns: int, source: str) -> Change | None:
        """De-energize first, then book-keep; None if it was already tripped (nothing changed)."""
        if self.state is State.TRIPPED:
            return None
        changed = self.line.value
        if changed:
            self.line.set(False)
        line_ns = time.monotonic_ns()
        self.state, self.reason, self.since = State.TRIPPED, reason, time.time()
        self.counts["trips"] += 1
        return self._record("trip", reason, source, cause_ns, line_ns, changed)

    def reset(self, who: str, now_ns: int) -> tuple[bool, str]:
        """(accepted, why): refused while the runtime is not heartbeating or reports a cause."""
        if self.state is State.OK:
            return True, "nothing to reset: the line is energized"
        if self.state is State.STARTING:
            self.counts["refused_resets"] += 1
            return False, f"refused: {self.reason}"
        if not self.healthy(now_ns):
            self.counts["refused_resets"] += 1
            return False, "refused: no healthy heartbeat from the runtime"
        if self.causes:
            self.counts["refused_resets"] += 1
            return False, "refused: the cause persists: " + "; ".join(self.causes)
        self._energize()
        self.counts["resets"] += 1
        self._record("reset", f"reset by {who}", "request", now_ns, time.monotonic_ns(), True)
        self.reason = ""
        return True, "reset: line energized"

    def check(self, now_ns: int) -> Change | None:
        """A trip if the heartbeat is late beyond the deadline."""
        due = self.due_ns()
        if due is not None and now_ns >= due:
            late_ms = (now_ns - (self.last_beat_ns if self.last_beat_ns is not None else now_ns)) / 1e6
            return self.trip(f"runtime heartbeat late ({late_ms:.0f} ms)", due, "heartbeat")
        return None

    def due_ns(self) -> int | None:
        """When the line drops unless a heartbeat comes first; None if it is not energized."""
        if self.state is not State.OK or self.last_beat_ns is None:
            return None
        return self.last_beat_ns + self.deadline_ns

    def healthy(self, now_ns: int) -> bool:
        return self.last_beat_ns is not None and now_ns - self.last_beat_ns < self.deadline_ns

    def snapshot(self, changes: int = 10) -> dict[str, Any]:
        """The state, with the latest `changes` trips and resets (replies stay small)."""
        return {
            "state": str(self.state),
            "reason": self.reason,
            "since": self.since,
            "energized": self.line.value,
            "causes": list(self.causes),
            **self.counts,
            "history": [c.to_dict() for c in list(self.history)[-changes:]],
        }

    def _energize(self) -> None:
        self.line.set(True)
        self.state, self.since = State.OK, time.time()

    def _record(
        self, kind: str, reason: str, source: str, cause_ns: int, line_ns: int, changed: bool
    ) -> Change:
        number = self.counts["trips"] + self.counts["resets"]
        change = Change(
            f"{self._epoch}-{number}", kind, reason, source, time.time(), cause_ns, line_ns, changed
        )
        self.history.append(change)
        return change
