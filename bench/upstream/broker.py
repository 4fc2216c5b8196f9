"""A real mosquitto broker for the bench: persistent, on a loopback port, optionally with a TLS listener."""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the broker before exec: the kernel sends it SIGTERM when the thread that started it ends."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def find_mosquitto() -> str | None:
    """The broker's path; Debian installs it in /usr/sbin, which a user's PATH often lacks."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@dataclass(frozen=True, slots=True)
class TlsListener:
    """A listener that takes only clients with a certificate signed by `cafile`."""

    port: int
    cafile: Path
    certfile: Path
    keyfile: Path


class BrokerError(RuntimeError):
    """The broker did not start, with the end of its log."""


class Mosquitto:
    """One mosquitto process from a config generated in `folder`; its queue survives restarts."""

    def __init__(
        self,
        folder: Path,
        port: int,
        host: str = "127.0.0.1",
        tls: TlsListener | None = None,
        prefix: list[str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.folder, self.host, self.port, self.tls = folder, host, port, tls
        self.prefix = prefix or []  # e.g. ["ip", "netns", "exec", "up"]: run inside a network namespace
        # The kernel ends the broker when the thread that started it ends (a `bench sim` killed with
        # SIGKILL, say); only for a broker started by a thread that lives as long as its owner.
        self.die_with_parent = die_with_parent
        self.config = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        lines = [
            "per_listener_settings true",
            "persistence true",
            f"persistence_location {self.folder}/",
            "autosave_interval 1",  # a SIGKILLed broker loses at most the last second of its queue
            "max_queued_messages 100000",  # a receiver away for a while must not lose batches
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # root would otherwise drop to "mosquitto"
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
        ]
        if self.tls is not None:
            lines += [
                f"listener {self.tls.port} {self.host}",
                "allow_anonymous true",  # the certificate is the credential
                f"cafile {self.tls.cafile}",
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
                "require_certificate true",
            ]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the broker and return once it accepts connections on every listener."""
        executable = find_mosquitto()
        if executable is None:
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.write_config()
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.folder / "mosquitto.out", "ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, executable, "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready(offset):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise BrokerError(f"mosquitto did not start on {self.host}:{self.port}: {self._tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: the broker saves its queue and exits."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash; queued messages since the last autosave are lost."""
        self._signal(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the broker hangs; what is sent to it waits, unacknowledged, in its socket buffers."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def _ready(self, offset: int) -> bool:
        # In a namespace the port cannot be reached from here: the broker's own log says when it runs.
        if not self.log.exists():
            return False
        with open(self.log, "rb") as log:
            log.seek(offset)
            if b" running" not in log.read():
                return False
        return bool(self.prefix) or all(self._accepts(port) for port in self._ports())

    def _ports(self) -> list[int]:
        return [self.port] + ([self.tls.port] if self.tls else [])

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _tail(self) -> str:
        text = (self.log.read_text(errors="replace") if self.log.exists() else "") + (
            (self.folder / "mosquitto.out").read_text(errors="replace")
        )
        return " | ".join(text.strip().splitlines()[-5:]) or "no output"
