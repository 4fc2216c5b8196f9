"""A driver's own thread: pyserial and camera reads block, so each port or camera (and the sync's HTTPS
sender) gets a daemon thread of its own, never the asyncio loop. `Worker` is that thread with a stop flag,
a sleep that a stop cuts short, and a bounded join."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Worker:
    """Runs `target` in a named daemon thread until it returns; `target` watches `stopping`.

    `wake` is called on stop() for a target that blocks on something else than `wait()` (a queue it
    reads, a condition): it should make that call return."""

    def __init__(
        self,
        name: str,
        target: Callable[[], None],
        join_s: float = 5.0,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.target, self.join_s, self.wake = name, target, join_s, wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.alive:
            # a thread that did not end on stop() still holds the port: a second one would fight it
            raise RuntimeError(f"{self.name} is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.target, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> bool:
        """Asks the thread to end and waits up to `join_s`; False if it is still running then."""
        self._stop.set()
        if self._thread is None:
            return True
        if self.wake is not None:
            self.wake()
        self._thread.join(self.join_s)
        if self._thread.is_alive():
            log.warning(
                "%s: thread did not end within %.1f s (a call is blocking it)", self.name, self.join_s
            )
            return False
        self._thread = None
        return True

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; returns True as soon as a stop is asked."""
        return self._stop.wait(seconds)
