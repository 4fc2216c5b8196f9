"""What a running appliance keeps is its user's alone: the data directory is made 0700 (or made so, if it is
ours and others could enter it) and refused if another user owns it; the database with its -wal and -shm,
the evidence, the safety key, latch and socket, the credential, the page's certificate: nothing in it lets
its group or others in."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from bench.harness.worlds import world_config
from tests.appliance.safety.processes import safety_command, safety_toml
from tests.conftest import ROOT, bench_config, free_port, start_appliance

NOBODY = 65534
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")


def open_to_others(folder: Path) -> dict[str, str]:
    """Everything under `folder` (itself included) that its group or others may use, with its mode."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        seen = path.lstat()
        if stat.S_ISLNK(seen.st_mode):
            continue
        if stat.S_IMODE(seen.st_mode) & 0o077 or seen.st_uid != os.geteuid():
            found[str(path.relative_to(folder.parent))] = f"{stat.S_IMODE(seen.st_mode):o} uid {seen.st_uid}"
    return found


def test_a_new_data_directory_and_what_the_box_writes_are_private(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(bench_config(free_port()))
    data = tmp_path / "deep" / "data"  # its parents are made too
    app = start_appliance(config, data)
    try:
        app.wait_for(lambda s: s["services"]["store"]["rows_committed"] > 0)
        names = {p.name for p in data.rglob("*")}
        assert {"appliance.db", "appliance.db-wal", "admin-credential.json"} <= names
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert open_to_others(data) == {}
    finally:
        assert app.stop() == 0


def test_a_data_directory_of_ours_that_others_may_enter_is_made_private(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(bench_config(free_port()))
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "appliance.db").touch(mode=0o644)  # an older release's database, as its umask left it
    (data / "appliance.db").chmod(0o644)
    app = start_appliance(config, data)
    try:
        app.wait_for(lambda s: s["services"]["store"]["rows_committed"] > 0)
        assert open_to_others(data) == {}
    finally:
        assert app.stop() == 0
    assert f"the data directory {data} had mode 755; made it 700" in app.output


@AS_ROOT
def test_a_data_directory_of_another_user_is_refused_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(bench_config(free_port()))
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)
    app = start_appliance(config, data, ready=False)
    assert app.wait(30) == 2, app.output
    assert (
        f"appliance: the data directory {data} is owned by nobody, not by root, the user the appliance runs "
        f"as; if it is the box's own: chown -R root {data} && chmod 700 {data}"
    ) in app.output
    assert list(data.iterdir()) == [] and stat.S_IMODE(data.stat().st_mode) == 0o700  # left as it was

    (tmp_path / "safety.toml").write_text(safety_toml())
    supervisor = subprocess.run(
        safety_command(tmp_path / "safety.toml", data),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        env={**os.environ, "APPLIANCE_GPIO_MOCK_JOURNAL": str(tmp_path / "journal")},
    )
    assert supervisor.returncode == 2, supervisor.stderr
    assert f"appliance safety: the data directory {data} is owned by nobody" in supervisor.stderr
    assert list(data.iterdir()) == []


def test_a_data_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(bench_config(free_port()))
    (tmp_path / "data").write_text("not a folder")
    app = start_appliance(config, tmp_path / "data", ready=False)
    assert app.wait(30) == 2, app.output
    assert f"appliance: the data directory {tmp_path / 'data'} is not a directory" in app.output


def test_the_whole_bench_world_keeps_its_files_private(tmp_path: Path) -> None:
    """Evidence, the safety supervisor's key, latch and socket, the sync's batches: all of it private."""
    text, _ = world_config(0, False, tmp_path / "world")
    config = tmp_path / "appliance.toml"
    config.write_text(text)
    data = tmp_path / "data"
    app = start_appliance(config, data)
    try:
        app.wait_for(lambda s: s["qc"] is not None and s["qc"]["evidence"]["saved"] >= 2, timeout=60)
        names = {p.name for p in data.rglob("*")}
        assert {"safety.key", "safety.sock"} <= names and any(n.endswith(".thumb.jpg") for n in names)
        assert open_to_others(data) == {}
    finally:
        assert app.stop() == 0
