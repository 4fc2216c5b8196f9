"""The admin credential a first start makes: shown on the terminal when standard output is one, else handed
over in a file of the data directory and only that file's name printed, since a box's standard output is
the journal (docs/web.md, The admin credential). The file goes at the first login with the credential.

A box made by the image has its credential before the first start (`appliance credential`), and then
nothing is made here."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from appliance.ops import audit
from appliance.web.auth import CREDENTIAL_FILE, USER

FIRST_FILE = "admin-credential.first"

log = logging.getLogger(__name__)


def hand_over(data_dir: Path, plain: str, terminal: bool) -> str:
    """The line to print about the credential `plain`, made now: itself on a terminal, else where it was
    written. If it cannot be written, the credential just kept is deleted, so that the next start makes
    one again rather than keeping one nobody has read (OSError, saying which file)."""
    if terminal:
        return f"admin credential (shown once; keep it now): {USER} / {plain}"
    path = data_dir / FIRST_FILE
    try:
        _write_private(path, f"admin credential of this box (user {USER}): {plain}\n")
    except OSError as exc:
        with contextlib.suppress(OSError):
            (data_dir / CREDENTIAL_FILE).unlink()
        raise OSError(
            f"{path}: cannot hand the new admin credential over ({exc.strerror}); nothing kept"
        ) from None
    return (
        f"admin credential: in {path} (mode 600); read it and keep it, it is deleted at the first login "
        "with it"
    )


def _write_private(path: Path, text: str) -> None:
    """`text` in a new file `path`, mode 0600, this user's; whatever was at `path` is replaced, a link
    itself and never what it points to."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # an older first file (a credential deleted to be made again), or a planted link
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class FirstFile:
    """Deletes the first start's file at the first login with the credential (`used`, on every login)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FIRST_FILE
        self.done = False

    def used(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("%s: could not delete it (%s); delete it by hand", self.path, exc.strerror)
            return
        audit.credential_file_removed(str(self.path))
