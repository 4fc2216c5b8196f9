"""`appliance run` as a child process: started and waited for until its status page answers, with the admin
credential a first start handed over in its data directory, driven through its API, and stopped; the mock
line's journal given to it."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.children import JOURNAL_ENV
from bench.harness.http_json import get_json

FIRST_CREDENTIAL = "admin-credential.first"  # where a first start without a terminal hands it over
FIRST_CREDENTIAL_LINE = re.compile(r"admin credential of this box \(user admin\): (\S+)\n")


@dataclass
class Runtime:
    """`appliance run` as a child process on the data directory `data`."""

    proc: subprocess.Popen[str]
    data: Path
    url: str = ""
    lines: list[str] = field(default_factory=list)
    token: str = ""  # the admin credential, once read

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
        return get_json(self.url + path, timeout=10)


def start_runtime(config: Path, data: Path, journal: Path, env: dict[str, str] | None = None) -> Runtime:
    """`appliance run` on `config` and `data`, once it printed its status page's address; its log goes to
    appliance.log beside `data`."""
    with open(data.parent / "appliance.log", "a") as log:  # the child keeps its own copy of the file
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "run", "--config", str(config), "--data-dir", str(data)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, JOURNAL_ENV: str(journal), "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    runtime = Runtime(proc, data)
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
    """The admin credential of the runtime's first start, read and used once (`first_use`)."""
    if not runtime.token:
        runtime.token = first_credential(runtime.data)
        first_use(runtime.url, runtime.token)
    return runtime.token


def first_credential(data: Path, timeout_s: float = 10.0) -> str:
    """The credential a first start without a terminal wrote to DATA/admin-credential.first (the one place
    the bench and the tests read it). The file goes at the first login with it: read it before."""
    path = data / FIRST_CREDENTIAL
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        if match := FIRST_CREDENTIAL_LINE.fullmatch(text):
            return match.group(1)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path}: no admin credential in it ({text!r:.40})")
        time.sleep(0.02)


def first_use(url: str, token: str) -> None:
    """Prove the credential once (GET /api/v1/session as a bearer). The runtime deletes its first start's
    file at the first login with it: that happens now, not in the middle of what the caller does next (a
    disk filled to the last byte would get the file's page back)."""
    request = urllib.request.Request(url + "api/v1/session", headers={"Authorization": f"Bearer {token}"})
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the box's own certificate, if any
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        if json.load(answer).get("user") != "admin":
            raise RuntimeError(f"{url}: the first start's credential was not taken")


def stop_runtime(runtime: Runtime) -> None:
    """SIGTERM (after a SIGCONT, should it be stopped), then SIGKILL if it has not exited in 15 s."""
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
