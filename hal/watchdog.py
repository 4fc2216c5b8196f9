"""Watchdogs: systemd's (sd_notify over $NOTIFY_SOCKET, standard library only), the kernel's
/dev/watchdog (any write pets it; writing "V" before closing disarms it: the "magic close"), and a mock.
"""

from __future__ import annotations

import abc
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)


class Watchdog(abc.ABC):
    """Something that resets the box or restarts the service unless it is petted in time."""

    name = "watchdog"

    @abc.abstractmethod
    def ready(self) -> None:
        """The service has started and is healthy."""

    @abc.abstractmethod
    def pet(self) -> None:
        """Still alive."""

    @abc.abstractmethod
    def stopping(self) -> None:
        """A clean stop: do not count the silence that follows as a hang."""

    @property
    def interval_s(self) -> float | None:
        """How often to pet, or None if this watchdog has no deadline."""
        return None

    def close(self) -> None:  # noqa: B027 - only some watchdogs hold a handle
        """Release the handle; does not disarm (call stopping() for that)."""


class SystemdWatchdog(Watchdog):
    """sd_notify(3): datagrams of `KEY=value` lines to the socket systemd names in $NOTIFY_SOCKET."""

    name = "systemd"

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if not address:
            raise OSError("NOTIFY_SOCKET is not set: not started by systemd with Type=notify")
        # '@' names a socket in the abstract namespace
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self._interval = (
            int(usec) / 1e6 / 2 if usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        )
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def interval_s(self) -> float | None:
        """Half of WatchdogSec, as sd_watchdog_enabled(3) recommends."""
        return self._interval

    def notify(self, *fields: str) -> None:
        self.sock.sendto("\n".join(fields).encode(), self.address)

    def ready(self) -> None:
        self.notify("READY=1", f"MAINPID={os.getpid()}")

    def pet(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def close(self) -> None:
        self.sock.close()


class KernelWatchdog(Watchdog):
    """/dev/watchdog: opening arms it; the box resets if nothing is written within the driver's timeout."""

    name = "kernel"
    MAGIC_CLOSE = b"V"

    def __init__(self, device: Path = Path("/dev/watchdog"), interval_s: float = 5.0) -> None:
        self.device = device
        self._interval = interval_s
        self.fd: int | None = None

    @property
    def interval_s(self) -> float | None:
        return self._interval

    def ready(self) -> None:
        self.fd = os.open(self.device, os.O_WRONLY | os.O_CLOEXEC)  # from here on, the box must be petted
        log.info("kernel watchdog %s armed", self.device)

    def pet(self) -> None:
        if self.fd is not None:
            os.write(self.fd, b"\0")

    def stopping(self) -> None:
        """Magic close: drivers without `nowayout` disarm on "V" followed by close."""
        if self.fd is not None:
            os.write(self.fd, self.MAGIC_CLOSE)
            os.close(self.fd)
            self.fd = None
            log.info("kernel watchdog %s disarmed (magic close)", self.device)


class MockWatchdog(Watchdog):
    """Records what it was told with monotonic timestamps; `expired()` says whether a real one would fire."""

    name = "mock"

    def __init__(self, timeout_s: float = 1.0) -> None:
        self.timeout_s = timeout_s
        self.events: list[tuple[float, str]] = []

    @property
    def interval_s(self) -> float | None:
        return self.timeout_s / 2

    def ready(self) -> None:
        self.events.append((time.monotonic(), "ready"))

    def pet(self) -> None:
        self.events.append((time.monotonic(), "pet"))

    def stopping(self) -> None:
        self.events.append((time.monotonic(), "stopping"))

    def expired(self, now: float | None = None) -> bool:
        if not self.events or self.events[-1][1] == "stopping":
            return False
        return (now if now is not None else time.monotonic()) - self.events[-1][0] > self.timeout_s
