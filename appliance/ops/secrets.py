"""Secret files: the admin credential's hash, the safety key, the upstream's client key, token and password,
the status page's TLS key. One reader for all of them, so each is taken only from a regular file that the
user the appliance runs as owns and no one else may open; anything else is refused with the commands that
fix it. A file someone else planted (another user's, one others may write, a link to elsewhere) never
becomes a credential of the box.

Standard library only: the safety supervisor reads its key through this module and stays small.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

MAX_SECRET_BYTES = 64 * 1024  # a PEM key of RSA 8192 is 6.5 KB; a secret file is never large
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class SecretFileError(PermissionError):
    """A secret file refused; the message says which, why, and how to fix it."""


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _fix(path: Path) -> str:
    return f"chown {user_name(os.geteuid())} {path} && chmod 600 {path}"


def _problem(seen: os.stat_result) -> str | None:
    """What makes an opened file unfit to hold a secret, or None."""
    if not stat.S_ISREG(seen.st_mode):
        return f"is {_KINDS.get(stat.S_IFMT(seen.st_mode), 'not a file')}, not a regular file"
    me = os.geteuid()
    if seen.st_uid != me:
        return (
            f"is owned by {user_name(seen.st_uid)}, not by {user_name(me)}, the user the appliance runs as "
            "(a file someone else put there is not taken as the box's secret)"
        )
    if mode := stat.S_IMODE(seen.st_mode) & 0o077:
        return f"has mode {stat.S_IMODE(seen.st_mode):o}: its group or others may {_access(mode)} it"
    return None


def _access(bits: int) -> str:
    said = [word for mask, word in ((0o044, "read"), (0o022, "write"), (0o011, "run")) if bits & mask]
    return " and ".join(said)


@contextlib.contextmanager
def open_secret(path: Path, what: str) -> Iterator[int]:
    """The open file of secret `what` at `path`, checked (never through a symbolic link; a FIFO is not
    waited on). FileNotFoundError if there is none; SecretFileError if it is not fit to hold a secret."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise FileNotFoundError(exc.errno, f"{what} {path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SecretFileError(
                f"{what} {path} is a symbolic link; put the file itself there: {_fix(path)}"
            ) from None
        raise
    try:
        problem = _problem(os.fstat(fd))  # the file opened, not whatever the name points to by now
        if problem is not None:
            fix = "" if problem.endswith("not a regular file") else f"; if it is the box's own: {_fix(path)}"
            raise SecretFileError(f"{what} {path} {problem}{fix}")
        yield fd
    finally:
        os.close(fd)


def read_secret(path: Path, what: str, max_bytes: int = MAX_SECRET_BYTES) -> bytes:
    """The content of secret `what` at `path` (see open_secret), at most `max_bytes`."""
    with open_secret(path, what) as fd:
        size = os.fstat(fd).st_size
        chunks, total = [], 0
        while total <= max_bytes and (chunk := os.read(fd, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
        if (found := max(size, total)) > max_bytes:
            raise SecretFileError(f"{what} {path} has {found} bytes; {what} has at most {max_bytes}")
        return b"".join(chunks)


def check_secret(path: Path, what: str) -> None:
    """Refuse secret `what` at `path` as read_secret would, for a file another library opens by name."""
    with open_secret(path, what):
        pass


def create_secret(path: Path, data: bytes) -> None:
    """A new secret file holding `data`, mode 0600 whatever the umask; FileExistsError if there is anything
    at `path` (a link included: nothing is ever written through one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
