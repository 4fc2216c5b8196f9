"""The admin credential a first start makes never goes to standard output unless that is a terminal: on a box
standard output is the journal. Else it is handed over in a file of the data directory (mode 0600, never
through a link), deleted at the first login with it."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.harness.runtime import FIRST_CREDENTIAL, first_credential
from tests.conftest import ROOT, start_appliance

CONFIG = '[http]\nlisten = "127.0.0.1:0"\n'


def login(url: str, password: str) -> int:
    request = urllib.request.Request(
        url + "api/v1/login", json.dumps({"password": password}).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def test_without_a_terminal_the_credential_goes_to_a_private_file_deleted_at_the_first_login(
    tmp_path: Path,
) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(CONFIG)
    data = tmp_path / "data"
    app = start_appliance(config, data)
    try:
        file = data / FIRST_CREDENTIAL
        deadline = time.monotonic() + 10
        while not any(line.startswith("admin credential") for line in app.stdout):
            assert time.monotonic() < deadline, app.stdout
            time.sleep(0.05)
        said = next(line for line in app.stdout if line.startswith("admin credential"))
        assert said.strip() == (
            f"admin credential: in {file} (mode 600); read it and keep it, it is deleted at the first "
            "login with it"
        )
        seen = os.lstat(file)
        assert seen.st_mode & 0o777 == 0o600 and seen.st_uid == os.geteuid()
        plain = first_credential(data)
        assert file.read_text() == f"admin credential of this box (user admin): {plain}\n"
        assert login(app.url, "wrong") == 401 and file.exists()  # a wrong one deletes nothing
        assert login(app.url, plain) == 200
        assert not file.exists()
        assert login(app.url, plain) == 200  # the credential itself stays
    finally:
        app.stop()
    assert plain not in "".join(app.stdout) + app.output
    assert f"first-start credential file {file} deleted" in app.output


def test_on_a_terminal_the_credential_is_shown_there_and_no_file_is_made(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(CONFIG)
    data = tmp_path / "data"
    main, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "appliance", "run", "--config", str(config), "--data-dir", str(data)],
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 20
        while b"admin credential" not in shown or not shown.endswith(b"\n"):
            assert time.monotonic() < deadline and proc.poll() is None, shown
            if select.select([main], [], [], 0.1)[0]:
                shown += os.read(main, 4096)
    finally:
        proc.terminate()
        proc.wait(10)
        os.close(main)
    line = next(x for x in shown.decode().splitlines() if x.startswith("admin credential"))
    assert line.startswith("admin credential (shown once; keep it now): admin / ")
    assert len(line.rsplit(" ", 1)[1]) == 24
    assert not (data / FIRST_CREDENTIAL).exists()


def test_a_link_planted_where_the_file_goes_is_not_followed(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(CONFIG)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (data / FIRST_CREDENTIAL).symlink_to(victim)
    app = start_appliance(config, data)
    try:
        plain = first_credential(data)
        assert not (data / FIRST_CREDENTIAL).is_symlink() and victim.read_text() == "untouched\n"
        assert login(app.url, plain) == 200
    finally:
        app.stop()


def test_when_the_file_cannot_be_written_nothing_is_kept_and_the_next_start_tries_again(
    tmp_path: Path,
) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(CONFIG)
    data = tmp_path / "data"
    (data / FIRST_CREDENTIAL).mkdir(parents=True)  # in the way
    app = start_appliance(config, data, ready=False)
    assert app.wait() == 1
    assert f"cannot start: {data / FIRST_CREDENTIAL}" in app.output, app.output
    assert not (data / "admin-credential.json").exists()  # no credential whose plain text is lost
    (data / FIRST_CREDENTIAL).rmdir()
    app = start_appliance(config, data)
    try:
        assert login(app.url, first_credential(data)) == 200
    finally:
        app.stop()
