"""`appliance run` on the whole bench world, watched from outside: spawned without waiting, its status polled
(the first answer times its start), and stopped by SIGTERM with the stop timed. The stop harness
(bench/perf/stops.py), the flash window (bench/perf/flash.py) and the runtime's footprint
(bench/perf/runtime_footprint.py) measure with it."""

from __future__ import annotations

import collections
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from bench.harness.http_json import get_json
from bench.harness.ports import port_below_ephemeral
from bench.harness.worlds import CONTROL_PORT, world_config

EXIT_WAIT_S = 30.0  # a stop that takes longer is a hang: the run is killed and recorded as such


class Run:
    """One `appliance run`, watched from outside, on folder/appliance.toml and folder/data. Its log goes to
    folder/appliance.log, or to `stderr` when given (subprocess.PIPE: the caller reads it). `edit` changes
    the config's text before the start (a scenario's world)."""

    def __init__(
        self,
        folder: Path,
        broker: bool,
        stderr: int | None = None,
        edit: Callable[[str], str] | None = None,
    ) -> None:
        self.port = port_below_ephemeral()
        self.config = folder / "appliance.toml"
        text, moved = world_config(self.port, broker, folder / "world")
        self.config.write_text(edit(text) if edit is not None else text)
        self.data = folder / "data"
        self.control = f"http://127.0.0.1:{moved[CONTROL_PORT]}/"
        self.broker = str(folder / "world" / "broker" / "mosquitto.conf")
        self.status_url = f"http://127.0.0.1:{self.port}/api/v1/status"
        self.log = folder / "appliance.log"
        command = [sys.executable, "-m", "appliance", "run", "--config", str(self.config)]
        with contextlib.ExitStack() as stack:
            log: int | IO[str] = stack.enter_context(open(self.log, "w")) if stderr is None else stderr
            self.began = time.monotonic()
            self.proc = subprocess.Popen(
                [*command, "--data-dir", str(self.data)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # a signal to the harness's group does not reach it
            )
        self.start_s: float | None = None

    def status(self) -> dict[str, Any] | None:
        """The status, or None while nothing answers; the first answer's time is the start time."""
        try:
            status: dict[str, Any] = get_json(self.status_url)
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
        """SIGTERM; the seconds to the exit and its code (None: killed after EXIT_WAIT_S)."""
        signalled = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return time.monotonic() - signalled, code


class QuietRun(Run):
    """A run whose log goes to a pipe rather than a file on the disk being measured (a box logs to the
    journal, another process); the pipe is drained, its tail kept for an error (and written to the log
    file once stopped)."""

    def __init__(self, folder: Path, broker: bool) -> None:
        super().__init__(folder, broker, stderr=subprocess.PIPE)
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail.append(line.decode(errors="replace"))

    def stop(self) -> tuple[float, int | None]:
        result = super().stop()
        self._drain.join(5)
        self.log.write_text("".join(self.tail))
        return result
