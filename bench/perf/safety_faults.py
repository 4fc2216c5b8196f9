"""fault_trips_ok: faults of storage, input and time injected into real processes; a run counts when the line
is down after the trip and stays down (through a killed or restarted supervisor where the fault allows one)
until an authenticated reset, which then brings it back.

- storage (needs root: the data directory is a small tmpfs): the disk filled up under `appliance run`, its
  latch path replaced by a folder, each followed by a SIGKILL of the supervisor (the runtime spawns a
  successor); and the disk remounted read-only under a supervisor on its own, then stopped and restarted;
- input: manual trips through the API with a 200-emoji reason, a 100 KB body, a body that is not JSON, an
  unknown field, a lone surrogate;
- clock (needs libfaketime): the wall clock stepped under the bench world (safety_clock.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from appliance.safety import protocol
from appliance.safety.protocol import Kind
from bench.harness.runtime import Runtime, credential, start_runtime, stop_runtime
from bench.harness.supervisor import supervisor
from bench.perf import safety_clock
from bench.perf.line_watch import held_down, line_level, outcome, reset, tripped
from bench.perf.needs import FAKETIME, ROOT

CONFIG = '[http]\nlisten = "127.0.0.1:0"\n[safety]\nsupervisor = "{mode}"\n'
CONFIG += 'stop_line = {{ gpio = "mock", line = "STOP" }}\n'
INPUTS: dict[str, bytes] = {
    "emoji": json.dumps({"reason": "\U0001f525" * 200}).encode(),
    "100kB": json.dumps({"reason": "x" * 100_000}).encode(),
    "not-json": b"guard open, stop!",
    "unknown-field": b'{"reason": "guard", "force": true}',
    "lone-surrogate": b'{"reason": "\\ud83d"}',
}


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write until the file system refuses (ENOSPC); the file that filled it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    with contextlib.suppress(OSError):
        while os.write(fd, b"\0" * 65536):
            pass
    os.close(fd)
    return filler


def _respawned(runtime: Runtime, before: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, KeyError):
            if runtime.get("api/v1/status")["estop"]["supervisor"].get("pid") not in (None, before):
                return
        time.sleep(0.1)
    raise RuntimeError("the runtime did not spawn a new supervisor")


def _storage_under_runtime(kind: str, runs: int, folder: Path) -> list[bool]:
    """`full` or `latch-dir`: the fault, a trip, a killed supervisor; then the fault undone and a reset."""
    config = folder / f"{kind}.toml"
    config.write_text(CONFIG.format(mode="spawn"))
    journal, data = folder / f"{kind}.journal", folder / f"{kind}-data"
    with contextlib.ExitStack() as stack:
        if kind == "full":
            stack.enter_context(_tmpfs(data, "16m"))
        runtime = start_runtime(config, data, journal)
        stack.callback(stop_runtime, runtime)
        token = credential(runtime)

        def once() -> bool:
            ok = reset(runtime, token, journal)
            if kind == "full":
                undo: Callable[[], None] = fill(data).unlink
            else:
                (data / "safety-latch.json").mkdir()
                (data / "safety-latch.json" / "x").write_text("x")
                undo = lambda: shutil.rmtree(data / "safety-latch.json")  # noqa: E731
            try:
                ok = ok and runtime.post("api/v1/estop/trip", token, {"reason": "bench"})[0] == 200
                ok = ok and held_down(journal, 1.0, tripped(runtime))
                pid = runtime.get("api/v1/status")["estop"]["supervisor"]["pid"]
                os.kill(pid, signal.SIGKILL)
                _respawned(runtime, pid)
                ok = ok and held_down(journal, 1.0, tripped(runtime))
            finally:
                undo()
            return ok and reset(runtime, token, journal)

        return [outcome(once) for _ in range(runs)]


def _read_only(runs: int, folder: Path) -> list[bool]:
    """A supervisor on its own (as on a device) whose data directory goes read-only under it."""
    config = folder / "ro.toml"
    config.write_text(CONFIG.format(mode="external"))
    journal, data = folder / "ro.journal", folder / "ro-data"

    def once() -> bool:
        with supervisor(config, data, journal) as proc:
            client = _Client(data)
            client.beat()
            subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)
            try:
                client.send(Kind.TRIP, "bench")
                ok = held_down(journal, 1.0, client.tripped)
                client.close()
                proc.terminate()
                proc.wait(10)
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(data)], check=True)
        with supervisor(config, data, journal):
            client = _Client(data)
            ok = ok and held_down(journal, 0.5, client.tripped)
            ok = ok and bool(client.send(Kind.RESET, "bench")["accepted"]) and line_level(journal) == 1
            client.close()
        return ok

    with _tmpfs(data, "1m"):
        return [outcome(once) for _ in range(runs)]


def _inputs(runs: int, folder: Path) -> dict[str, list[bool]]:
    config = folder / "inputs.toml"
    config.write_text(CONFIG.format(mode="spawn"))
    journal = folder / "inputs.journal"
    runtime = start_runtime(config, folder / "inputs-data", journal)
    results: dict[str, list[bool]] = {name: [] for name in INPUTS}
    try:
        token = credential(runtime)

        def once(body: bytes) -> bool:
            ok = reset(runtime, token, journal)
            runtime.post("api/v1/estop/trip", token, raw=body)
            return ok and held_down(journal, 0.3, tripped(runtime)) and reset(runtime, token, journal)

        for _ in range(runs):
            for name, body in INPUTS.items():
                results[name].append(outcome(lambda: once(body)))  # noqa: B023 - called at once
    finally:
        stop_runtime(runtime)
    return results


class _Client:
    """The runtime's side of the supervisor's socket, by hand."""

    def __init__(self, data: Path) -> None:
        self.secret = (data / "safety.key").read_bytes()
        self.sender = protocol.Sender(self.secret, "bench")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(5)
        self.sock.connect(str(data / "safety.sock"))

    def send(self, kind: Kind, reason: str = "", data: dict[str, Any] | None = None) -> dict[str, Any]:
        self.sock.send(self.sender.message(kind, reason, data))
        return dict(protocol.decode(self.secret, self.sock.recv(1 << 20), protocol.MAX_REPLY).data)

    def beat(self) -> dict[str, Any]:
        return self.send(Kind.HEARTBEAT, data={"causes": []})

    def tripped(self) -> bool:
        """A healthy heartbeat, and the supervisor still says tripped."""
        return bool(self.beat()["state"] == "tripped")

    def close(self) -> None:
        self.sock.close()


def run(runs: int, folder: Path) -> dict[str, Any]:
    results: dict[str, list[bool]] = {}
    skipped: dict[str, str] = {}
    if ROOT.present():
        results["storage:full"] = _storage_under_runtime("full", runs, folder)
        results["storage:read-only"] = _read_only(runs, folder)
    else:
        skipped["storage:full"] = skipped["storage:read-only"] = f"mounting a tmpfs needs root: {ROOT.reason}"
    results["storage:latch-dir"] = _storage_under_runtime("latch-dir", runs, folder)
    results |= {f"input:{k}": v for k, v in _inputs(runs, folder).items()}
    if not FAKETIME.present():
        skipped["clock"] = FAKETIME.reason
    else:
        results |= {f"clock:{k}": v for k, v in safety_clock.run(runs, folder).items()}
    every = [ok for outcomes in results.values() for ok in outcomes]
    return {
        "fault_trips_ok": round(sum(every) / len(every), 3),
        "detail": {
            "runs": {k: f"{sum(v)}/{len(v)}" for k, v in results.items()},
            **({"skipped": skipped} if skipped else {}),
        },
    }
