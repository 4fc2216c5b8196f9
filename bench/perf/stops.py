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
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.http_json import post_json
from bench.harness.watched import Run

MOMENTS = ("starting", "running", "commit", "camera_reconnect", "broker_down")
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


def readings_in(db: Path) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
        except sqlite3.OperationalError:  # no schema yet: stopped before the store opened
            return 0


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
            post_json(run.control + "camera", {"target": "line-cam", "action": "drop"})
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
