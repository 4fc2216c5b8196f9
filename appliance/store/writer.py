"""The store service: one writer thread that commits readings in batches to SQLite in WAL mode.

Durability: a reading counts as committed (`rows_committed`) once its transaction has committed.
Committed readings survive a crash or SIGKILL of the process. With `synchronous=NORMAL` in WAL mode
a power cut may lose the last commits but never corrupts the file. Readings handed to `write()` but
not yet committed are lost on a crash; on a clean stop they are all committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.config.models import StoreSettings
from appliance.records import Event, Quality, Reading
from appliance.service import Service
from appliance.store.migrations import check_not_newer, migrate, schema_version

log = logging.getLogger(__name__)

QUALITY_CODES = {Quality.OK: 0, Quality.STALE: 1, Quality.ERROR: 2}
MAX_PENDING_BATCHES = 10_000  # when full, new readings are dropped and counted (the poller never blocks)


def connect(path: Path) -> sqlite_utils.Database:
    """An autocommit connection with the store's pragmas, schema migrated."""
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None, check_same_thread=False))
    try:
        check_not_newer(db)  # before any pragma: a newer release's file is left exactly as it was
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
    except BaseException:
        db.conn.close()
        raise
    return db


class Store(Service):
    """Owns the database file; everyone else hands it records through `write()`."""

    name = "store"

    def __init__(self, settings: StoreSettings, data_dir: Path) -> None:
        super().__init__()
        self.settings = settings
        self.path = data_dir / settings.path
        self._queue: queue.Queue[Sequence[Reading | Event] | None] = queue.Queue(
            MAX_PENDING_BATCHES
        )  # None: stop
        self.events_committed = 0
        self._thread: threading.Thread | None = None
        self._db: sqlite_utils.Database | None = None
        self._channel_ids: dict[tuple[str, str], int] = {}
        self.rows_committed = 0
        self.commits = 0
        self.dropped = 0
        self.commit_errors = 0
        self.last_commit_ms = 0.0
        self.schema: int | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await asyncio.to_thread(connect, self.path)
        self.schema = schema_version(self._db)
        self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._thread.start()
        log.info("store open at %s", self.path)

    async def close(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._queue.put, None)  # after everything already queued
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._db is not None:
            self._db.conn.close()
            self._db = None

    def write(self, readings: Sequence[Reading | Event]) -> None:
        """Queue readings (and events) for the next commit; never blocks."""
        try:
            self._queue.put_nowait(readings)
        except queue.Full:
            self.dropped += len(readings)
            log.warning("store queue full: dropped %d readings", len(readings))

    def details(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "schema": self.schema,
            "rows_committed": self.rows_committed,
            "events_committed": self.events_committed,
            "commits": self.commits,
            "pending_batches": self._queue.qsize(),
            "dropped": self.dropped,
            "commit_errors": self.commit_errors,
            "last_commit_ms": round(self.last_commit_ms, 3),
        }

    def _write_loop(self) -> None:
        interval = self.settings.commit_interval_ms / 1000
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = list(first)
            deadline = time.monotonic() + interval
            while len(batch) < self.settings.batch_max:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.extend(item)
            self._commit_until_done(batch, stopping)

    def _commit_until_done(self, batch: list[Reading | Event], stopping: bool) -> None:
        while True:
            try:
                self._commit(batch)
                return
            except sqlite3.Error as exc:
                self.commit_errors += 1
                if stopping:
                    log.error("store: could not commit %d readings at stop: %s", len(batch), exc)
                    self.dropped += len(batch)
                    return
                log.error("store commit failed (%s); retrying in 1 s", exc)
                time.sleep(1.0)

    def _commit(self, batch: list[Reading | Event]) -> None:
        assert self._db is not None
        conn = self._db.conn
        began = time.perf_counter()
        events = [e for e in batch if isinstance(e, Event)]
        readings = [r for r in batch if isinstance(r, Reading)]
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = [(self._channel_id(conn, r), r.ts, r.value, QUALITY_CODES[r.quality]) for r in readings]
            conn.executemany(
                "INSERT INTO readings (channel_id, ts, value, quality) VALUES (?, ?, ?, ?)", rows
            )
            if events:
                conn.executemany(
                    "INSERT INTO events (ts, kind, severity, source, message, data) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: E501
                    [(e.ts, e.kind, str(e.severity), e.source, e.message, e.data_json()) for e in events],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._channel_ids.clear()  # ids inserted in the rolled-back transaction are gone
            raise
        self.last_commit_ms = (time.perf_counter() - began) * 1000
        self.commits += 1
        self.rows_committed += len(readings)
        self.events_committed += len(events)

    def events_since(self, since_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """Committed events with id > since_id, oldest first, from a reader connection of its own (WAL
        lets it read while the writer writes)."""
        return self._events("id > ? ORDER BY id LIMIT ?", (since_id, limit))

    def recent_events(self, kind_prefix: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest committed events whose kind starts with `kind_prefix`, newest first."""
        return self._events(
            "kind >= ? AND kind < ? ORDER BY id DESC LIMIT ?", (kind_prefix, kind_prefix + "\uffff", limit)
        )

    def _events(self, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT id, ts, kind, severity, source, message, data FROM events WHERE " + where, params
            ).fetchall()
        return [
            {
                "id": r[0],
                "ts": r[1],
                "kind": r[2],
                "severity": r[3],
                "source": r[4],
                "message": r[5],
                "data": json.loads(r[6]),
            }
            for r in rows
        ]

    def _channel_id(self, conn: sqlite3.Connection, reading: Reading) -> int:
        key = (reading.device, reading.channel)
        if (cached := self._channel_ids.get(key)) is not None:
            return cached
        conn.execute(
            "INSERT INTO channels (device, channel, unit) VALUES (?, ?, ?)"
            " ON CONFLICT (device, channel) DO UPDATE SET unit = excluded.unit",
            (reading.device, reading.channel, reading.unit),
        )
        found = conn.execute("SELECT id FROM channels WHERE device = ? AND channel = ?", key).fetchone()
        self._channel_ids[key] = int(found[0])
        return int(found[0])
