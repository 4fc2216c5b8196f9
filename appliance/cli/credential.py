"""`appliance credential`: make a box's admin credential before its first `appliance run`, with its plain
text going only where it is asked to (a root-only file, the console), never to standard output or error,
which on a box end in the journal (docs/updates.md, "The admin credential on a box").

The credential file is the one `appliance run` makes itself on a first start (DATA/admin-credential.json,
the scrypt hash only, mode 0600), owned by the user that runs `appliance run`; finding it, the runtime
prints nothing. Every destination asked for must take the plain text before the credential is kept: if
one fails, nothing is made and the next run tries again.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.web.auth import CREDENTIAL_FILE, USER, new_credential

CONSOLE = Path("/dev/console")


def _error(message: str, code: int = 1) -> int:
    print(f"appliance credential: {message}", file=sys.stderr)
    return code


def _owner(data_dir: Path, owner: str | None) -> tuple[int, int, str] | str:
    """(uid, gid, name) of whom the credential file belongs to, or what is wrong."""
    if owner is not None:
        try:
            entry = pwd.getpwnam(owner)
        except KeyError:
            return f"--owner {owner}: no such user"
        if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
            return f"--owner {owner}: only root may make the file another user's"
        return entry.pw_uid, entry.pw_gid, owner
    if data_dir.is_dir():  # the data directory's owner runs `appliance run` (systemd's StateDirectory)
        seen = data_dir.stat()
        uid, gid = seen.st_uid, seen.st_gid
    else:
        uid, gid = os.geteuid(), os.getegid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return uid, gid, name


def provision(data_dir: Path, write: Path | None, console: Path | None, owner: str | None) -> int:
    """0: made, or there is one already; 1: could not; 2: wrong arguments."""
    if write is None and console is None:
        return _error("say where its plain text goes: --write FILE and/or --console", 2)
    whose = _owner(data_dir, owner)
    if isinstance(whose, str):
        return _error(whose, 2)
    uid, gid, name = whose
    path = data_dir / CREDENTIAL_FILE
    if os.path.lexists(path):
        print(
            f"{path}: there is an admin credential already; nothing made (its plain text was given when it "
            "was made; to replace a lost one, stop the appliance, delete that file and run this again)"
        )
        return 0
    try:
        _data_dir(data_dir, uid, gid)
    except OSError as exc:
        return _error(f"cannot make the data directory {data_dir}: {exc}")
    plain, record = new_credential()
    text = f"admin credential of this box (user {USER}): {plain}\n"
    steps: list[tuple[str, Callable[[], None]]] = []
    if write is not None:
        steps.append((f"--write {write}", lambda: _secret_file(write, text)))
    if console is not None:
        steps.append((f"--console {console}", lambda: _to_console(console, "\n" + text)))
    steps.append((str(path), lambda: _keep(path, json.dumps(record), uid, gid)))
    for what, step in steps:
        try:
            step()
        except OSError as exc:
            if write is not None and what != steps[0][0]:  # a plain text that never became the credential
                with contextlib.suppress(OSError):
                    write.unlink()
            return _error(f"{what}: {exc.strerror or exc}; no credential made (run this again once fixed)")
    places = " and ".join(str(p) for p in (write, console) if p is not None)
    print(f"made the admin credential: {path} (owner {name}, mode 600); its plain text went to {places} only")
    return 0


def _data_dir(data_dir: Path, uid: int, gid: int) -> None:
    if data_dir.is_dir():
        return
    data_dir.mkdir(mode=0o700, parents=True)
    if os.geteuid() == 0:
        os.chown(data_dir, uid, gid)


def _secret_file(path: Path, text: str) -> None:
    """`text` in `path`, mode 0600, this process's user's, replacing any file there (never through a link)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)


def _to_console(console: Path, text: str) -> None:
    fd = os.open(console, os.O_WRONLY | os.O_NOCTTY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _keep(path: Path, record: str, uid: int, gid: int) -> None:
    """The credential file, as AdminCredential.load_or_create writes it, owned by `uid`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        os.write(fd, record.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
