"""Helpers for safety tests: the supervisor as a real process, and a client speaking its protocol."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.safety import protocol
from appliance.safety.protocol import Kind
from hal.gpio.mock import JOURNAL_ENV, read_journal

ROOT = Path(__file__).resolve().parents[3]
DEADLINE_MS, TICK_MS = 200, 10


def safety_toml(extra: str = "") -> str:
    return textwrap.dedent(f"""
        [safety]
        heartbeat_interval_ms = 50
        heartbeat_deadline_ms = {DEADLINE_MS}
        tick_ms = {TICK_MS}
        stop_line = {{ gpio = "mock", line = "STOP" }}
        {extra}
    """)


@dataclass
class Supervisor:
    proc: subprocess.Popen[str]
    data: Path
    journal: Path
    lines: list[str] = field(default_factory=list)

    def levels(self) -> list[int]:
        return [t.level for t in read_journal(self.journal)]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(10)
        assert self.proc.stderr is not None and self.proc.stdout is not None
        if self.proc.stderr.closed:
            return code
        self.lines.append(self.proc.stderr.read())
        self.proc.stderr.close()
        self.proc.stdout.close()
        return code


def safety_command(config: Path, data: Path) -> list[str]:
    return [sys.executable, "-m", "appliance", "safety", "--config", str(config), "--data-dir", str(data)]


def run_supervisor(
    config: Path, data: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`appliance safety` expected to exit by itself (a refused start)."""
    return subprocess.run(
        safety_command(config, data),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=30,
        check=False,
    )


def start_supervisor(
    tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> Supervisor:
    """`appliance safety` on tmp_path/data; `prefix` runs it under another command (setpriv, ...)."""
    config = tmp_path / "appliance.toml"
    config.write_text(toml or safety_toml())
    journal = tmp_path / "journal"
    proc = subprocess.Popen(
        [*prefix, *safety_command(config, tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, JOURNAL_ENV: str(journal), "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip()
    if ready != "safety supervisor ready":
        proc.kill()
        raise AssertionError(f"supervisor did not start: {ready!r} {proc.communicate()}")
    return Supervisor(proc, tmp_path / "data", journal)


class Client:
    """What the runtime does on the socket, by hand."""

    def __init__(self, data: Path, secret: bytes | None = None, path: Path | None = None) -> None:
        self.secret = secret or (data / "safety.key").read_bytes()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(5)
        self.sock.connect(str(path or data / "safety.sock"))
        self.sender = protocol.Sender(self.secret, "test")
        self.sent: list[bytes] = []

    def send(self, kind: Kind, reason: str = "", data: dict[str, Any] | None = None) -> dict[str, Any]:
        packet = self.sender.message(kind, reason, data)
        self.sent.append(packet)
        return self.raw(packet)

    def raw(self, packet: bytes) -> dict[str, Any]:
        self.sock.send(packet)
        return dict(protocol.decode(self.secret, self.sock.recv(1 << 20), protocol.MAX_REPLY).data)

    def beat(self, *causes: str) -> dict[str, Any]:
        return self.send(Kind.HEARTBEAT, data={"causes": list(causes)})

    def close(self) -> None:
        self.sock.close()


def wait_level(s: Supervisor, level: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s.levels() and s.levels()[-1] == level:
            return
        time.sleep(0.005)
    raise AssertionError(f"line never went to {level}: {s.levels()}")
