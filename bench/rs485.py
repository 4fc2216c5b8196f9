"""An RS-485 line between two ptys that moves bytes at the line's baud rate.

The appliance opens one end (reached through a stable symlink), the simulated slaves the other. Every
byte, in either direction, takes one character time on a shared half-duplex medium, so a frame arrives
no sooner than it would on a real wire and RTU timing can be tested against wire time. `unplug()` takes
the appliance's end away (like pulling a USB-RS485 adapter) and `plug_in()` brings a new one back at
the same symlink.

The simulated slaves answer as a compliant RTU slave must: no sooner than 3.5 characters after the
request's last byte (the silence that tells a slave the frame has ended). The master's own silence
before each request is left to the master, so a master that skips it shows up in the timing.

A babbling device (`babble`, a function the owner sets: the share of the line's time it fills) sends
random bytes from the devices' side, unasked, evenly spread: above 1/4.5 of the line's time no 3.5
characters of silence are left between them, so a master that waits for a quiet line waits forever.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

_SIDES = ("appliance", "devices")


class PacedLine:
    def __init__(
        self, link: Path, baudrate: int = 19200, bytesize: int = 8, parity: str = "N", stopbits: int = 1
    ) -> None:
        self.link = link
        self.char_time_s = (1 + bytesize + (parity != "N") + stopbits) / baudrate
        self.silence_s = 3.5 * self.char_time_s if baudrate <= 19200 else 0.00175
        self._last_from = ""
        self._request_end = 0.0
        self.turnarounds: collections.deque[float] = collections.deque(maxlen=1000)  # request end -> answer
        self.bytes_carried = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fds: dict[str, tuple[int, int]] = {}  # side -> (master, slave)
        self._queues: dict[str, collections.deque[tuple[float, int]]] = {
            s: collections.deque() for s in _SIDES
        }
        self._free_at = 0.0
        self.babble: Callable[[], float] = lambda: 0.0  # share of the line's time a device babbles, 0..1
        self._babble_next = 0.0  # monotonic s the next babbled byte goes out; 0: not babbling
        self.babbled = 0  # bytes
        for side in _SIDES:
            self._open(side)
        self._thread = threading.Thread(target=self._run, name=f"rs485:{link.name}", daemon=True)

    @property
    def device_port(self) -> str:
        """The pty the simulated slaves open."""
        return os.ttyname(self._fds["devices"][1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        with self._lock:
            for side in list(self._fds):
                self._close(side)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    def unplug(self) -> None:
        """The appliance's end disappears: its reads fail and its path is gone."""
        with self._lock:
            self._close("appliance")
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def plug_in(self) -> None:
        with self._lock:
            if "appliance" not in self._fds:
                self._open("appliance")

    def _open(self, side: str) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline: bytes pass untouched, nothing echoes
        os.set_blocking(master, False)
        self._fds[side] = (master, slave)
        if side == "appliance":
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(os.ttyname(slave))
            tmp.replace(self.link)

    def _close(self, side: str) -> None:
        master, slave = self._fds.pop(side)
        os.close(master)
        os.close(slave)
        self._queues[side].clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                masters = {fds[0]: side for side, fds in self._fds.items()}
                # wake when the last queued byte is due: a frame arrives whole at the moment its last
                # byte would, which is all a receiver can observe, with one wake-up instead of one a byte
                due = [q[-1][0] for q in self._queues.values() if q]
                due += [self._babble_next] if self._babble_next else []
            wait = max(0.0, min(due) - time.monotonic()) if due else 0.05
            try:
                readable, _, _ = select.select(list(masters), [], [], min(wait, 0.05))
            except (OSError, ValueError):
                continue  # a side was closed under us by unplug(); take the new set next round
            now = time.monotonic()
            with self._lock:
                for fd in readable:
                    side = masters[fd]
                    if side in self._fds and self._fds[side][0] == fd:
                        self._receive(side, fd, now)
                self._babble(time.monotonic())
                self._deliver(time.monotonic())

    def _receive(self, side: str, fd: int, now: float) -> None:
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, OSError):
            return
        other = _SIDES[1 - _SIDES.index(side)]
        if side == "devices" and self._last_from == "appliance":
            if self._request_end:
                self.turnarounds.append(now - self._request_end)
            self._free_at += self.silence_s  # a slave may answer only once the request has ended
        self._last_from = side
        for byte in data:
            # one medium: a byte starts when the line is free, and is whole one character time later
            self._free_at = max(self._free_at, now) + self.char_time_s
            self._queues[other].append((self._free_at, byte))

    def _babble(self, now: float) -> None:
        """Random bytes from a babbling device, one every char_time / share: on the one medium, like
        every other byte, but to the appliance only (the simulated slaves do not hear them)."""
        share = min(max(self.babble(), 0.0), 1.0)
        if not share:
            self._babble_next = 0.0
            return
        every = self.char_time_s / share
        if self._babble_next < now - 4 * every:  # starting, or the thread was held up: no burst to catch up
            self._babble_next = now
        while self._babble_next <= now:
            self._free_at = max(self._free_at, self._babble_next) + self.char_time_s
            self._queues["appliance"].append((self._free_at, random.getrandbits(8)))
            self._babble_next += every
            self.babbled += 1

    def _deliver(self, now: float) -> None:
        for side, pending in self._queues.items():
            ready = bytearray()
            while pending and pending[0][0] <= now:
                ready.append(pending.popleft()[1])
            if ready and side in self._fds:
                with contextlib.suppress(OSError):
                    os.write(self._fds[side][0], bytes(ready))
                    self.bytes_carried += len(ready)
                if side == "devices" and not pending:
                    self._request_end = now
