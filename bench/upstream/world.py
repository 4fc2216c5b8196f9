"""The upstream as a part of `bench sim`: a mosquitto of its own (when installed) and the receiver."""

from __future__ import annotations

import logging
from pathlib import Path

from bench.config import UpstreamSim
from bench.upstream.broker import Mosquitto, find_mosquitto
from bench.upstream.receiver import Receiver

log = logging.getLogger(__name__)


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


class SimulatedUpstream:
    """Started and stopped by the world; blocking calls, run them in a thread."""

    def __init__(self, settings: UpstreamSim) -> None:
        self.settings = settings
        self.ledger = Path(settings.ledger)
        self.broker: Mosquitto | None = None
        self.receiver: Receiver | None = None

    def start(self) -> list[str]:
        """Start the broker and the receiver; the lines to announce (or why a part is missing)."""
        lines = []
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        mqtt = _address(self.settings.mqtt) if self.settings.mqtt else None
        if mqtt is not None and self.settings.spawn_broker:
            if find_mosquitto() is None:
                lines.append("upstream: mosquitto is not installed; no broker (apt-get install mosquitto)")
                mqtt = None
            else:
                folder = self.ledger.parent / "broker"
                folder.mkdir(exist_ok=True)
                self.broker = Mosquitto(folder, mqtt[1], host=mqtt[0], die_with_parent=True)
                self.broker.start()
                lines.append(f"upstream broker mqtt://{mqtt[0]}:{mqtt[1]}")
        http = _address(self.settings.http) if self.settings.http else None
        files = self.ledger.parent / "evidence"
        self.receiver = Receiver(self.ledger, mqtt, self.settings.prefix, http, files=files)
        self.receiver.start()
        lines.append(
            f"upstream receiver ledger {self.ledger}" + (f" http {self.receiver.url}" if http else "")
        )
        return lines

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        if self.broker is not None:
            self.broker.stop()
