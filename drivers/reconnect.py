"""The loop every field reader runs in its thread: open the port (or camera), read until it fails, stalls
or is stopped, close it, back off, open it again. The serial line and the camera reader differ in what
they open and read, not in how they survive an unplugged cable, so that part is here once, with the
counters their status shows: successful opens, failures, retries and the last error."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from drivers.backoff import Backoff
from drivers.worker import Worker

log = logging.getLogger(__name__)

H = TypeVar("H")  # what `connect` opens: a pyserial port, a frame source


class LinkState(enum.StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"  # opening, or waiting out a backoff before the next try
    OPEN = "open"


def _message(exc: Exception, opening: bool) -> str:
    return str(exc)


class Reconnector(Generic[H]):
    """Keeps one connection open in its own thread for as long as it is started.

    `serve(handle)` reads until `stopping` (then it returns) or a failure (then it raises); an exception
    of the `expected` types is a failure of the field (`describe` words it for `last_error`), any other
    is a bug, logged with its traceback, and neither kills the thread. A connection that `worked()`
    (delivered something) starts the backoff afresh."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], H],
        serve: Callable[[H], None],
        disconnect: Callable[[H], None],
        backoff: Backoff,
        expected: tuple[type[Exception], ...],
        describe: Callable[[Exception, bool], str] = _message,
        join_s: float = 5.0,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._connect, self._serve, self._disconnect = connect, serve, disconnect
        self.backoff, self.expected, self.describe = backoff, expected, describe
        self.worker = Worker(name, self._run, join_s, wake)
        self._lock = threading.Lock()  # the counters change together, in the worker's thread
        self.state = LinkState.STOPPED
        self.opens = 0  # successful opens: the first one, then one per reconnect
        self.open_failures = 0
        self.failures = 0  # opens and reads that failed
        self.retries = 0  # backoffs waited out before trying again
        self.last_error: str | None = None
        self._worked = False

    @property
    def stopping(self) -> bool:
        return self.worker.stopping

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> bool:
        """Ends the thread within `join_s`; False if a blocking call kept it (start() then refuses)."""
        return self.worker.stop()

    def worked(self) -> None:
        """The open connection delivered: once it fails, the next try comes after the shortest wait."""
        self._worked = True

    def _run(self) -> None:
        while not self.worker.stopping:
            error = self._attempt()
            delay = self.backoff.next()
            if error is not None:
                log.warning("%s: %s; retrying in %.1f s", self.name, error, delay)
            if self.worker.wait(delay):
                break
            with self._lock:
                self.retries += 1
        self._set(LinkState.STOPPED)

    def _attempt(self) -> str | None:
        """One connection, from opening to closing; the error that ended it, None if a stop did."""
        self._set(LinkState.CONNECTING)
        try:
            handle = self._connect()
        except Exception as exc:
            return self._failed(exc, opening=True)
        with self._lock:
            self.opens += 1
            self.state = LinkState.OPEN
        self._worked = False
        try:
            self._serve(handle)
        except Exception as exc:
            return self._failed(exc, opening=False)
        finally:
            self._set(LinkState.CONNECTING)
            try:
                self._disconnect(handle)
            except Exception:  # a close that fails must not end the thread; the next open will tell
                log.exception("%s: closing failed", self.name)
            if self._worked:
                self.backoff.reset()
        return None

    def _failed(self, exc: Exception, opening: bool) -> str:
        if isinstance(exc, self.expected):
            message = self.describe(exc, opening)
        else:  # a bug must not kill the reader: report it and reopen
            log.exception("%s: unexpected error while %s", self.name, "opening" if opening else "reading")
            message = f"unexpected {type(exc).__name__}: {exc}"
        with self._lock:
            self.last_error = message
            self.failures += 1
            self.open_failures += opening
        return message

    def _set(self, state: LinkState) -> None:
        with self._lock:
            self.state = state
