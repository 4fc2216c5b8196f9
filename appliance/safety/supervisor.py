"""`appliance safety`: the supervisor, a small process that alone owns the stop output line.

It listens on a Unix seqpacket socket (mode 0600) for authenticated messages from the runtime and drops
the line when asked, when heartbeats stop for the deadline, when the runtime reports a cause, and when
the runtime's connection closes (the kernel closes it when the runtime dies). It imports no web stack,
store or sync code: read it in one sitting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, cast

from appliance.config.safety import SafetySettings
from appliance.safety import protocol
from appliance.safety.latch import Change, State, StopLatch
from appliance.safety.protocol import Kind, Message, ProtocolError, Sequencer
from hal.gpio import ActiveLevel, GpioBackend, LineSettings, open_backend
from hal.watchdog import KernelWatchdog, SystemdWatchdog, Watchdog

log = logging.getLogger(__name__)

READY = "safety supervisor ready"
SECRET_FILE = "safety.key"
LATCH_FILE = "safety-latch.json"


def socket_path(settings: SafetySettings, data_dir: Path) -> Path:
    return data_dir / settings.socket  # an absolute `socket` (/run/appliance/...) stays as it is


def open_watchdog(choice: str) -> Watchdog | None:
    if choice == "none" or (choice == "auto" and not os.environ.get("NOTIFY_SOCKET")):
        return None
    return KernelWatchdog() if choice == "kernel" else SystemdWatchdog()


class Supervisor:
    def __init__(self, settings: SafetySettings, data_dir: Path, backend: GpioBackend | None = None) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.path = socket_path(settings, data_dir)
        self.pid_file = self.path.with_name(self.path.name + ".pid")
        self.latch_file = data_dir / LATCH_FILE
        self.secret = protocol.load_or_create_secret(data_dir / SECRET_FILE)
        self._check_not_running()
        latched = self._restored_latch()
        self.backend = backend or open_backend(settings.stop_line.gpio)
        if self.backend.name == "rpigpio":
            log.warning(
                "RPi.GPIO-compatible backend: the original RPi.GPIO keeps driving the pin if this process "
                'is killed; prefer gpio = "gpiod" for the stop line (docs/safety.md)'
            )
        line = settings.stop_line
        self.line = self.backend.output(
            LineSettings(line.line, line.chip, ActiveLevel(line.active_level), False, "appliance-safety")
        )
        self.latch = StopLatch(self.line, settings.heartbeat_deadline_ms * 1_000_000, latched)
        self.sequencer = Sequencer()
        self.sender = protocol.Sender(self.secret, "supervisor")
        self.refused: dict[str, int] = {}
        self.runtime: socket.socket | None = None
        self.selector = selectors.DefaultSelector()
        self.listener = self._listen()
        self.watchdog = open_watchdog(settings.watchdog)
        self.stopping = False
        self.scheduling = self._realtime(settings.realtime_priority)

    def _check_not_running(self) -> None:
        if self.pid_file.exists():
            pid = int(self.pid_file.read_text().strip() or 0)
            if pid and pid != os.getpid() and Path(f"/proc/{pid}").exists():
                raise RuntimeError(f"a supervisor (pid {pid}) already owns {self.path}")

    def _restored_latch(self) -> str | None:
        """A trip latched before a restart stays latched; so does an unclean exit of the last supervisor."""
        if self.latch_file.exists():
            return str(json.loads(self.latch_file.read_text()).get("reason", "latched before a restart"))
        if self.pid_file.exists():
            return f"the supervisor restarted after an unclean exit (pid {self.pid_file.read_text().strip()})"
        return None

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
        self.pid_file.write_text(f"{os.getpid()}\n")
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
            if self.watchdog is not None and pet_every is not None and time.monotonic() >= next_pet:
                self.watchdog.pet()
                next_pet = time.monotonic() + pet_every

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def close(self) -> None:
        """A stop: line de-energized, and latched if it was energized (it comes back only through a
        reset, whatever stopped it); socket and pid file removed."""
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
        self.path.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)
        log.info("safety supervisor stopped; line de-energized")

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ)

    def _receive(self, conn: socket.socket) -> None:
        while True:
            try:
                packet = conn.recv(protocol.MAX_DATAGRAM + 1)
            except BlockingIOError:
                return
            except OSError:
                packet = b""
            if not packet:
                self._closed(conn)
                return
            self._handle(conn, packet)

    def _closed(self, conn: socket.socket) -> None:
        now = time.monotonic_ns()
        self.selector.unregister(conn)
        conn.close()
        if conn is self.runtime:
            self.runtime = None
            self._changed(self.latch.trip("runtime connection lost", now, "disconnect"))

    def _handle(self, conn: socket.socket, packet: bytes) -> None:
        now = time.monotonic_ns()
        try:
            message = protocol.decode(self.secret, packet)
            self.sequencer.accept(message, now)
        except ProtocolError as exc:
            self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
            log.warning("refused a message (%s): %s", exc.reason, exc)
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
            if accepted:
                self.latch_file.unlink(missing_ok=True)
            log.info("reset requested by %s: %s", message.reason or "runtime", why)
        self._reply(conn, message, extra)

    def _reply(self, conn: socket.socket, to: Message | None, extra: dict[str, Any]) -> None:
        data = {**self.latch.snapshot(), **extra, "ack": to.seq if to else None}
        data["supervisor"] = {"pid": os.getpid(), "scheduling": self.scheduling, "refused": self.refused}
        with contextlib.suppress(OSError):  # the peer went away; the selector sees it close
            conn.send(self.sender.message(Kind.STATUS, data=data))

    def _changed(self, change: Change | None) -> None:
        if change is None:
            return
        log.warning("TRIP: %s (%s; %.3f ms cause to line)", change.reason, change.source, change.latency_ms)
        tmp = self.latch_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"reason": change.reason, "ts": change.ts, "id": change.id}))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(self.latch_file)


def run_supervisor(settings: SafetySettings, data_dir: Path) -> int:
    try:
        supervisor = Supervisor(settings, data_dir)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"appliance safety: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        supervisor.serve()
    finally:
        supervisor.close()
    return 0
