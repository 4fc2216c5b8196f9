"""The stop harness: `appliance run` with the whole bench world, started and stopped again and again under
CPU load (two busy loops on every core), each stop at a chosen kind of moment, timed from outside.

Every run restarts the appliance on the same data directory, so a record the runtime said it committed
and the next start cannot find is a record lost on a stop. Moments:

- starting: SIGTERM at a random time while it starts (often before anything answers);
- running: at a random time up to a second after the first status answer;
- commit: just after the store's commit count moved, at a random phase of its commit interval;
- camera_reconnect: once QC saw the bench camera drop its clients, while it reconnects;
- broker_down: the world without its MQTT broker, the sync service retrying the connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.perf.processes import EXAMPLE

MOMENTS = ("starting", "running", "commit", "camera_reconnect", "broker_down")
CONTROL_PORT = 15099  # the bench world's fault API in examples/bench.toml
WORLD_FILES = "/tmp/edge-appliance-bench"  # where examples/bench.toml puts the world's pty links
EXIT_WAIT_S = 30.0  # a stop that takes longer is a hang: the run is killed and recorded as such
STOPPED = re.compile(r"stopped in [\d.]+ s(?: with .+)?; (\d+) readings committed \(slowest: (.*)\)")


@dataclass
class StopRun:
    moment: str
    stop_s: float  # from the signal to the exit
    code: int | None  # None: it did not exit within EXIT_WAIT_S and was killed
    start_s: float | None = None  # from the spawn to the first status answer (None: none before the stop)
    committed: int = 0  # readings the runtime said it committed in this run
    lost: int = 0  # of them, missing from the database afterwards
    overran: list[str] = field(default_factory=list)  # services that missed their stop deadline
    leftover: int = 0  # processes of this run's world still there after the exit
    slowest: str = ""  # the services that took longest to stop, as the runtime logged them

    @property
    def early(self) -> bool:
        """The signal came before the interpreter could take it (its first milliseconds): the kernel's
        default action ended the process, before it had started anything."""
        return self.code == -signal.SIGTERM and self.start_s is None and not self.committed

    @property
    def clean(self) -> bool:
        """Exit 0, or ended early by the signal; nothing lost, nothing left running."""
        return (self.code == 0 or self.early) and not self.lost and not self.leftover

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v or k in ("stop_s", "code")}


@contextlib.contextmanager
def cpu_load(seconds: float, loops: int | None = None) -> Iterator[int]:
    """Busy loops (two per core by default), each ending by itself after `seconds` or with the block."""
    count = loops or 2 * (os.cpu_count() or 1)
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(count)]
    try:
        yield count
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def world_config(http_port: int, broker: bool, folder: Path) -> tuple[str, dict[int, int]]:
    """examples/bench.toml on the given status port, the model found from anywhere, with or without the
    world's MQTT broker; the world's own ports (15xxx) moved to free ones and its files into `folder`, so
    that nothing else on the machine (a test, another bench) meets it. Also the ports it moved."""
    text = EXAMPLE.read_text().replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{http_port}"')
    text = text.replace('model = "../', f'model = "{EXAMPLE.parent.parent}/')
    moved = {int(p): _free_port() for p in sorted(set(re.findall(r"\b(15\d{3})\b", text)))}
    text = re.sub(r"\b15\d{3}\b", lambda m: str(moved[int(m.group())]), text)
    text = text.replace(WORLD_FILES, str(folder))
    ledger = f'ledger = "{folder}/upstream.db"'
    text = re.sub(r"\nupstream = \{ (mqtt = [^}]*)\}", rf"\nupstream = {{ \1, {ledger} }}", text)
    if not broker:
        text = re.sub(r"\nupstream = \{[^\n]*", "", text)
    return text, moved


def readings_in(db: Path) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
        except sqlite3.OperationalError:  # no schema yet: stopped before the store opened
            return 0


def _free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port from that range (what binding
    port 0 gives) can be taken by any outgoing connection, the runtime's own, before the run binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _get(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _post(url: str, body: dict[str, Any]) -> None:
    """POST to the bench world's fault API; a refusal raises (urllib.error.HTTPError)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


class Run:
    """One `appliance run`, watched from outside."""

    def __init__(self, folder: Path, broker: bool) -> None:
        self.port = _free_port()
        self.config = folder / "appliance.toml"
        text, moved = world_config(self.port, broker, folder / "world")
        self.config.write_text(text)
        self.control = f"http://127.0.0.1:{moved[CONTROL_PORT]}/"
        self.broker = str(folder / "world" / "broker" / "mosquitto.conf")
        self.status_url = f"http://127.0.0.1:{self.port}/api/v1/status"
        self.log = folder / "appliance.log"
        command = [sys.executable, "-m", "appliance", "run", "--config", str(self.config)]
        with open(self.log, "w") as log:
            self.began = time.monotonic()
            self.proc = subprocess.Popen(
                [*command, "--data-dir", str(folder / "data")],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # a signal to the harness's group does not reach it
            )
        self.start_s: float | None = None

    def status(self) -> dict[str, Any] | None:
        """The status, or None while nothing answers; the first answer's time is the start time."""
        try:
            status: dict[str, Any] = _get(self.status_url)
        except OSError:
            return None
        if self.start_s is None:
            self.start_s = time.monotonic() - self.began
        return status

    def wait_until(self, check: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            status = self.status()
            if status is not None and check(status):
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> tuple[float, int | None]:
        signalled = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return time.monotonic() - signalled, code


def _camera_failures(status: dict[str, Any] | None) -> int:
    return int(((status or {}).get("qc") or {}).get("camera", {}).get("failures", 0))


def _leftover(config: Path, broker: str) -> int:
    """Processes of the run still there: with its config on their command line (its world, its supervisor)
    or the world's broker's."""
    deadline = time.monotonic() + 1.0
    while True:
        found = [
            pid
            for pattern in (str(config), broker)
            for pid in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        ]
        if not found or time.monotonic() > deadline:
            return len(found)
        time.sleep(0.05)


def one(moment: str, folder: Path, rng: random.Random) -> StopRun:
    """Start, stop at `moment`, and account for what was committed."""
    db = folder / "data" / "appliance.db"
    before = readings_in(db)
    run = Run(folder, broker=moment != "broker_down")
    if moment == "starting":
        deadline = time.monotonic() + rng.uniform(0.0, 2.0)
        while time.monotonic() < deadline and run.start_s is None:
            run.status()
            time.sleep(0.02)
    else:
        run.wait_until(lambda s: bool(s["services"].get("store", {}).get("running")))
        if moment == "commit":
            commits = (run.status() or {}).get("services", {}).get("store", {}).get("commits", 0)
            run.wait_until(lambda s: s["services"]["store"]["commits"] != commits, timeout=5.0)
            time.sleep(rng.uniform(0.0, 0.2))  # examples/bench.toml commits every 200 ms
        elif moment == "camera_reconnect":
            run.wait_until(lambda s: bool((s.get("qc") or {}).get("frames")), timeout=10.0)
            failures = _camera_failures(run.status())
            _post(run.control + "camera", {"target": "line-cam", "action": "drop"})
            run.wait_until(lambda s: _camera_failures(s) > failures, timeout=5.0)  # QC saw it: reopening
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            time.sleep(rng.uniform(0.0, 1.0))
    stop_s, code = run.stop()
    text = run.log.read_text(errors="replace")
    said = STOPPED.search(text)
    committed, slowest = (int(said.group(1)), said.group(2)) if said else (0, "")
    overran = re.findall(r"ERROR appliance\.lifecycle: (\S+) did not stop within", text)
    lost = max(0, before + committed - readings_in(db))
    leftover = _leftover(run.config, run.broker)
    return StopRun(moment, round(stop_s, 3), code, run.start_s, committed, lost, overran, leftover, slowest)


def stop_runs(
    count: int, folder: Path, seed: int = 23, progress: Callable[[int, StopRun], None] | None = None
) -> list[StopRun]:
    """`count` start-and-stop runs on one data directory, moments drawn in turn at random."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    runs: list[StopRun] = []
    for i in range(count):
        moment = MOMENTS[i % len(MOMENTS)] if i < len(MOMENTS) else rng.choice(MOMENTS)
        result = one(moment, folder, rng)
        if not result.clean or result.overran:
            keep = folder / f"run{i}-{moment}.log"  # the log of a run worth reading
            keep.write_text((folder / "appliance.log").read_text(errors="replace"))
        runs.append(result)
        if progress is not None:
            progress(i, result)
    return runs
