"""Storage faults under a real supervisor: a full card, a card gone read-only, a latch path that is a folder,
a data directory that vanished, damaged files. None may end with the line energized without a reset.

The data directory is a real tmpfs of a few pages (mounting needs root; these tests skip without it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.safety.protocol import Kind
from bench.perf.safety_faults import fill
from tests.appliance.safety.processes import Client, Supervisor, safety_toml, start_supervisor, wait_level

LATCH = "safety-latch.json"
MARKER = "safety.sock.pid"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@pytest.fixture(autouse=True)
def no_supervisor_left(tmp_path: Path) -> Iterator[None]:
    """A failed test leaves no supervisor running behind it."""
    yield
    subprocess.run(["pkill", "-KILL", "-f", f"appliance safety --config {tmp_path}/"], check=False)


@pytest.fixture
def card(tmp_path: Path) -> Iterator[Path]:
    """A 128 KiB tmpfs as the data directory: small enough to fill in a moment."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    data = tmp_path / "data"
    data.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=128k,mode=0700", "tmpfs", str(data))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def energized(sup: Supervisor) -> Client:
    client = Client(sup.data)
    assert client.beat()["state"] == "ok"
    wait_level(sup, 1)
    return client


def latch_file(state: dict[str, Any]) -> dict[str, Any]:
    return dict(state["supervisor"]["latch_file"])


def holds_down(sup: Supervisor, client: Client, seconds: float = 1.5) -> dict[str, Any]:
    """The supervisor stays alive, tripped and de-energized while the runtime keeps beating."""
    deadline = time.monotonic() + seconds
    state = client.beat()
    while time.monotonic() < deadline:
        state = client.beat()
        assert sup.proc.poll() is None and state["state"] == "tripped" and sup.levels()[-1] == 0
        time.sleep(0.05)
    return state


def restarted(tmp_path: Path) -> tuple[Supervisor, Client, dict[str, Any]]:
    again = start_supervisor(tmp_path)
    client = Client(again.data)
    state = client.beat()
    assert state["state"] == "tripped" and again.levels()[-1] == 0
    return again, client, state


def test_a_full_card_keeps_the_trip_latched_in_memory_then_on_disk_once_there_is_room(
    tmp_path: Path, card: Path
) -> None:
    sup = start_supervisor(tmp_path)
    client = energized(sup)
    filler = fill(card)
    state = client.send(Kind.TRIP, "guard open")
    assert state["state"] == "tripped" and sup.levels()[-1] == 0
    assert latch_file(state)["recorded"] is False and "ENOSPC" in latch_file(state)["error"]
    state = holds_down(sup, client)
    assert client.send(Kind.RESET, "admin")["accepted"] is True  # a healthy runtime may still reset
    client.send(Kind.TRIP, "guard open again")
    client.close()
    assert sup.stop() == 3  # stopped with the latch in memory only: the marker stays
    assert (card / MARKER).exists() and not (card / LATCH).exists()
    again, client, state = restarted(tmp_path)
    assert "unclean exit" in state["reason"]
    filler.unlink()  # room again: the latch is written within a retry
    deadline = time.monotonic() + 3
    while not latch_file(state)["recorded"] and time.monotonic() < deadline:
        time.sleep(0.1)
        state = client.beat()
    assert latch_file(state)["recorded"] is True
    assert "unclean exit" in json.loads((card / LATCH).read_text())["reason"]
    client.close()
    assert again.stop() == 0
    third, client, state = restarted(tmp_path)  # the marker is gone now; the latch file says it
    assert "unclean exit" in state["reason"]
    client.close()
    third.stop()


def test_a_card_gone_read_only_mid_run_keeps_the_line_down_across_a_restart(
    tmp_path: Path, card: Path
) -> None:
    sup = start_supervisor(tmp_path)
    client = energized(sup)
    _mount("-o", "remount,ro", str(card))
    state = client.send(Kind.TRIP, "guard open")
    assert sup.levels()[-1] == 0 and "EROFS" in latch_file(state)["error"]
    holds_down(sup, client)
    client.close()
    assert sup.stop() == 3
    _mount("-o", "remount,rw", str(card))
    again, client, state = restarted(tmp_path)
    assert "unclean exit" in state["reason"]
    client.close()
    again.stop()


def test_a_supervisor_that_cannot_write_its_run_marker_starts_latched(tmp_path: Path) -> None:
    """Without the marker a later crash could not be told from a first start: start latched instead."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    run = tmp_path / "run"  # as on a device: the socket and its marker in /run, apart from the data
    run.mkdir()
    _mount("-t", "tmpfs", "-o", "size=16k", "tmpfs", str(run))
    try:
        fill(run)
        sup = start_supervisor(tmp_path, safety_toml(f'socket = "{run}/safety.sock"'))
        client = Client(sup.data, path=run / "safety.sock")
        state = client.beat()
        assert state["state"] == "tripped" and "cannot record that the supervisor runs" in state["reason"]
        assert "ENOSPC" in state["reason"] and sup.levels()[-1] == 0
        client.close()
        sup.stop()
    finally:
        subprocess.run(["umount", "-l", str(run)], check=False)


def test_a_data_directory_it_may_no_longer_write_keeps_the_trip(tmp_path: Path) -> None:
    """EACCES: root without the capability to override file permissions, as the unit's own user would be."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    no_override = ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
    sup = start_supervisor(tmp_path, prefix=no_override)
    client = energized(sup)
    sup.data.chmod(0o500)
    try:
        state = client.send(Kind.TRIP, "guard open")
        assert sup.levels()[-1] == 0 and "EACCES" in latch_file(state)["error"]
        holds_down(sup, client, 0.5)
        client.close()
        assert sup.stop() == 3
    finally:
        sup.data.chmod(0o700)
    again, client, state = restarted(tmp_path)
    assert "unclean exit" in state["reason"]
    client.close()
    again.stop()


def test_a_latch_path_that_is_a_folder_cannot_unlatch_anything(tmp_path: Path) -> None:
    sup = start_supervisor(tmp_path)
    client = energized(sup)
    (sup.data / LATCH).mkdir()
    (sup.data / LATCH / "something").write_text("x")
    state = client.send(Kind.TRIP, "guard open")
    assert sup.levels()[-1] == 0 and "EISDIR" in latch_file(state)["error"]
    holds_down(sup, client, 0.5)
    client.close()
    sup.proc.send_signal(signal.SIGKILL)
    sup.stop()
    again, client, state = restarted(tmp_path)
    assert "latch file could not be read" in state["reason"]
    client.close()
    again.stop()


def test_a_vanished_data_directory_keeps_the_trip(tmp_path: Path) -> None:
    sup = start_supervisor(tmp_path)
    client = energized(sup)
    shutil.rmtree(sup.data)
    state = client.send(Kind.TRIP, "guard open")
    assert sup.levels()[-1] == 0 and "ENOENT" in latch_file(state)["error"]
    holds_down(sup, client, 0.5)
    client.close()
    assert sup.stop() == 3


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (LATCH, b"{not json", "latch file"),
        (LATCH, b'["a list"]', "latch file"),
        (MARKER, b"\xff\xfe garbage", "unclean exit"),
        (MARKER, b"", "unclean exit"),
    ],
)
def test_damaged_files_start_latched(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    sup = start_supervisor(tmp_path)
    sup.stop()
    (sup.data / name).write_bytes(content)
    again, client, state = restarted(tmp_path)
    assert reason in state["reason"]
    client.close()
    again.stop()


def test_a_latch_read_back_from_a_marker_survives_a_clean_stop(tmp_path: Path) -> None:
    """Killed, restarted latched (unclean exit), then stopped cleanly before any reset: still latched."""
    sup = start_supervisor(tmp_path)
    energized(sup).close()
    sup.proc.send_signal(signal.SIGKILL)
    sup.stop()
    again, client, _ = restarted(tmp_path)
    client.close()
    assert again.stop() == 0
    third, client, state = restarted(tmp_path)
    assert "unclean exit" in state["reason"]
    client.close()
    third.stop()
