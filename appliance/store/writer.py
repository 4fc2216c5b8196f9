"""The store service: one writer thread that commits records to a journal and, in flushes, to SQLite.

What a record's class promises (docs/sync.md, "Guarantees"):
- a critical record ends the wait and is committed to the database at once (`listeners` hear of it);
- any other record is committed within `commit_interval_ms` to the journal (spool.py): it survives a crash
  or SIGKILL of the process, and the next start puts it into the database. It reaches the database, where
  sync and the quota see it, at the next flush: every `flush_interval_s`, and before a `call` that asks.
- `rows_committed` counts readings in the database, `events_committed` events in the database or the
  journal (the events API lists those too). A power cut loses the journal and what the kernel had not yet
  written back of the WAL (synchronous=NORMAL), but never corrupts the file.
- Records handed to `write()` and not yet committed (at most `commit_interval_ms` of them) are lost on a
  crash. On a clean stop everything queued is flushed into the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.config.models import StoreSettings
from appliance.ops.datadir import private_data_dir
from appliance.records import Event, Reading
from appliance.service import Service
from appliance.status.store import StoreStatus
from appliance.store import aside, queries
from appliance.store.classes import Classifier
from appliance.store.commits import Commits
from appliance.store.inbox import Inbox, Op
from appliance.store.intake import Intake
from appliance.store.migrations import schema_version
from appliance.store.spool import Spool
from appliance.store.tables import Tables, connect, newest_event

__all__ = ["MAX_PENDING_RECORDS", "Store", "connect"]

log = logging.getLogger(__name__)

# Records queued and not yet committed, at most (some 75 MB): past it new records are dropped and counted, so
# a stalled disk cannot take the memory and the poller never blocks.
MAX_PENDING_RECORDS = 500_000


def _tell(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    """From the writer's thread: the writer has ended. The loop may be closed already (a stop that left
    the writer behind), and then nobody is waiting."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(resolve)


class Store(Service):
    """Owns the database file; everyone else hands it records through `write()`."""

    name = "store"
    start_timeout_s = 60.0  # a migration of a large database
    stop_timeout_s = 2.0  # the runtime stops it last, with what is left of its stop budget
    stop_reserve_s = 0.5  # but never less than this: the last flush

    def __init__(self, settings: StoreSettings, data_dir: Path) -> None:
        super().__init__()
        self.settings = settings
        self.data_dir = data_dir
        self.path = data_dir / settings.path
        self.classes = Classifier(settings.classes)
        self._inbox = Inbox(MAX_PENDING_RECORDS, settings.batch_max)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # a flush that fails now is not retried: the stop has a deadline
        self._ended: Callable[[], object] = lambda: None  # told on the writer's thread as it ends
        self._db: sqlite_utils.Database | None = None
        self._commits: Commits | None = None
        # told after each commit to the database, on the writer's thread, whether it held a critical record
        self.listeners: list[Callable[[bool], None]] = []
        self.schema: int | None = None

    async def open(self) -> None:
        private_data_dir(self.data_dir)  # made 0700 now that the config was taken; refused if not ours
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self._commits = await asyncio.to_thread(self._open)
        self.schema = schema_version(self._commits.db)
        self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._thread.start()
        log.info("store open at %s", self.path)

    def _open(self) -> Commits:
        db = connect(self.path, self.settings.page_size, self.settings.checkpoint_kb)
        try:
            folder = aside.folder(self.settings.journal_folder, self.path)
            commits = Commits(db, Tables(db.conn), Spool(folder), self.settings, self.listeners)
            commits.recover(folder)
            commits.intake = Intake(self.classes, newest_event(db.conn) + 1)
        except BaseException:
            db.conn.close()
            raise
        self._db = db
        return commits

    async def close(self) -> None:
        if self._thread is not None:
            loop = asyncio.get_running_loop()
            ended: asyncio.Future[None] = loop.create_future()
            self._ended = lambda: _tell(loop, ended)
            self._stopping.set()
            self._inbox.put(None, urgent=True)  # after everything already queued
            if self._thread.is_alive():
                await ended  # no worker thread waits on the writer: a stop past its deadline leaves it
            self._thread = None
        if self._db is not None:
            if self._commits is not None:
                self._commits.close()
            self._db.conn.close()
            self._db = None

    def write(self, records: Sequence[Reading | Event]) -> None:
        """Queue readings and events for the next commit; never blocks."""
        if records:
            self._inbox.put(records, self.classes.urgent(records))

    def call(
        self, fn: Callable[[sqlite3.Connection], Any], *, flush: bool = True, urgent: bool = True
    ) -> Future[Any]:
        """Run `fn(conn)` on the writer thread in a transaction, after what is queued before: with `flush`,
        once that is in the database; without, it may still be in the journal only (what the outbox does
        with its batches needs no flush, and a flush for each would cost writes). Ops without `flush`
        queued together share a transaction (each in a savepoint); one not `urgent` waits up to
        commit_interval_ms for company (the outbox's removal of an acknowledged batch)."""
        future: Future[Any] = Future()
        self._inbox.put(Op(fn, future, flush), urgent=urgent)
        return future

    def reader(self) -> sqlite3.Connection:
        """A read-only connection of the caller's own."""
        return queries.reader(self.path)

    @property
    def pending(self) -> int:
        """Records queued and not yet committed."""
        return self._inbox.pending

    @property
    def dropped(self) -> int:
        """Records not queued: the queue was full."""
        return self._inbox.dropped

    @property
    def rows_committed(self) -> int:
        return self._commits.rows if self._commits else 0

    @property
    def events_committed(self) -> int:
        return self._commits.events if self._commits else 0

    @property
    def commits(self) -> int:
        return self._commits.count if self._commits else 0

    @property
    def commit_errors(self) -> int:
        return self._commits.errors if self._commits else 0

    @property
    def evicted(self) -> dict[str, int]:
        return self._commits.quota.evicted if self._commits else {}

    @property
    def used_bytes(self) -> int:
        return self._commits.quota.used_bytes if self._commits else 0

    @property
    def bytes_written(self) -> int:
        return self._commits.meter.total if self._commits else 0

    def status(self) -> StoreStatus:
        c = self._commits
        records = self.rows_committed + self.events_committed
        schema: dict[str, Any] = {"schema": self.schema}  # by its JSON name: the field's is schema_version
        return StoreStatus(
            **self.basics(),
            **schema,
            path=str(self.path),
            rows_committed=self.rows_committed,
            events_committed=self.events_committed,
            held_records=c.held_count if c else 0,
            commits=self.commits,
            flushes=c.flushes if c else 0,
            pending_records=self.pending,
            dropped=self.dropped + (c.dropped if c else 0),
            commit_errors=c.errors if c else 0,
            journal_errors=c.journal_errors if c else 0,
            last_commit_ms=round(c.last_ms if c else 0.0, 3),
            used_mb=round(self.used_bytes / 1e6, 3),
            quota_mb=self.settings.quota_mb,
            over_quota=c.over_quota if c else False,
            evicted=dict(self.evicted),
            bytes_written_per_record=round(self.bytes_written / records, 1) if records else None,
        )

    def events_since(self, since_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """Committed events with id > since_id, oldest first (the journal's included)."""
        held = [e for e in self._held_events() if e["id"] > since_id]
        found = queries.events(self.path, "id > ? ORDER BY id LIMIT ?", (since_id, limit))
        return queries.merged(found, held, limit, newest_first=False)

    def recent_events(self, kind_prefix: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest committed events whose kind starts with `kind_prefix`, newest first."""
        held = [e for e in self._held_events() if e["kind"].startswith(kind_prefix)]
        found = queries.events(
            self.path,
            "kind >= ? AND kind < ? ORDER BY id DESC LIMIT ?",
            (kind_prefix, kind_prefix + "\uffff", limit),
        )
        return queries.merged(found, held, limit, newest_first=True)

    def _held_events(self) -> list[dict[str, Any]]:
        """Taken before the database is read: an event flushed meanwhile is then in one or the other."""
        return [queries.event(row) for row in (self._commits.held.events if self._commits else [])]

    def _write_loop(self) -> None:
        try:
            assert self._commits is not None
            self._inbox.serve(self._commits, self.settings.commit_interval_ms / 1000, self._stopping)
        finally:
            self._ended()
