"""The runtime's side of the safety chain: connects to the supervisor (spawning it on a desktop), sends
heartbeats from the event loop, trip requests from any thread the moment a cause is seen, and resets;
keeps the supervisor's state and records every trip and reset as an event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance import child
from appliance.config.safety import SafetySettings
from appliance.ops import audit
from appliance.records import Event, Severity
from appliance.safety import protocol
from appliance.safety.protocol import Kind, ProtocolError
from appliance.safety.supervisor import READY, SECRET_FILE, socket_path
from appliance.service import Service
from appliance.status.safety import EstopStatus, RuleStatus, SafetyLinkStatus

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_S = 10.0
REPLY_TIMEOUT_S = 2.0
Conditions = Callable[[], tuple[str, ...]]
EventSink = Callable[[Sequence[Event]], None]


class SafetyLink(Service):
    name = "safety"
    start_timeout_s = SPAWN_TIMEOUT_S + 2  # a spawned supervisor's own ready timeout fails the start first
    stop_timeout_s = 1.0
    stop_reserve_s = 0.2  # a spawned supervisor to end

    def __init__(
        self,
        settings: SafetySettings,
        config_path: Path,
        data_dir: Path,
        conditions: Conditions,
        record: EventSink,
        recorded: Callable[[], set[str]],
    ) -> None:
        super().__init__()
        self.settings, self.config_path, self.data_dir = settings, config_path, data_dir
        self.conditions, self.record, self._recorded = conditions, record, recorded
        self.path = socket_path(settings, data_dir)
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.sender: protocol.Sender | None = None
        self.state: dict[str, Any] = {}
        self.known: set[str] = set()
        self.trips_requested = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[dict[str, Any]]]] = {}
        self._reader: threading.Thread | None = None

    async def open(self) -> None:
        self.known = await asyncio.to_thread(self._recorded)
        if self.settings.supervisor == "spawn":
            await self._spawn()
            await self._connect()
            return
        try:
            await self._connect()
        except OSError as exc:  # a device's supervisor is its own unit: keep retrying, the line stays down
            log.warning("safety supervisor not reachable at %s (%s); retrying", self.path, exc)

    async def run(self) -> None:
        interval = self.settings.heartbeat_interval_ms / 1000
        while True:
            if self.sock is None:
                if self.settings.supervisor == "spawn" and (
                    self.proc is None or self.proc.returncode is not None
                ):
                    await self._spawn()
                await self._connect()
            self._send(Kind.HEARTBEAT, "", {"causes": protocol.bounded_causes(self.conditions())})
            await asyncio.sleep(interval)

    async def close(self) -> None:
        self._disconnect()
        proc, self.proc = self.proc, None
        if proc is not None:
            await child.stop(proc, grace_s=0.8)

    def trip(self, reason: str, cause_ns: int | None = None) -> None:
        """Ask for a trip now, from any thread; `cause_ns` is when the cause was seen (CLOCK_MONOTONIC)."""
        self.trips_requested += 1
        cause = time.monotonic_ns() if cause_ns is None else cause_ns
        try:
            self._send(Kind.TRIP, reason, {"cause_ns": cause})
        except OSError as exc:  # no supervisor connection: its deadline drops the line anyway
            log.error("could not send the trip request (%s): %s", exc, reason)

    async def request(self, kind: Kind, reason: str) -> dict[str, Any]:
        """Send a trip or reset and wait for the supervisor's answer (its state, and for a reset
        `accepted` and `message`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        data = {"cause_ns": time.monotonic_ns()} if kind is Kind.TRIP else {}
        seq = self._send(kind, reason, data, lambda s: self._waiting.__setitem__(s, (loop, future)))
        try:
            return await asyncio.wait_for(future, REPLY_TIMEOUT_S)
        finally:
            self._waiting.pop(seq, None)

    async def manual_trip(self, who: str, reason: str) -> None:
        """A trip asked for on the page or the API."""
        await self.request(Kind.TRIP, f"manual trip by {who}" + (f": {reason}" if reason else ""))

    async def manual_reset(self, who: str) -> tuple[bool, str]:
        """A reset asked for on the page or the API: (accepted, the supervisor's word); a refusal is an
        event (the supervisor records accepted resets itself)."""
        answer = await self.request(Kind.RESET, who)
        accepted, message = bool(answer.get("accepted")), str(answer.get("message", ""))
        if not accepted:
            refused = Event(
                time.time(), "estop.reset_refused", Severity.WARNING, "api", f"reset by {who} {message}"
            )
            self.record([refused])
        return accepted, message

    def estop(self, rules: list[RuleStatus]) -> EstopStatus:
        """The status document's `estop` section: the supervisor's latest word, with the rules that hold."""
        s = self.state
        connected = self.sock is not None and bool(s)
        energized = connected and bool(s.get("energized"))
        reason = s.get("reason", "") if connected else "no connection to the safety supervisor"
        return EstopStatus(
            state="ok" if energized else "tripped",
            reason=reason,
            since=s.get("since"),
            latched=s.get("state") == "tripped",
            phase=s.get("state", "unknown") if connected else "unknown",
            causes=s.get("causes", []),
            trips=s.get("trips", 0),
            resets=s.get("resets", 0),
            refused_resets=s.get("refused_resets", 0),
            history=list(reversed(s.get("history", [])))[:20],
            supervisor=s.get("supervisor", {}),
            rules=rules,
        )

    def status(self) -> SafetyLinkStatus:
        return SafetyLinkStatus(
            **self.basics(), connected=self.sock is not None, trips_requested=self.trips_requested
        )

    def _send(
        self,
        kind: Kind,
        reason: str,
        data: dict[str, Any],
        register: Callable[[int], None] | None = None,
    ) -> int:
        sock, sender = self.sock, self.sender
        if sock is None or sender is None:
            raise ConnectionError("not connected to the safety supervisor")
        with self._lock:
            packet = sender.message(kind, reason, data)
            if register is not None:
                register(sender.seq)
            try:
                sock.send(packet)
            except OSError:
                if self.sock is sock:
                    self._disconnect()
                raise
            return sender.seq

    async def _spawn(self) -> None:
        args = ("appliance", "safety", "--config", str(self.config_path), "--data-dir", str(self.data_dir))
        try:
            self.proc, _ = await child.start(*args, ready=READY, timeout_s=SPAWN_TIMEOUT_S)
        except child.NotReady as exc:
            raise RuntimeError(f"the safety supervisor did not start ({exc}; see its log above)") from None
        log.info("safety supervisor started (pid %d)", self.proc.pid)

    async def _connect(self) -> None:
        secret = await asyncio.to_thread(protocol.load_or_create_secret, self.data_dir / SECRET_FILE)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            await asyncio.to_thread(sock.connect, str(self.path))
        except OSError:
            sock.close()
            raise
        self.sender = protocol.Sender(secret, "runtime")
        self.sock = sock
        self._reader = threading.Thread(
            target=self._read, args=(sock, secret), name="safety-link", daemon=True
        )
        self._reader.start()
        if self.state.get("state") in ("ok", "tripped"):
            # Back after a lost connection: the line was energized or latched, so it must come back only
            # through a reset. The same supervisor tripped already (connection lost); a new one that lost
            # its latch (files gone with its data directory) would otherwise energize at our first beat.
            pid = self.state.get("supervisor", {}).get("pid")
            self._send(Kind.TRIP, f"the runtime reconnected after losing the supervisor (pid {pid})", {})
        self._send(Kind.HEARTBEAT, "", {"causes": protocol.bounded_causes(self.conditions())})

    def _disconnect(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _read(self, sock: socket.socket, secret: bytes) -> None:
        sequencer = protocol.Sequencer()
        while True:
            try:
                packet = sock.recv(1 << 20)
            except OSError:
                packet = b""
            if not packet:
                break
            try:
                message = protocol.decode(secret, packet, protocol.MAX_REPLY)
                sequencer.accept(message)
            except ProtocolError as exc:
                log.error("refused a message from the supervisor (%s): %s", exc.reason, exc)
                continue
            self._answered(dict(message.data))
        if self.sock is sock:
            log.error("lost the connection to the safety supervisor")
            self.sock = None

    def _answered(self, data: dict[str, Any]) -> None:
        if "state" in data:
            self._latch_recorded(data.get("supervisor", {}).get("latch_file", {}))
            self.state = data
            self._record_changes(data.get("history", []))
        if data.get("refused"):
            log.error("the supervisor refused our message: %s", data.get("message"))
        waiting = self._waiting.get(data.get("ack") or -1)
        if waiting is not None:
            loop, future = waiting
            loop.call_soon_threadsafe(_settle, future, data)

    def _latch_recorded(self, latch_file: dict[str, Any]) -> None:
        """An event when the supervisor starts holding a latch it could not write to disk."""
        was = self.state.get("supervisor", {}).get("latch_file", {}).get("error")
        error = latch_file.get("error")
        if error and error != was:
            message = f"the stop output's latch is held in memory only: the disk refused it ({error})"
            self.record(
                [Event(time.time(), "estop.latch_unrecorded", Severity.CRITICAL, "safety", message, {})]
            )

    def _record_changes(self, history: list[dict[str, Any]]) -> None:
        new = [c for c in history if c["id"] not in self.known]
        if not new:
            return
        self.known.update(c["id"] for c in new)
        for change in new:  # each once: `known` starts from the store, so a restart repeats none
            audit.stop_line(change["kind"], str(change["id"]), change["reason"], str(change.get("source")))
        self.record([change_event(c) for c in new])


def change_event(change: dict[str, Any]) -> Event:
    trip = change["kind"] == "trip"
    message = change["reason"] + (f" ({change['latency_ms']:.3f} ms to the line)" if trip else "")
    return Event(
        change["ts"],
        f"estop.{change['kind']}",
        Severity.CRITICAL if trip else Severity.INFO,
        "safety",
        message,
        change,
    )


def _settle(future: asyncio.Future[dict[str, Any]], data: dict[str, Any]) -> None:
    if not future.done():
        future.set_result(data)
