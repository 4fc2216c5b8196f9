"""The appliance's processes as `bench perf` runs them: `appliance run` with the admin credential it
printed, and `appliance safety` on its own, both watching the mock line's journal given to them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hal.gpio.mock import JOURNAL_ENV

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bench.toml"


@dataclass
class Runtime:
    """`appliance run` as a child process, with the admin credential it printed."""

    proc: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)

    def post(
        self, path: str, token: str, body: dict[str, Any] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body or {}).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Authorization": f"Bearer {token}"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)


def start_runtime(config: Path, data: Path, journal: Path, env: dict[str, str] | None = None) -> Runtime:
    with open(data.parent / "appliance.log", "a") as log:  # the child keeps its own copy of the file
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "run", "--config", str(config), "--data-dir", str(data)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, JOURNAL_ENV: str(journal), "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    runtime = Runtime(proc)
    assert proc.stdout is not None
    for line in proc.stdout:
        runtime.lines.append(line)
        if line.startswith("status page: "):
            runtime.url = line.split(": ", 1)[1].strip()
            break
    if not runtime.url:
        proc.kill()
        tail = (data.parent / "appliance.log").read_text()[-2000:]
        raise RuntimeError(f"appliance run did not start: {''.join(runtime.lines)}{tail}")
    threading.Thread(target=lambda: runtime.lines.extend(proc.stdout or []), daemon=True).start()
    return runtime


def credential(runtime: Runtime) -> str:
    """The credential a first start prints right after the status page line."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in runtime.lines:
            if match := re.match(r"admin credential .*: admin / (\S+)", line):
                return match.group(1)
        time.sleep(0.02)
    raise RuntimeError("appliance run printed no admin credential")


def stop_runtime(runtime: Runtime) -> None:
    if runtime.proc.poll() is None:
        runtime.proc.send_signal(signal.SIGCONT)
        runtime.proc.terminate()
    try:
        runtime.proc.wait(15)
    except subprocess.TimeoutExpired:
        runtime.proc.kill()
        runtime.proc.wait()


def wait_for_qc(runtime: Runtime, timeout: float = 30.0) -> None:
    """Until the QC pipeline has decided on frames: the whole bench world is running."""
    deadline = time.monotonic() + timeout
    while not (runtime.get("api/v1/status").get("qc") or {}).get("frames"):
        if time.monotonic() > deadline:
            raise RuntimeError("the QC pipeline did not start")
        time.sleep(0.2)


def bench_world(extra: str) -> str:
    """examples/bench.toml on a free status port, the model found from anywhere, its [safety] replaced by
    `extra` (its own rules would interleave the trips a benchmark makes)."""
    text = EXAMPLE.read_text().replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
    text = re.sub(r"\n\[safety\].*?(?=\n# ---)", "\n", text, flags=re.S)
    return text.replace('model = "../', f'model = "{EXAMPLE.parent.parent}/') + extra


def start_supervisor(config: Path, data: Path, journal: Path) -> subprocess.Popen[str]:
    """`appliance safety` on its own, as on a device, once it says it is ready."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "safety", "--config", str(config), "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, JOURNAL_ENV: str(journal)},
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "safety supervisor ready":
        proc.kill()
        raise RuntimeError("appliance safety did not start")
    return proc


def stop_supervisor(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def supervisor(config: Path, data: Path, journal: Path) -> Iterator[subprocess.Popen[str]]:
    proc = start_supervisor(config, data, journal)
    try:
        yield proc
    finally:
        stop_supervisor(proc)
