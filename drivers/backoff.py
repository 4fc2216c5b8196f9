"""Exponential backoff: how long to wait before the next try at something that keeps failing (a port
that will not open, a device that is gone, an upstream that refuses, a service that crashes).

Every retry loop of the drivers and the runtime takes its delays from here, so they all grow the same
way: the first wait is `initial_s`, each one after doubles, up to `max_s`; a success starts afresh.
"""

from __future__ import annotations


class Backoff:
    """The delays of one retry loop. Not thread-safe: one loop owns it."""

    def __init__(self, initial_s: float, max_s: float, fresh_after_s: float | None = None) -> None:
        # `fresh_after_s`: a try that ran this long before it failed counts as a success (a service that
        # ran well for an hour and then crashed is restarted quickly, not after the longest wait)
        if initial_s <= 0 or max_s <= 0:
            raise ValueError(f"backoff delays must be positive, got {initial_s} and {max_s}")
        self.initial_s, self.max_s, self.fresh_after_s = initial_s, max_s, fresh_after_s
        self._next = initial_s

    @property
    def upcoming_s(self) -> float:
        """The delay the next call to `next()` returns (unless the try ran long enough to start afresh)."""
        return self._next

    def next(self, ran_s: float = 0.0) -> float:
        """The delay to wait now, after a failed try that lasted `ran_s`; the one after doubles."""
        if self.fresh_after_s is not None and ran_s > self.fresh_after_s:
            self.reset()
        delay = self._next
        self._next = min(delay * 2, self.max_s)
        return delay

    def reset(self) -> None:
        """The thing worked: the next failure waits `initial_s` again."""
        self._next = self.initial_s
