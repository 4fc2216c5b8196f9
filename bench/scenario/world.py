"""The box a scenario runs against: a fresh `appliance run` on the scenario's world (the bench world of
examples/bench.toml with its changes, through the harness), or a box at an address."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.harness.runtime import first_credential, first_use
from bench.harness.watched import Run
from bench.scenario.model import World

CAMERA_TABLE = "[[bench.cameras]]"
TCP_SLAVE = "[[bench.modbus_tcp]]\n"
START_S = 60.0  # from the spawn to the status page answering: a loaded machine takes a while
CREDENTIAL_ENV = "BENCH_ADMIN_CREDENTIAL"  # the admin credential of a box given by --target


@dataclass
class Box:
    """Where the scenario's requests go: the box's API and the bench world's fault API."""

    url: str  # the status page, ending in /
    control: str  # the fault API, ending in /
    token: str | None  # the admin credential; None: the steps on the stop line cannot be done
    local: bool  # the runtime runs on this machine: its memory can be read (its pid is in its status)
    log: Path | None = None  # its log, when we started it


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value) if isinstance(value, float | int) else f'"{value}"'


def edit_world(world: World) -> Callable[[str], str]:
    """The change to the config's text that gives the camera and the Modbus TCP slaves the scenario's
    settings. The camera is the world's last table, so its keys are replaced at the end of the text."""
    changes = world.camera.model_dump(exclude_none=True)

    def edit(text: str) -> str:
        if world.holes is not None:
            if TCP_SLAVE not in text:
                raise RuntimeError(f"the bench world has no {TCP_SLAVE.strip()} any more")
            text = text.replace(TCP_SLAVE, f'{TCP_SLAVE}holes = "{world.holes}"\n')
        if not changes:
            return text
        head, table, tail = text.rpartition(CAMERA_TABLE)
        if not table or re.search(r"^\[", tail, flags=re.M):
            raise RuntimeError(f"the bench world's last table is no longer {CAMERA_TABLE}")
        kept = [line for line in tail.splitlines() if line.split("=")[0].strip() not in changes]
        added = [f"{key} = {toml_value(value)}" for key, value in changes.items()]
        edited = head + table + "\n".join([*kept, *added]) + "\n"
        tomllib.loads(edited)  # a mistake here is ours: say so before the box reads it
        return edited

    return edit


@contextlib.contextmanager
def fresh_box(world: World, keep: Path) -> Iterator[Box]:
    """`appliance run` on the scenario's world until the block ends; its log is copied to `keep`."""
    with tempfile.TemporaryDirectory(prefix="bench-scenario-") as folder:
        run = Run(Path(folder), world.broker, edit=edit_world(world))
        try:
            if not run.wait_until(lambda _: True, timeout=START_S):
                raise RuntimeError(f"appliance run did not answer within {START_S:g} s: {tail(run.log)}")
            url = run.status_url.removesuffix("api/v1/status")
            token = first_credential(run.data)
            first_use(url, token)
            yield Box(url, run.control, token, True, run.log)
        finally:
            run.stop()
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(run.log, keep / "appliance.log")


def tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return log.read_text()[-1500:]
    return "(no log)"


def target_box(url: str, control: str) -> Box:
    """A box at an address: its credential from the environment; its memory read when it is this machine."""
    url = url if url.endswith("/") else url + "/"
    token = os.environ.get(CREDENTIAL_ENV) or None
    local = urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")
    return Box(url, control if control.endswith("/") else control + "/", token, local)
