"""fault_trips_ok: faults of storage, input and time injected into real processes; a run counts when the line
is down after the trip and stays down (through a killed or restarted supervisor where the fault allows one)
until an authenticated reset, which then brings it back.

- storage (needs root: the data directory is a small tmpfs): the disk filled up under `appliance run`, its
  latch path replaced by a folder, each followed by a SIGKILL of the supervisor (the runtime spawns a
  successor); and the disk remounted read-only under a supervisor on its own, then stopped and restarted;
- input: manual trips through the API with a 200-emoji reason, a 100 KB body, a body that is not JSON, an
  unknown field, a lone surrogate;
- clock (needs libfaketime): the wall clock of the runtime and its bench world stepped 6 h forward or back:
  no false trip; then a serial sensor silenced through the bench's fault API and the clock stepped back to
  the true time at once: its stale rule must still trip the line in time.
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
from bench.harness import faketime
from bench.harness.http_json import post_json
from bench.harness.runtime import Runtime, credential, start_runtime, stop_runtime
from bench.harness.supervisor import supervisor
from bench.harness.worlds import bench_world
from hal.gpio.mock import read_journal

CONTROL = "127.0.0.1:15099"
CONFIG = '[http]\nlisten = "127.0.0.1:0"\n[safety]\nsupervisor = "{mode}"\n'
CONFIG += 'stop_line = {{ gpio = "mock", line = "STOP" }}\n'
INPUTS: dict[str, bytes] = {
    "emoji": json.dumps({"reason": "\U0001f525" * 200}).encode(),
    "100kB": json.dumps({"reason": "x" * 100_000}).encode(),
    "not-json": b"guard open, stop!",
    "unknown-field": b'{"reason": "guard", "force": true}',
    "lone-surrogate": b'{"reason": "\\ud83d"}',
}


def _level(journal: Path) -> int:
    rows = read_journal(journal)
    return rows[-1].level if rows else 0


def _held_down(journal: Path, seconds: float, tripped: Callable[[], bool]) -> bool:
    """The wire stays down for `seconds`, and then the box says it is latched (asked at the end: the
    runtime's view follows the supervisor's answers, a moment after the wire)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _level(journal) != 0:
            return False
        time.sleep(0.05)
    return tripped() and _level(journal) == 0


def _reset(runtime: Runtime, token: str, journal: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _level(journal) == 1:
            return True
        with contextlib.suppress(OSError):
            runtime.post("api/v1/estop/reset", token)
        time.sleep(0.05)
    return False


def _tripped(runtime: Runtime) -> Callable[[], bool]:
    return lambda: bool(runtime.get("api/v1/status")["estop"]["latched"])


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
            ok = _reset(runtime, token, journal)
            if kind == "full":
                undo: Callable[[], None] = fill(data).unlink
            else:
                (data / "safety-latch.json").mkdir()
                (data / "safety-latch.json" / "x").write_text("x")
                undo = lambda: shutil.rmtree(data / "safety-latch.json")  # noqa: E731
            try:
                ok = ok and runtime.post("api/v1/estop/trip", token, {"reason": "bench"})[0] == 200
                ok = ok and _held_down(journal, 1.0, _tripped(runtime))
                pid = runtime.get("api/v1/status")["estop"]["supervisor"]["pid"]
                os.kill(pid, signal.SIGKILL)
                _respawned(runtime, pid)
                ok = ok and _held_down(journal, 1.0, _tripped(runtime))
            finally:
                undo()
            return ok and _reset(runtime, token, journal)

        return [_outcome(once) for _ in range(runs)]


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
                ok = _held_down(journal, 1.0, client.tripped)
                client.close()
                proc.terminate()
                proc.wait(10)
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(data)], check=True)
        with supervisor(config, data, journal):
            client = _Client(data)
            ok = ok and _held_down(journal, 0.5, client.tripped)
            ok = ok and bool(client.send(Kind.RESET, "bench")["accepted"]) and _level(journal) == 1
            client.close()
        return ok

    with _tmpfs(data, "1m"):
        return [_outcome(once) for _ in range(runs)]


def _inputs(runs: int, folder: Path) -> dict[str, list[bool]]:
    config = folder / "inputs.toml"
    config.write_text(CONFIG.format(mode="spawn"))
    journal = folder / "inputs.journal"
    runtime = start_runtime(config, folder / "inputs-data", journal)
    results: dict[str, list[bool]] = {name: [] for name in INPUTS}
    try:
        token = credential(runtime)

        def once(body: bytes) -> bool:
            ok = _reset(runtime, token, journal)
            runtime.post("api/v1/estop/trip", token, raw=body)
            return ok and _held_down(journal, 0.3, _tripped(runtime)) and _reset(runtime, token, journal)

        for _ in range(runs):
            for name, body in INPUTS.items():
                results[name].append(_outcome(lambda: once(body)))  # noqa: B023 - called at once
    finally:
        stop_runtime(runtime)
    return results


CLOCK_SAFETY = """
[safety]
trip_on_qc = false
stop_line = { gpio = "mock", line = "STOP" }

[[safety.rules]]
type = "stale"
name = "air sensor silent"
sensor = "air.temperature"
after_s = 2.0
"""


def _clock_world(folder: Path) -> Path:
    """examples/bench.toml with one critical rule: the serial air sensor must not fall silent."""
    config = folder / "clock.toml"
    config.write_text(bench_world(CLOCK_SAFETY))
    return config


def _clock(runs: int, folder: Path) -> dict[str, list[bool]]:
    """The wall clock stepped under the bench world: no false trip for 3 s, then the air sensor silenced
    through the bench's fault API must still trip the line in time, and it stays down until a reset."""
    journal, offset = folder / "clock.journal", folder / "clock.offset"
    faketime.step(offset, 0)
    runtime = start_runtime(
        _clock_world(folder), folder / "clock-data", journal, faketime.environment(offset)
    )
    results: dict[str, list[bool]] = {"+6h": [], "-6h": []}
    try:
        token = credential(runtime)

        def once(hours: int) -> bool:
            """Step, no false trip; then the sensor falls silent and the clock steps back at once: its
            stale rule must still trip (a step back must not make an old value look fresh)."""
            if not _reset(runtime, token, journal, timeout=20):
                return _failed(runtime, "clock: the line did not come up before the step")
            faketime.step(offset, hours * 3600)
            try:
                time.sleep(1.5)  # the step is seen within a second
                if not _held(journal, 1, 3.0):
                    return _failed(runtime, f"clock {hours:+d} h: the line dropped after the step")
                _control("serial", {"target": "air", "action": "silence"})
                silenced = time.monotonic()
                faketime.step(offset, 0)
                if not _down_within(journal, silenced, 2.0 + 1.5):  # after_s, the step seen, a heartbeat
                    return _failed(runtime, f"clock {hours:+d} h: a silent input did not trip in time")
                if not _held_down(journal, 1.0, _tripped(runtime)):
                    return _failed(runtime, f"clock {hours:+d} h: the line came back without a reset")
            finally:
                _control("serial", {"target": "air", "action": "resume"})
                faketime.step(offset, 0)
            return _reset(runtime, token, journal, timeout=20) or _failed(runtime, "clock: no reset after")

        for _ in range(runs):
            for name, hours in (("+6h", 6), ("-6h", -6)):
                results[name].append(_outcome(lambda: once(hours)))  # noqa: B023 - called at once
    finally:
        stop_runtime(runtime)
    return results


def _held(journal: Path, level: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _level(journal) != level:
            return False
        time.sleep(0.05)
    return True


def _down_within(journal: Path, since: float, seconds: float) -> bool:
    while time.monotonic() < since + seconds:
        if _level(journal) == 0:
            return True
        time.sleep(0.02)
    return False


def _control(route: str, body: dict[str, str]) -> None:
    """The bench world's fault API (examples/bench.toml: [bench] control)."""
    post_json(f"http://{CONTROL}/{route}", body)


def _failed(runtime: Runtime, what: str) -> bool:
    """Say which step of a run failed, with the stop output's state then."""
    estop = runtime.get("api/v1/status")["estop"]
    print(f"bench perf: safety fault run failed: {what} ({estop['phase']}: {estop['reason']})", flush=True)
    return False


def _outcome(attempt: Callable[[], bool]) -> bool:
    """A run that raised (a process gone, an answer that never came) counts as a failed run."""
    try:
        return attempt()
    except (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as exc:
        print(f"bench perf: safety fault run failed: {type(exc).__name__}: {exc}", flush=True)
        return False


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
    if os.geteuid() == 0:
        results["storage:full"] = _storage_under_runtime("full", runs, folder)
        results["storage:read-only"] = _read_only(runs, folder)
    else:
        skipped["storage:full"] = skipped["storage:read-only"] = "mounting a tmpfs needs root"
    results["storage:latch-dir"] = _storage_under_runtime("latch-dir", runs, folder)
    results |= {f"input:{k}": v for k, v in _inputs(runs, folder).items()}
    if faketime.library() is None:
        skipped["clock"] = "libfaketime is not installed (Debian package faketime)"
    else:
        results |= {f"clock:{k}": v for k, v in _clock(runs, folder).items()}
    every = [ok for outcomes in results.values() for ok in outcomes]
    return {
        "fault_trips_ok": round(sum(every) / len(every), 3),
        "detail": {
            "runs": {k: f"{sum(v)}/{len(v)}" for k, v in results.items()},
            **({"skipped": skipped} if skipped else {}),
        },
    }
