"""A serial line sensor: reads a pyserial URL in its own thread, decodes frames, reconnects with backoff.

Any pyserial URL works: a device (/dev/ttyUSB0), a pty or a symlink to one, socket://host:port, loop://.
pyserial reads block, so they run in a dedicated thread and never on the asyncio loop; records reach
the caller through a callback on that thread (an asyncio user hands them over with
`loop.call_soon_threadsafe`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import serial

from drivers.backoff import Backoff
from drivers.reconnect import LinkState, Reconnector
from drivers.serial.format import SerialFormat
from drivers.serial.frames import ErrorKind, Frame, FrameError, Framer

log = logging.getLogger(__name__)


LineState = LinkState  # stopped, connecting (opening, or waiting out a backoff), open


SENSOR_FORMAT = SerialFormat()  # 9600 8N1, what most serial sensors send


@dataclass(frozen=True, slots=True)
class SerialLineSettings:
    """Where the sensor is, its line's character format, and how the reader treats the line."""

    url: str
    format: SerialFormat = SENSOR_FORMAT
    read_timeout_s: float = 0.1  # how long one read may block: bounds how fast stop() is noticed
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    stale_after_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.read_timeout_s <= 0.5:
            raise ValueError(
                f"read_timeout_s must be in (0, 0.5] so stop() stays prompt, got {self.read_timeout_s}"
            )
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("backoff needs 0 < backoff_initial_s <= backoff_max_s")
        if self.stale_after_s <= 0:
            raise ValueError("stale_after_s must be positive")


@dataclass(frozen=True, slots=True)
class Record:
    """Values decoded from one frame, stamped with the time its bytes were read: on the wall clock for
    people and the store, on the monotonic clock (which no clock step moves) for durations."""

    timestamp: float
    values: dict[str, float]
    units: Mapping[str, str]
    received_ns: int  # CLOCK_MONOTONIC


def stale_channels(
    last_good: Mapping[str, float],
    stale_after_s: float,
    now: float | None = None,
    expected: Iterable[str] = (),
) -> list[str]:
    """Channels whose last good value is older than `stale_after_s`; `expected` ones never seen count too.
    Times are monotonic seconds, so a step of the wall clock makes nothing stale."""
    now = time.monotonic() if now is None else now
    names = set(last_good) | set(expected)
    return sorted(n for n in names if n not in last_good or now - last_good[n] > stale_after_s)


class SerialLine:
    """One sensor on one serial line: the service that owns its port, its thread and its counters."""

    def __init__(
        self,
        settings: SerialLineSettings,
        framer: Framer,
        on_record: Callable[[Record], None],
        name: str = "serial",
    ) -> None:
        self.settings, self.framer, self.on_record, self.name = settings, framer, on_record, name
        self._lock = threading.Lock()  # guards the counters and the port handle across threads
        self._port: serial.Serial | None = None
        self._link = Reconnector(
            f"serial-{name}",
            self._open,
            self._pump,
            self._close,
            Backoff(settings.backoff_initial_s, settings.backoff_max_s),
            expected=(serial.SerialException, OSError, ValueError),
            describe=self._describe,
            join_s=1.0,
        )
        self._frames_ok = 0
        self._errors = dict.fromkeys(ErrorKind, 0)
        self._callback_errors = 0
        self._last_good: dict[str, float] = {}  # wall clock, shown
        self._last_seen: dict[str, float] = {}  # monotonic, for staleness
        self._last_values: dict[str, float] = {}

    def start(self) -> None:
        self._link.start()  # refuses while a reader thread that did not stop still holds the port

    def stop(self) -> None:
        """Ends the reader thread; returns within about one read timeout (at most 1 s)."""
        self._link.stop()

    def write(self, data: bytes) -> bool:
        """Sends bytes to the sensor (a poll command); False when the port is not open right now."""
        with self._lock:
            port = self._port
        if port is None:
            return False
        try:
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            log.warning("%s: write failed: %s", self.name, exc)
            return False
        return True

    def stale(self, now: float | None = None) -> list[str]:
        """Channels without a good value for `stale_after_s`, at monotonic `now`."""
        with self._lock:
            last_seen = dict(self._last_seen)
        return stale_channels(last_seen, self.settings.stale_after_s, now, self.framer.channels)

    def status(self) -> dict[str, Any]:
        stale = self.stale()
        link = self._link
        with self._lock:
            return {
                "name": self.name,
                "url": self.settings.url,
                "state": str(link.state),
                "frames_ok": self._frames_ok,
                "errors": {str(kind): count for kind, count in self._errors.items()},
                "reconnects": max(0, link.opens - 1),
                "open_failures": link.open_failures,
                "callback_errors": self._callback_errors,
                "last_error": link.last_error or "",
                "values": dict(self._last_values),
                "last_good": dict(self._last_good),
                "stale": stale,
            }

    def _describe(self, exc: Exception, opening: bool) -> str:
        return f"cannot open {self.settings.url}: {exc}" if opening else f"read failed: {exc}"

    def _open(self) -> serial.Serial:
        s = self.settings
        port = serial.serial_for_url(s.url, **s.format.pyserial(), timeout=s.read_timeout_s)
        with self._lock:
            self._port = port
        log.info("%s: opened %s", self.name, s.url)
        return port

    def _close(self, port: serial.Serial) -> None:
        with self._lock:
            self._port = None
        try:
            port.close()
        except (serial.SerialException, OSError) as exc:
            log.debug("%s: close failed: %s", self.name, exc)
        self._deliver(self.framer.reset(), time.time(), time.monotonic_ns())

    def _pump(self, port: serial.Serial) -> None:
        """Reads until stopped or the port fails."""
        while not self._link.stopping:
            # One byte blocks up to the timeout; then whatever else is waiting, so frames are not delayed.
            chunk = port.read(1)
            if not chunk:
                continue
            waiting = port.in_waiting
            if waiting:
                chunk += port.read(waiting)
            self._deliver(self.framer.feed(chunk), time.time(), time.monotonic_ns())

    def _deliver(self, items: Sequence[Frame | FrameError], timestamp: float, received_ns: int) -> None:
        for item in items:
            if isinstance(item, FrameError):
                with self._lock:
                    self._errors[item.kind] += 1
                log.debug("%s: %s", self.name, item)
                continue
            self._link.worked()  # the line works: once it fails, backoff starts afresh
            with self._lock:
                self._frames_ok += 1
                self._last_values.update(item.values)
                self._last_good.update(dict.fromkeys(item.values, timestamp))
                self._last_seen.update(dict.fromkeys(item.values, received_ns / 1e9))
            if not item.values:
                continue
            try:
                self.on_record(Record(timestamp, item.values, self.framer.units, received_ns))
            except Exception:
                with self._lock:
                    self._callback_errors += 1
                log.exception("%s: record callback failed", self.name)
