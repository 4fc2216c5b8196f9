"""What the sync service needs of a way upstream: send a batch, hear its acknowledgement, know the link.

The transports (mqtt.py, https.py, and any plugin) import this module; it imports none of them: they
are entries of `TRANSPORTS` (appliance/config/sync.py), found by the `type` of `[sync.upstream]`.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.config.sync import TRANSPORTS, Upstream

log = logging.getLogger(__name__)

Ack = Callable[[object], None]  # called with the token given to send(), on the transport's thread
StateChange = Callable[[bool], None]  # connected or not, on the transport's thread


class Transport(abc.ABC):
    """Delivers batches at least once; acknowledges each only once the upstream has it."""

    kind = "transport"
    secure = False  # TLS protects what it sends (a transport says so once it knows)
    loopback = False  # the upstream is on this box: nothing crosses a network

    def __init__(self) -> None:
        self.connected = False
        self.bytes_sent = (
            0  # protocol packets handed to the socket: the bytes on the wire before TCP/IP and TLS
        )
        self.last_error: str | None = None

    @abc.abstractmethod
    def start(self, on_ack: Ack, on_state: StateChange) -> None:
        """Connect (and keep reconnecting) in the background."""

    @abc.abstractmethod
    def send(self, stream: str, priority: str, payload: bytes, token: object) -> None:
        """Hand a batch over without blocking; `on_ack(token)` follows once the upstream has it."""

    @abc.abstractmethod
    def probe(self, payload: bytes, token: object) -> None:
        """Send filler the upstream throws away, to measure the link; acknowledged like a batch."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Disconnect cleanly (an orderly stop publishes no last will)."""

    def status(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "connected": self.connected,
            "last_error": self.last_error,
            "secure": self.secure,
            "loopback": self.loopback,
        }

    def plain(self, where: str) -> None:
        """Say once per start, in the log, that what goes to `where` crosses without TLS."""
        if not self.secure:
            level, why = (
                (logging.INFO, "on this box") if self.loopback else (logging.WARNING, "insecure = true")
            )
            log.log(
                level,
                "sync: %s to %s without TLS (%s): records and credentials in clear",
                self.kind,
                where,
                why,
            )


def build_transport(upstream: Upstream, device: str, folder: Path) -> Transport:
    """The transport for the `[sync.upstream]` section; relative file names start at `folder`."""
    return TRANSPORTS.get(upstream.type)(upstream, device, folder)


# What TRANSPORTS holds: a Transport class, or a function, taking (its settings, device id, config folder).
TransportFactory = Callable[[Any, str, Path], Transport]
