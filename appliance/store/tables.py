"""The writer's side of the database file: opening it with the store's pragmas, and the inserts of one
commit (channels, reading ids, chunks, events, evidence rows)."""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path

import sqlite_utils

from appliance.store import chunks, stored
from appliance.store.migrations import check_not_newer, migrate

# A record as the writer holds it until its commit, and as the journal keeps it: plain tuples.
HeldReading = tuple[str, str, str, float | str | None, float, int, int]  # device, channel, unit, value, ts,
# quality code, class
HeldEvent = tuple[int, float, str, str, str, str, str, int]  # id, ts, kind, severity, source, message, data,
# class
HeldEvidence = tuple[float, int, str, str, int]  # ts, event id, kind (thumbnail, image), file name, class
INSERT_CHUNK = f"INSERT INTO reading_chunks (place, {chunks.COLUMNS}) VALUES ({', '.join('?' * 18)})"


def uri(path: Path, mode: str = "rwc") -> str:
    """The database as the store opens it: with the unix-excl VFS this process locks the file for itself
    and keeps the WAL index in its own memory, which its connections share. A shared index would be the
    -shm file, a real file whose pages the kernel writes back every half minute; no other process may
    open the file meanwhile (they get "database is locked" until the runtime stops)."""
    return f"file:{urllib.parse.quote(str(path))}?mode={mode}&vfs=unix-excl"


def private(path: Path) -> None:
    """The database and its -wal and -shm files the user's alone: a new one is made so by the runtime's
    umask (SQLite gives the -wal and -shm the database's mode), one an older release left open is closed."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            seen = name.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(seen.st_mode) and seen.st_uid == os.geteuid() and stat.S_IMODE(seen.st_mode) & 0o077:
            os.chmod(name, 0o600)


def connect(path: Path, page_size: int = 1024, checkpoint_kb: int = 4096) -> sqlite_utils.Database:
    """An autocommit connection with the store's pragmas, schema migrated."""
    private(path)
    conn = sqlite3.connect(uri(path), uri=True, isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    try:
        check_not_newer(db)  # before any pragma: a newer release's file is left exactly as it was
        # Small pages: a commit writes each page it touches whole, to the WAL and again at the checkpoint.
        # Only a new file takes it; an existing one keeps its page size (changing it rewrites the file).
        db.execute(f"PRAGMA page_size = {int(page_size)}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        # Debian builds SQLite to zero deleted content, which writes freed pages once more; FAST zeroes
        # only where the page is written anyway.
        db.execute("PRAGMA secure_delete=FAST")
        pages = int(db.execute("PRAGMA page_size").fetchone()[0])
        db.execute(f"PRAGMA wal_autocheckpoint = {max(1, checkpoint_kb * 1024 // pages)}")
        migrate(db)
    except BaseException:
        db.conn.close()
        raise
    return db


def newest_event(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])


class Tables:
    """Channel ids and the next reading id, as the database holds them; `insert` runs in the caller's
    transaction, and after a rollback `reload` forgets what it had assumed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._channels: dict[tuple[str, str], tuple[int, str]] = {}  # (device, channel) -> id, unit
        self.next_reading = 1
        self.reload()

    def reload(self) -> None:
        rows = self.conn.execute("SELECT id, device, channel, unit FROM channels").fetchall()
        self._channels = {(d, c): (int(i), u) for i, d, c, u in rows}
        self.next_reading = stored.newest(self.conn) + 1

    def insert(
        self,
        readings: list[HeldReading],
        events: list[HeldEvent],
        evidence: list[HeldEvidence],
        applied: int | None = None,
    ) -> int:
        """Write the records (readings packed per class and channel, ids handed out class by class, then
        channel by channel as they first came); with `applied`, note that the journal's generations up to
        it are in. Returns the next reading id, for the caller to take once the transaction committed."""
        groups: dict[tuple[int, int], tuple[list[int], list[float | str | None], list[int]]] = {}
        for device, channel, unit, value, ts, quality, prio in readings:
            channel_id = self._channel(device, channel, unit)
            group = groups.get((prio, channel_id))
            if group is None:
                group = groups[prio, channel_id] = ([], [], [])
            group[0].append(round(ts * 1_000_000) if -1e12 < ts < 1e12 else 0)  # not NaN: no poison pill
            group[1].append(value)
            group[2].append(quality)
        next_id = self.next_reading
        rows: list[tuple[object, ...]] = []
        for (klass, channel_id), (micros, values, codes) in sorted(groups.items(), key=lambda g: g[0][0]):
            rows.extend(c.row() for c in chunks.encode(next_id, klass, channel_id, micros, values, codes))
            next_id += len(micros)
        self.conn.executemany(INSERT_CHUNK, rows)
        self.conn.executemany(
            "INSERT INTO events (id, ts, kind, severity, source, message, data, prio)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            events,
        )
        self.conn.executemany(
            "INSERT INTO evidence (ts, event_id, kind, name, prio) VALUES (?, ?, ?, ?, ?)", evidence
        )
        if applied is not None:
            self.conn.execute("UPDATE store_meta SET value = ? WHERE key = 'spool_applied'", (str(applied),))
        return next_id

    def _channel(self, device: str, channel: str, unit: str) -> int:
        known = self._channels.get((device, channel))
        if known is not None and known[1] == unit:
            return known[0]
        self.conn.execute(
            "INSERT INTO channels (device, channel, unit) VALUES (?, ?, ?)"
            " ON CONFLICT (device, channel) DO UPDATE SET unit = excluded.unit",
            (device, channel, unit),
        )
        found = self.conn.execute(
            "SELECT id FROM channels WHERE device = ? AND channel = ?", (device, channel)
        ).fetchone()
        self._channels[device, channel] = (int(found[0]), unit)
        return int(found[0])
