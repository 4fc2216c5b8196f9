"""The folder for what the store keeps outside the database until it is done with it: the journal
(spool.py) and the payloads of batches waiting for the upstream's acknowledgement (outbox.py).

Both are written often and dropped soon, and both need only outlive the process, not the machine. In a
RAM file system (`[store] journal_dir`; by default the unit's RuntimeDirectory, else /dev/shm) they cost
the SD card nothing at all; in the database's own folder the page cache drops most of it before it is
written back, but the file system still journals each file's changes. A folder per database file, only
this user's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def folder(setting: str, database: Path) -> Path:
    """The folder for `database` under `setting` (relative to the database's folder; empty: beside the
    database), made if need be; beside the database if that one is not usable."""
    beside = database.with_name(database.name + "-aside")
    if setting:
        base = database.parent / setting
        name = hashlib.sha256(str(database.resolve()).encode()).hexdigest()[:16]
        mine = base / f"edge-appliance-{os.getuid()}"
        try:
            _own_folder(mine)
            _own_folder(mine / name)
            return mine / name
        except OSError as exc:
            log.warning("store: %s is not usable (%s): the journal is kept beside the database", base, exc)
    _own_folder(beside)
    return beside


def _own_folder(path: Path) -> None:
    """A folder only this user can enter, not a link to elsewhere (/dev/shm is everyone's)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise PermissionError(f"{path} is not a folder of this user's alone")


def remember(conn: sqlite3.Connection, path: Path) -> None:
    """Note the folder in the database, for the outbox's functions that only have a connection."""
    conn.execute("INSERT OR REPLACE INTO store_meta VALUES ('aside', ?)", (str(path),))


def of(conn: sqlite3.Connection) -> Path:
    """The folder noted for this connection's database (beside it if none was)."""
    found = conn.execute("SELECT value FROM store_meta WHERE key = 'aside'").fetchone()
    if found is not None:
        return Path(found[0])
    database = Path(conn.execute("PRAGMA database_list").fetchone()[2])
    return database.with_name(database.name + "-aside")
