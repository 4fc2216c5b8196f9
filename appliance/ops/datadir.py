"""The data directory: the store, the evidence, the credential's hash, the safety key and latch. Only the
user the appliance runs as may enter it (mode 0700), and what is made in it is private too (umask 077), so
a stolen login of another user on the box reads nothing of it.

Checked by `appliance run` and `appliance safety` before anything starts: refused if it is another user's
or not a directory, its mode tightened if it is ours and others may enter it; made 0700 if it is missing
(by the runtime's store as it opens, so that a config the simulated world refuses leaves nothing behind;
by the supervisor at once). Standard library only: the safety supervisor checks it too and stays small.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from appliance.ops.secrets import user_name

PRIVATE_UMASK = 0o077  # files 0600, folders 0700, whatever creates them (SQLite, OpenCV, paho, ...)


class DataDirError(PermissionError):
    """The data directory is not the service user's: nothing may start on it."""


def private_files() -> None:
    """From now on every file and folder this process makes is its user's alone."""
    os.umask(PRIVATE_UMASK)


def private_data_dir(path: Path, create: bool = True) -> str | None:
    """Make `path` the private data directory (made if missing and `create`); returns what was changed, to
    log, or None. DataDirError when it belongs to another user or is not a directory (nothing is changed
    then); another OSError when it cannot be made."""
    try:
        if create:
            path.mkdir(mode=0o700, parents=True)  # its parents, under the umask: 0700 after private_files()
    except FileExistsError:
        pass
    try:
        seen = path.stat()
    except FileNotFoundError:
        if create:
            raise
        return None  # a link to the real folder is fine: the folder is what must be private
    me = os.geteuid()
    if not stat.S_ISDIR(seen.st_mode):
        raise DataDirError(f"the data directory {path} is not a directory")
    if seen.st_uid != me:
        user = user_name(me)
        raise DataDirError(
            f"the data directory {path} is owned by {user_name(seen.st_uid)}, not by {user}, the user the "
            f"appliance runs as; if it is the box's own: chown -R {user} {path} && chmod 700 {path}"
        )
    mode = stat.S_IMODE(seen.st_mode)
    if mode & 0o077:
        os.chmod(path, 0o700)
        return f"the data directory {path} had mode {mode:o}; made it 700 (only {user_name(me)} may enter it)"
    return None
