"""`appliance credential`: a box's admin credential made before its first run, the plain text only in a
root-only file or on the console, the hash file the runtime's user's; `appliance run` then finds it, prints
and logs nothing of it, and accepts it over the API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.ops.secrets import SecretFileError
from appliance.web.auth import AdminCredential
from tests.conftest import ROOT, ApplianceProcess, start_appliance

AS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv (util-linux)"
)
NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")


def credential(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "appliance", "credential", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def plain_of(path: Path) -> str:
    line = path.read_text().strip().splitlines()[-1]
    assert line.startswith("admin credential of this box (user admin): ")
    return line.rsplit(" ", 1)[1]


def session(app: ApplianceProcess, token: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(app.url + "api/v1/session", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder another user can reach (pytest's own are root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="credential-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def start_as(prefix: tuple[str, ...], config: Path, data: Path) -> ApplianceProcess:
    """`appliance run` under `prefix` (setpriv ...), as tests/conftest.py starts it."""
    command = [
        sys.executable,
        "-P",
        "-m",
        "appliance",
        "run",
        "--config",
        str(config),
        "--data-dir",
        str(data),
    ]
    proc = subprocess.Popen(
        [*prefix, *command, "--log-level", "debug"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    app = ApplianceProcess(proc, data)
    assert proc.stdout is not None
    app.read_in_background(proc.stderr, app.stderr)
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        app.stdout.append(line)
        if line.startswith("status page: "):
            app.url = line.split(": ", 1)[1].strip()
            break
        if time.monotonic() > deadline:
            break
    assert app.url, (app.stdout, app.output)
    app.read_in_background(proc.stdout, app.stdout)
    return app


@AS_ROOT
def test_made_by_root_for_the_runtime_user_who_then_accepts_it(shared: Path) -> None:
    data, secrets = shared / "data", shared / "secrets"
    secrets.mkdir(mode=0o700)
    secret = secrets / "admin-credential.txt"
    made = credential("--data-dir", data, "--write", secret, "--owner", "nobody")
    assert made.returncode == 0, made.stderr
    plain = plain_of(secret)
    assert plain not in made.stdout + made.stderr
    assert made.stdout.strip() == (
        f"made the admin credential: {data}/admin-credential.json (owner nobody, mode 600); "
        f"its plain text went to {secret} only"
    )
    seen = secret.stat()
    assert (seen.st_mode & 0o777, seen.st_uid) == (0o600, 0)
    nobody = (data / "admin-credential.json").stat()
    assert (nobody.st_mode & 0o777, nobody.st_uid) == (0o600, 65534)
    assert (data.stat().st_mode & 0o777, data.stat().st_uid) == (0o700, 65534)
    record = json.loads((data / "admin-credential.json").read_text())
    assert sorted(record) == ["params", "salt", "scrypt", "user"] and record["user"] == "admin"
    # the runtime's own reader takes it only as the user it belongs to: to root it is someone else's file
    with pytest.raises(SecretFileError, match="is owned by nobody, not by root"):
        AdminCredential.load_or_create(data)

    config = shared / "appliance.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:0"\n')
    app = start_as(NOBODY, config, data)
    try:
        assert session(app, plain) == (200, {"user": "admin", "csrf": None, "read_needs_login": False})
        assert session(app, "wrong")[0] == 401
    finally:
        assert app.stop() == 0
    printed = "".join(app.stdout) + app.output
    assert plain not in printed and "admin credential" not in printed

    again = credential("--data-dir", data, "--write", secret, "--owner", "nobody")
    assert again.returncode == 0 and "there is an admin credential already; nothing made" in again.stdout
    assert plain_of(secret) == plain


def test_a_runtime_that_finds_a_credential_never_prints_or_logs_it(tmp_path: Path) -> None:
    made = credential("--data-dir", tmp_path / "data", "--write", tmp_path / "admin.txt")
    assert made.returncode == 0, made.stderr
    plain = plain_of(tmp_path / "admin.txt")
    config = tmp_path / "appliance.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:0"\n')
    for _ in range(2):  # the first start on it, and a restart
        app = start_appliance(config, tmp_path / "data", "--log-level", "debug")
        try:
            assert session(app, plain)[0] == 200
        finally:
            assert app.stop() == 0
        printed = "".join(app.stdout) + app.output
        assert plain not in printed and "admin credential" not in printed


def test_the_console_and_what_is_refused(tmp_path: Path) -> None:
    console = tmp_path / "console"  # a file standing in for /dev/console
    console.touch()
    made = credential("--data-dir", tmp_path / "a", "--console", console)
    assert made.returncode == 0, made.stderr
    assert plain_of(console) not in made.stdout + made.stderr

    nowhere = credential("--data-dir", tmp_path / "b")
    assert nowhere.returncode == 2 and "--write FILE and/or --console" in nowhere.stderr
    unknown = credential("--data-dir", tmp_path / "b", "--write", tmp_path / "x", "--owner", "no-such-user")
    assert unknown.returncode == 2 and "--owner no-such-user: no such user" in unknown.stderr
    missing = tmp_path / "missing" / "admin.txt"
    failed = credential("--data-dir", tmp_path / "c", "--write", missing)
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"appliance credential: --write {missing}: No such file or directory")
    assert not (tmp_path / "c" / "admin-credential.json").exists()  # nothing made: the next run tries again
    gone = credential(
        "--data-dir", tmp_path / "d", "--write", tmp_path / "d.txt", "--console", tmp_path / "no" / "tty"
    )
    assert gone.returncode == 1
    assert not (tmp_path / "d.txt").exists() and not (tmp_path / "d" / "admin-credential.json").exists()
