"""Shared fixtures: free loopback ports, config files, and a real `appliance run` process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.harness.runtime import first_credential, first_use

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_config(sim_port: int, http_port: int = 0, poll_interval_s: float = 0.1) -> str:
    """A small appliance + bench config on the given loopback ports."""
    return textwrap.dedent(f"""
        [device]
        id = "test-box"

        [http]
        listen = "127.0.0.1:{http_port}"

        [store]
        commit_interval_ms = 50

        [devices.line]
        type = "modbus_tcp"
        host = "127.0.0.1"
        port = {sim_port}
        poll_interval_s = {poll_interval_s}
        timeout_s = 0.5

        [[devices.line.registers]]
        channel = "temperature"
        table = "input"
        address = 0
        datatype = "float32"
        unit = "degC"

        [[devices.line.registers]]
        channel = "setpoint"
        table = "holding"
        address = 10
        datatype = "int16"
        scale = 0.5
        unit = "degC"

        [[bench.modbus_tcp]]
        name = "line"
        port = {sim_port}

        [[bench.modbus_tcp.registers]]
        table = "input"
        address = 0
        datatype = "float32"
        signal = {{ type = "sine", mean = 20.0, amplitude = 5.0, period_s = 3.0 }}

        [[bench.modbus_tcp.registers]]
        table = "holding"
        address = 10
        datatype = "int16"
        scale = 0.5
        signal = {{ type = "constant", value = 42.5 }}
    """)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@dataclass
class ApplianceProcess:
    """A real `appliance run` child process and what it printed."""

    proc: subprocess.Popen[str]
    data_dir: Path
    url: str = ""
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)
    token: str = ""  # the admin credential, once read

    def status(self) -> Any:
        return get_json(self.url + "api/v1/status")

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s; last status: {status}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `sig`, wait for the exit and for everything it printed; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.close()
        return code

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for an exit the process chose itself; returns the exit code."""
        code = self.proc.wait(timeout)
        self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self.readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def admin_credential(self) -> str:
        """The credential a first start handed over in the data directory, read and used once (so that
        its file is gone from here on: bench/harness/runtime.py first_use)."""
        if not self.token:
            self.token = first_credential(self.data_dir)
            first_use(self.url, self.token)
        return self.token

    def post(
        self, path: str, token: str | None, body: dict[str, Any] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        """POST JSON (or `raw` bytes) as the admin (`token`) or as nobody (None); (status code, answer)."""
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} | (
            {"Authorization": f"Bearer {token}"} if token else {}
        )
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    @property
    def output(self) -> str:
        return "".join(self.stderr)

    def read_in_background(self, stream: Any, into: list[str]) -> None:
        reader = threading.Thread(target=lambda: into.extend(stream), daemon=True)
        reader.start()
        self.readers.append(reader)


def start_appliance(
    config: Path, data_dir: Path, *extra: str, ready: bool = True, cwd: Path = ROOT
) -> ApplianceProcess:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-P",  # as its own children are started: the current directory is not on the import path
            "-m",
            "appliance",
            "run",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    app = ApplianceProcess(proc, data_dir)
    assert proc.stderr is not None and proc.stdout is not None
    app.read_in_background(proc.stderr, app.stderr)
    if not ready:  # the caller waits for an exit; keep what it prints
        app.read_in_background(proc.stdout, app.stdout)
        return app
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        app.stdout.append(line)
        if line.startswith("status page: "):
            app.url = line.split(": ", 1)[1].strip()
            break
        if time.monotonic() > deadline:
            break
    if not app.url:
        app.close()
        raise AssertionError(f"appliance did not start: {app.stdout} {app.output}")
    app.read_in_background(proc.stdout, app.stdout)
    return app


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(bench_config(free_port()))
    return path


@pytest.fixture
def appliance(config_file: Path, tmp_path: Path) -> Iterator[ApplianceProcess]:
    app = start_appliance(config_file, tmp_path / "data")
    yield app
    app.close()


ASKED_FOR = {
    "hil": "needs real hardware; run with -m hil",
    "rollback": "boots the firmware image many times (20 minutes and more); run with -m rollback",
    "flash": "measures the firmware image's flash wear over minutes; run with -m flash",
    "boards": "builds the ARM boards' images under qemu-user (an hour for the three); run with -m boards",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `hil` (real hardware), `rollback` (the image's long update matrix), `flash` (the
    image's flash wear) or `boards` (the ARM images) run only when asked for by their marker: `-m hil`,
    `-m rollback`, `-m flash`, `-m boards`."""
    asked = config.option.markexpr or ""
    for marker, reason in ASKED_FOR.items():
        if marker in asked:
            continue
        for item in items:
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed `realtime` test says it checks a real-time bound of the product's contract, which bound, and
    the machine's load average when it failed: a starved CI runner reads differently from a regression."""
    report = yield
    marker = item.get_closest_marker("realtime")
    if marker is None or report.when != "call" or not report.failed:
        return report
    one, five, fifteen = os.getloadavg()
    load = f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
    bound = f": {marker.args[0]}" if marker.args else ""
    note = (
        f"{item.nodeid} checks a real-time bound of the product's contract{bound}.\n"
        f"When it failed the machine had a {load}. A load well above the CPU count makes a missed bound "
        "a starved machine first; on an idle one it is a regression. The bound is the product's promise: "
        "do not loosen it to make a loaded run pass (docs/development.md, marker `realtime`)."
    )
    addsection = getattr(report.longrepr, "addsection", None)
    if addsection is not None:
        addsection("real-time bound of the product contract", note)
    else:
        report.sections.append(("real-time bound of the product contract", note))
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:  # the -ra summary line says it too
        crash.message = f"[real-time bound; load {one:.2f} on {os.cpu_count()} CPUs] {crash.message}"
    return report
