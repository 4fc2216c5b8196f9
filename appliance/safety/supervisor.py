"""`appliance safety`: the supervisor, a small process that alone owns the stop output line.

It listens on a Unix seqpacket socket (mode 0600) for authenticated messages from the runtime and drops
the line when asked, when heartbeats stop for the deadline, when the runtime reports a cause, and when
the runtime's connection closes (the kernel closes it when the runtime dies). It imports no web stack,
store or sync code: read it in one sitting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from appliance.safety import protocol
from appliance.safety.latch import Change, State, StopLatch
from appliance.safety.latchfile import LatchFile, RunMarker, describe
from appliance.safety.protocol import Kind, Message, ProtocolError, Sequencer
from appliance.safety.settings import SupervisorSettings
from hal.gpio import ActiveLevel, GpioBackend, GpioLineSettings, open_backend
from hal.watchdog import KernelWatchdog, SystemdWatchdog, Watchdog

if TYPE_CHECKING:
    from appliance.config.safety import SafetySettings  # the runtime's model, never loaded here

log = logging.getLogger(__name__)
RETRY_S = 1.0  # how often a latch the storage refused is written again

READY = "safety supervisor ready"
SECRET_FILE = "safety.key"
LATCH_FILE = "safety-latch.json"


def socket_path(settings: SupervisorSettings | SafetySettings, data_dir: Path) -> Path:
    return data_dir / settings.socket  # an absolute `socket` (/run/appliance/...) stays as it is


def open_watchdog(choice: str) -> Watchdog | None:
    if choice == "none" or (choice == "auto" and not os.environ.get("NOTIFY_SOCKET")):
        return None
    return KernelWatchdog() if choice == "kernel" else SystemdWatchdog()


class Supervisor:
    def __init__(
        self, settings: SupervisorSettings, data_dir: Path, backend: GpioBackend | None = None
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.path = socket_path(settings, data_dir)
        self.marker = RunMarker(self.path.with_name(self.path.name + ".pid"))
        self.latch_file = LatchFile(data_dir / LATCH_FILE)
        # Read-only checks first, then the line (a chip or line that does not exist stops us here, before
        # any file is written), then the files.
        before = self.marker.previous()  # RuntimeError if a live supervisor owns the socket
        on_disk = self.latch_file.restore()
        latched = on_disk or before
        self.backend = backend or open_backend(settings.stop_line.gpio)
        if self.backend.name == "rpigpio":
            log.warning(
                "RPi.GPIO-compatible backend: the original RPi.GPIO keeps driving the pin if this process "
                'is killed; prefer gpio = "gpiod" for the stop line (docs/safety.md)'
            )
        line = settings.stop_line
        self.line = self.backend.output(
            GpioLineSettings(line.line, line.chip, ActiveLevel(line.active_level), False, "appliance-safety")
        )
        self.secret = protocol.load_or_create_secret(data_dir / SECRET_FILE)
        if (unwritable := self.marker.claim()) is not None and latched is None:
            latched = f"cannot record that the supervisor runs ({unwritable}); latched to be safe"
        self.latch = StopLatch(self.line, settings.heartbeat_deadline_ms * 1_000_000, latched)
        self.unrecorded: str | None = None  # the latch is held in memory only: why it is not on disk
        self.next_retry = 0.0
        if latched is not None and on_disk is None:  # latched for a reason the disk does not hold yet
            self._record_latch()
        self.sequencer = Sequencer()
        self.sender = protocol.Sender(self.secret, "supervisor")
        self.refused: dict[str, int] = {}
        self.buffer = bytearray(protocol.RECEIVE_BYTES)
        self.runtime: socket.socket | None = None
        self.selector = selectors.DefaultSelector()
        self.listener = self._listen()
        self.watchdog = open_watchdog(settings.watchdog)
        self.stopping = False
        self.scheduling = self._realtime(settings.realtime_priority)

    def _listen(self) -> socket.socket:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        listener.listen(8)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ)
        return listener

    @staticmethod
    def _realtime(priority: int) -> str:
        if not priority:
            return "normal"
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except (PermissionError, OSError) as exc:
            log.warning("no real-time priority (%s); running at normal priority", exc)
            return "normal"
        return f"fifo:{priority}"

    def serve(self) -> None:
        """Until SIGTERM or SIGINT; the line drops on the way out."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        if self.watchdog is not None:
            self.watchdog.ready()
        print(READY, flush=True)
        tick = self.settings.tick_ms / 1000
        pet_every = self.watchdog.interval_s if self.watchdog else None
        next_pet = time.monotonic()
        while not self.stopping:
            due = self.latch.due_ns()
            timeout = tick if due is None else max(0.0, min(tick, (due - time.monotonic_ns()) / 1e9))
            for key, _ in self.selector.select(timeout):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._receive(cast(socket.socket, key.fileobj))
            self._changed(self.latch.check(time.monotonic_ns()))
            if self.unrecorded is not None and time.monotonic() >= self.next_retry:
                self._record_latch()
            if self.watchdog is not None and pet_every is not None and time.monotonic() >= next_pet:
                self.watchdog.pet()
                next_pet = time.monotonic() + pet_every

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def close(self) -> bool:
        """A stop: line de-energized, and latched if it was energized (it comes back only through a
        reset, whatever stopped it); socket removed. The run marker is removed only when the latch on
        disk says what the line is: otherwise the next start reads it as an unclean end and starts
        latched. False if the latch could not be recorded."""
        if self.latch.state is State.OK:
            reason = "the supervisor stopped while the line was energized"
            self._changed(self.latch.trip(reason, time.monotonic_ns(), "stop"))
        self.line.close()
        self.backend.close()
        if self.watchdog is not None:
            self.watchdog.stopping()
            self.watchdog.close()
        self.selector.close()
        self.listener.close()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        if self.unrecorded is None:
            self.marker.release()
            log.info("safety supervisor stopped; line de-energized")
            return True
        self.marker.close()
        log.critical(
            "safety supervisor stopped; line de-energized; the latch is not on disk (%s): the run marker %s "
            "stays, so the next start is latched",
            self.unrecorded,
            self.marker.path,
        )
        return False

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ)

    def _receive(self, conn: socket.socket) -> None:
        while True:
            try:  # MSG_TRUNC: the packet's real length, even beyond the buffer
                size = conn.recv_into(self.buffer, 0, socket.MSG_TRUNC)
            except BlockingIOError:
                return
            except OSError:
                size = 0
            if not size:
                self._closed(conn)
                return
            self._handle(
                conn, bytes(memoryview(self.buffer)[:size]), size
            )  # one copy; a view stops at its end

    def _closed(self, conn: socket.socket) -> None:
        now = time.monotonic_ns()
        self.selector.unregister(conn)
        conn.close()
        if conn is self.runtime:
            self.runtime = None
            self._changed(self.latch.trip("runtime connection lost", now, "disconnect"))

    def _handle(self, conn: socket.socket, packet: bytes, size: int) -> None:
        now = time.monotonic_ns()
        try:
            message = protocol.decode(self.secret, packet, size=size)
            self.sequencer.accept(message, now)
        except ProtocolError as exc:
            self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
            log.warning("refused a message (%s): %s", exc.reason, exc)
            if not exc.authentic:  # not from a peer that holds the secret: it learns nothing but "no"
                self._refuse(conn, exc.reason)
                return
            # From the runtime, but unreadable: whatever it asked for, the safe answer is a trip.
            reason = f"an authenticated request could not be read ({exc.reason}); tripped to be safe"
            self._changed(self.latch.trip(reason, now, "request"))
            self._reply(conn, None, {"refused": exc.reason, "message": str(exc)})
            return
        extra: dict[str, Any] = {}
        if message.kind is Kind.TRIP:
            cause = int(message.data.get("cause_ns", message.sent_ns))
            self._changed(self.latch.trip(message.reason or "trip requested", cause, "request"))
        elif message.kind is Kind.HEARTBEAT:
            self.runtime = conn
            causes = tuple(str(c) for c in message.data.get("causes", ()))
            self._changed(self.latch.heartbeat(causes, now))
        elif message.kind is Kind.RESET:
            accepted, why = self.latch.reset(message.reason or "runtime", now)
            extra = {"accepted": accepted, "message": why}
            if accepted and self.latch.state is State.OK:
                self._forget_latch()
            log.info("reset requested by %s: %s", message.reason or "runtime", why)
        self._reply(conn, message, extra)

    def _reply(self, conn: socket.socket, to: Message | None, extra: dict[str, Any]) -> None:
        data = {**self.latch.snapshot(), **extra, "ack": to.seq if to else None}
        data["supervisor"] = {
            "pid": os.getpid(),
            "scheduling": self.scheduling,
            "refused": self.refused,
            "latch_file": {"recorded": self.unrecorded is None, "error": self.unrecorded},
        }
        self._send(conn, data)

    def _refuse(self, conn: socket.socket, reason: str) -> None:
        self._send(conn, {"refused": reason, "ack": None})

    def _send(self, conn: socket.socket, data: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the peer went away; the selector sees it close
            conn.send(self.sender.message(Kind.STATUS, data=data))

    def _changed(self, change: Change | None) -> None:
        """After the line changed: say so, and record a latched trip on disk."""
        if change is None:
            return
        log.warning("TRIP: %s (%s; %.3f ms cause to line)", change.reason, change.source, change.latency_ms)
        self._record_latch()

    def _record_latch(self) -> None:
        """Write the latch; if the storage refuses, stay latched in memory, say so and retry each second."""
        try:
            self.latch_file.write({"reason": self.latch.reason, "ts": self.latch.since})
        except OSError as exc:
            error = describe(exc)
            if error != self.unrecorded:
                log.critical(
                    "cannot record the latched trip (%s); the line stays down, latched in memory", error
                )
            self.unrecorded, self.next_retry = error, time.monotonic() + RETRY_S
            return
        if self.unrecorded is not None:
            log.warning("the latched trip is recorded now (%s)", self.latch_file.path)
        self.unrecorded = None

    def _forget_latch(self) -> None:
        self.unrecorded = None  # nothing latched: nothing left to record
        try:
            self.latch_file.clear()
        except OSError as exc:  # the file stays: a restart starts latched, which is safe
            log.warning("could not delete the latch file after the reset (%s)", describe(exc))


def run_supervisor(settings: SupervisorSettings, data_dir: Path) -> int:
    """0 after a clean stop; 1 if it could not start; 3 if it stopped with a latch it could not record."""
    try:
        supervisor = Supervisor(settings, data_dir)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"appliance safety: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    recorded = False
    try:
        supervisor.serve()
    finally:
        recorded = supervisor.close()
    return 0 if recorded else 3
