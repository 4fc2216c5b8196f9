"""The web server's connections: its listening socket, and the limits under the app (docs/web.md#limits):
uvicorn's h11 protocol with clocks that close a connection whose client is too slow, and a cap on the
connections open at once.

uvicorn's own keep-alive timer starts only after an answer, and any byte resets it, so a client sending
nothing, or its request a byte at a time, held its connection forever (slowloris). Here each connection
is checked every `tick_s`; it is closed (no answer: the client is not listening for one) when

- its request's head is not complete within `head_s` of the connection's start or of the previous answer;
- its request's body pauses for over `idle_s`, or after `body_grace_s` averages under `min_body_rate`
  (while the app itself is not reading, the client is not blamed and the body's clock starts again);
- its client stops reading the answer for over `idle_s` (a live stream that is read lasts forever; so
  does an upload that progresses).

A connection over `max_connections`, or over `max_connections_per_client` from one address (a trusted
proxy's excepted: it carries many clients), is closed as soon as it is accepted.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from appliance.web.limits import Limits

log = logging.getLogger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class LimitedH11(H11Protocol):
    """uvicorn's h11 protocol with the limits; `limited(...)` makes the class a server uses."""

    limits: ClassVar[Limits] = Limits()
    proxies: ClassVar[tuple[Network, ...]] = ()  # trusted proxies: each carries many clients
    closed: ClassVar[collections.Counter[str]] = collections.Counter()  # by the limits, by reason

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state: object = None  # the client's h11 state when last seen
        self._since = self._last_read = time.monotonic()
        self._read = self._read_at_since = 0  # bytes received in all, and when the state last changed
        self._write_paused_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if (why := self._over_cap()) is not None:
            self._close(why)
            return
        self._seen(time.monotonic())
        self._timer = self.loop.call_later(self.limits.tick_s, self._tick)

    def _over_cap(self) -> str | None:
        if len(self.connections) > self.limits.max_connections:
            return "connections"
        client = self.client[0] if self.client else ""
        if in_networks(client, self.proxies):
            return None
        same = sum(1 for other in self.connections if (getattr(other, "client", None) or ("",))[0] == client)
        return "connections_per_client" if same > self.limits.max_connections_per_client else None

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self._last_read = now
        self._read += len(data)
        super().data_received(data)
        self._seen(now)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._seen(time.monotonic())

    def pause_writing(self) -> None:
        self._write_paused_at = time.monotonic()
        super().pause_writing()

    def resume_writing(self) -> None:
        self._write_paused_at = None
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def _seen(self, now: float) -> None:
        """Start the clock of the client's new state (waiting for a head, sending a body, done)."""
        if self.conn.their_state is not self._state:
            self._state, self._since, self._read_at_since = self.conn.their_state, now, self._read

    def _tick(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if (why := self._overdue(time.monotonic())) is not None:
            self._close(why)
            return
        self._timer = self.loop.call_later(self.limits.tick_s, self._tick)

    def _overdue(self, now: float) -> str | None:
        """Why the connection is to be closed now, or None."""
        limits, state = self.limits, self.conn.their_state
        if self._write_paused_at is not None and now - self._write_paused_at > limits.idle_s:
            return "answer_not_read"
        if state is h11.IDLE:
            return "head_too_slow" if now - self._since > limits.head_s else None
        if state is not h11.SEND_BODY:
            return None
        if self.flow.read_paused:  # the app is not reading: the body's clocks start again when it does
            self._since, self._last_read, self._read_at_since = now, now, self._read
            return None
        if now - self._last_read > limits.idle_s:
            return "body_stalled"
        allowed = limits.body_grace_s + (self._read - self._read_at_since) / limits.min_body_rate
        return "body_too_slow" if now - self._since > allowed else None

    def _close(self, why: str) -> None:
        """Close at once, nothing more sent: the client is not listening, or is one too many."""
        self.closed[why] += 1
        log.debug("closing a connection from %s: %s", self.client, why)
        self.transport.abort()


def in_networks(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def limited(
    limits: Limits, proxies: Sequence[Network] = (), closed: collections.Counter[str] | None = None
) -> type[LimitedH11]:
    """The protocol class for one server: its `limits`, the trusted proxies' networks, and where to count
    the connections it closes."""
    fields = {
        "limits": limits,
        "proxies": tuple(proxies),
        "closed": collections.Counter() if closed is None else closed,
    }
    return type("LimitedH11", (LimitedH11,), fields)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound now so a busy port is an error at start, not later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock
