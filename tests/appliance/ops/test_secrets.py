"""Secret files (the admin credential's hash, the safety key, upstream keys, tokens and passwords) are read
by one reader that takes only a regular file of the service user's that no one else may open, and says how
to fix anything else; a planted file is refused by the readers and by the running processes."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from appliance.ops.secrets import MAX_SECRET_BYTES, SecretFileError, check_secret, read_secret
from appliance.safety.protocol import SECRET_BYTES, load_or_create_secret
from appliance.web.auth import CREDENTIAL_FILE, AdminCredential, new_credential
from tests.appliance.safety.processes import safety_command, safety_toml
from tests.conftest import ROOT, start_appliance

NOBODY = 65534
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant a file owned by another user")
ME = pwd.getpwuid(os.geteuid()).pw_name


def fix(path: Path) -> str:
    return f"chown {ME} {path} && chmod 600 {path}"


def secret_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def credential_file(data_dir: Path) -> Path:
    _, record = new_credential()
    return secret_file(data_dir / CREDENTIAL_FILE, json.dumps(record).encode())


def test_a_private_file_of_ours_is_read(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "token", b"s3cret\n")
    assert read_secret(path, "the upstream token") == b"s3cret\n"
    check_secret(path, "the upstream token")  # no error


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o660, 0o644, 0o666, 0o700 | 0o010])
def test_a_file_others_may_open_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path / "token", b"s3cret", mode)
    with pytest.raises(SecretFileError) as refused:
        read_secret(path, "the upstream token")
    message = str(refused.value)
    assert f"the upstream token {path}" in message and f"mode {mode:o}" in message
    assert fix(path) in message


@AS_ROOT
def test_a_file_of_another_user_is_refused_however_private(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "token", b"s3cret")
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(SecretFileError) as refused:
        read_secret(path, "the upstream token")
    message = str(refused.value)
    assert "owned by nobody" in message and f"not by {ME}, the user the appliance runs as" in message
    assert fix(path) in message


def test_a_link_a_folder_a_fifo_and_a_large_file_are_refused(tmp_path: Path) -> None:
    real = secret_file(tmp_path / "real", b"s3cret")
    (tmp_path / "link").symlink_to(real)  # a link to a good file: the link is what the config names
    with pytest.raises(SecretFileError, match="is a symbolic link"):
        read_secret(tmp_path / "link", "the key")
    (tmp_path / "folder").mkdir(mode=0o700)
    with pytest.raises(SecretFileError, match="is a directory, not a regular file"):
        read_secret(tmp_path / "folder", "the key")
    os.mkfifo(tmp_path / "fifo", 0o600)  # no writer: opening it must not wait for one
    refusals: list[BaseException] = []

    def read_fifo() -> None:
        try:
            read_secret(tmp_path / "fifo", "the key")
        except SecretFileError as exc:
            refusals.append(exc)

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert len(refusals) == 1 and "is a FIFO, not a regular file" in str(refusals[0])
    big = secret_file(tmp_path / "big", b"x" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(SecretFileError, match=f"{MAX_SECRET_BYTES + 1} bytes; the key has at most"):
        read_secret(big, "the key")
    with pytest.raises(FileNotFoundError, match="the key"):
        read_secret(tmp_path / "missing", "the key")


@AS_ROOT
def test_a_planted_admin_credential_and_safety_key_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    credential = credential_file(data)
    key = secret_file(data / "safety.key", os.urandom(SECRET_BYTES))
    AdminCredential.load_or_create(data)  # ours: accepted
    assert len(load_or_create_secret(key)) == SECRET_BYTES
    for path in (credential, key):
        os.chown(path, NOBODY, NOBODY)
    with pytest.raises(SecretFileError, match=r"the admin credential .* is owned by nobody"):
        AdminCredential.load_or_create(data)
    with pytest.raises(SecretFileError, match=r"the safety key .* is owned by nobody"):
        load_or_create_secret(key)


def test_secrets_made_on_first_use_are_private_and_never_written_through_a_link(tmp_path: Path) -> None:
    data = tmp_path / "data"
    AdminCredential.load_or_create(data)
    load_or_create_secret(data / "safety.key")
    for name in (CREDENTIAL_FILE, "safety.key"):
        seen = (data / name).lstat()
        assert stat.S_ISREG(seen.st_mode) and stat.S_IMODE(seen.st_mode) == 0o600
        assert seen.st_uid == os.geteuid()
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "safety.key").symlink_to(elsewhere)  # dangling: a write would create it
    with pytest.raises(SecretFileError, match="is a symbolic link"):
        load_or_create_secret(tmp_path / "other" / "safety.key")
    assert not elsewhere.exists()


@AS_ROOT
def test_appliance_run_refuses_a_planted_credential(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    credential = credential_file(data)
    os.chown(credential, NOBODY, NOBODY)
    config = tmp_path / "appliance.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:0"\n')
    app = start_appliance(config, data, ready=False)
    code = app.wait(30)
    assert code == 1, app.output
    assert f"the admin credential {credential} is owned by nobody" in app.output
    assert fix(credential) in app.output
    assert not any(line.startswith("status page:") for line in app.stdout)


@AS_ROOT
def test_the_supervisor_refuses_a_planted_safety_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = secret_file(data / "safety.key", os.urandom(SECRET_BYTES))
    data.chmod(0o700)
    os.chown(key, NOBODY, NOBODY)
    config = tmp_path / "appliance.toml"
    config.write_text(safety_toml())
    done = subprocess.run(
        safety_command(config, data),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        env={**os.environ, "APPLIANCE_GPIO_MOCK_JOURNAL": str(tmp_path / "journal")},
    )
    assert done.returncode == 1, done.stderr
    assert f"the safety key {key} is owned by nobody" in done.stderr and fix(key) in done.stderr
    assert "safety supervisor ready" not in done.stdout
